//! Scanning raw bytes for identifying values in the clear: the needles of a synthetic
//! population's ground truth (or any list of values), indexed as byte patterns in UTF-8 and
//! Shift_JIS, found in one pass over every file of a folder.
//!
//! Used by the vault's and the intake's tests: no byte of a name, kana name, phone number,
//! address, insurance number or free-text comment may appear in plaintext in an instance's files.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Patterns shorter than this are left out: a 4-byte pattern (a two-kanji name in Shift_JIS, a
/// short 番号) turns up by chance in a megabyte of random ciphertext about once in ten runs; 6
/// bytes make that negligible.
pub const MIN_PATTERN_BYTES: usize = 6;

/// Values of the ground truth of a `niji synth` folder (`truth/persons.csv`,
/// `truth/insurance_history.csv`) that must never appear in the clear: names in kanji and kana
/// (each part, and the full name without separator, with a space and with an ideographic space;
/// maiden and married surnames), postal codes, addresses, phone numbers (with and without
/// hyphens), insurer numbers, 被保険者番号 and the member ids built from them.
pub fn truth_needles(synth: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let persons = std::fs::read_to_string(synth.join("truth/persons.csv")).unwrap();
    let mut lines = persons.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name} in truth/persons.csv"));
    let (sn, gn, snk, gnk, sna, snka) = (
        col("surname"),
        col("given_name"),
        col("surname_kana"),
        col("given_name_kana"),
        col("surname_after_marriage"),
        col("surname_kana_after_marriage"),
    );
    let (postal, address, home, mobile) = (col("postal_code"), col("address"), col("home_phone"), col("mobile_phone"));
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        for (s, g) in [(sn, gn), (snk, gnk), (sna, gn), (snka, gnk)] {
            if f[s].is_empty() {
                continue;
            }
            for sep in ["", " ", "\u{3000}"] {
                out.push(format!("{}{sep}{}", f[s], f[g]));
            }
        }
        for c in [sn, gn, snk, gnk, sna, snka, postal, address, home, mobile] {
            out.push(f[c].to_string());
        }
        for c in [postal, home, mobile] {
            out.push(f[c].replace('-', ""));
        }
    }
    let history = std::fs::read_to_string(synth.join("truth/insurance_history.csv")).unwrap();
    for line in history.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (insurer, kigo, bango, edaban) = (f[2], f[3], f[4], f[5]);
        out.push(format!("{insurer}{bango}"));
        out.push(format!("{insurer}:{kigo}:{bango}:{edaban}"));
        out.push(format!("{insurer}:{kigo}:{bango}"));
        out.push(bango.to_string());
        out.push(insurer.to_string());
    }
    out.retain(|s| !s.trim().is_empty());
    out.sort();
    out.dedup();
    out
}

/// Byte patterns of needles in UTF-8 and Shift_JIS (when every character maps), at least
/// [`MIN_PATTERN_BYTES`] long, indexed for a one-pass scan.
pub struct Patterns {
    /// Whether some pattern starts with these 3 bytes (a fast filter over random bytes).
    prefix3: Vec<bool>,
    by_prefix6: HashMap<[u8; 6], Vec<Pattern>>,
    count: usize,
    sjis_only: usize,
}

struct Pattern {
    bytes: Vec<u8>,
    /// The needle, for reports.
    needle: String,
    /// Shift_JIS bytes that differ from the needle's UTF-8.
    sjis: bool,
}

/// A pattern found: the needle and whether it was found in its Shift_JIS form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hit {
    pub needle: String,
    pub shift_jis: bool,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.shift_jis {
            write!(f, "{} (Shift_JIS)", self.needle)
        } else {
            write!(f, "{}", self.needle)
        }
    }
}

fn prefix3(b: &[u8]) -> usize {
    (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize
}

impl Patterns {
    pub fn new(needles: &[String]) -> Self {
        let mut pats = Patterns { prefix3: vec![false; 1 << 24], by_prefix6: HashMap::new(), count: 0, sjis_only: 0 };
        let mut seen = HashSet::new();
        for n in needles {
            let (sjis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(n);
            let mut forms = vec![(n.as_bytes().to_vec(), false)];
            if !unmappable && sjis.as_ref() != n.as_bytes() {
                forms.push((sjis.into_owned(), true));
            }
            for (bytes, is_sjis) in forms {
                if bytes.len() >= MIN_PATTERN_BYTES && seen.insert(bytes.clone()) {
                    pats.prefix3[prefix3(&bytes)] = true;
                    pats.count += 1;
                    pats.sjis_only += usize::from(is_sjis);
                    let key: [u8; 6] = bytes[..6].try_into().unwrap();
                    pats.by_prefix6.entry(key).or_default().push(Pattern { bytes, needle: n.clone(), sjis: is_sjis });
                }
            }
        }
        pats
    }

    /// Number of distinct byte patterns.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of patterns in a Shift_JIS form that differs from the needle's UTF-8.
    pub fn shift_jis_len(&self) -> usize {
        self.sjis_only
    }

    /// Every occurrence of a pattern in `bytes` (a needle once per position it is found at).
    pub fn find_hits(&self, bytes: &[u8]) -> Vec<Hit> {
        let mut hits = Vec::new();
        for i in 0..bytes.len().saturating_sub(MIN_PATTERN_BYTES - 1) {
            if !self.prefix3[prefix3(&bytes[i..])] {
                continue;
            }
            let Some(list) = self.by_prefix6.get(&bytes[i..i + 6]) else { continue };
            for p in list {
                if bytes[i..].starts_with(&p.bytes) && !chance_digits(bytes, i, p.bytes.len(), &p.bytes) {
                    hits.push(Hit { needle: p.needle.clone(), shift_jis: p.sjis });
                }
            }
        }
        hits
    }

    /// The needles found in `bytes`, as `find_hits` (Shift_JIS hits marked).
    pub fn find(&self, bytes: &[u8]) -> Vec<String> {
        self.find_hits(bytes).iter().map(Hit::to_string).collect()
    }
}

/// Whether a match of the digits-only `pattern` at `at` is digits that happen to be there: inside
/// a longer run of digits (a timestamp's fraction of a second, a count, another number), or inside
/// hexadecimal text of at least 16 characters with a letter `a`–`f` in it (a hash, key or id in
/// hex; the transparency log is full of them). Six given digits turn up by chance in such text
/// about once in a million positions; the identifying value itself is never written that way
/// (and the longer values built from it — insurer and number run together, member ids, phone
/// numbers without hyphens — are needles of their own).
fn chance_digits(bytes: &[u8], at: usize, len: usize, pattern: &[u8]) -> bool {
    if !pattern.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let end = at + len;
    if (at > 0 && bytes[at - 1].is_ascii_digit()) || bytes.get(end).is_some_and(u8::is_ascii_digit) {
        return true;
    }
    let hex = |b: &u8| b.is_ascii_hexdigit();
    let start = at - bytes[..at].iter().rev().take_while(|b| hex(b)).count();
    let stop = end + bytes[end..].iter().take_while(|b| hex(b)).count();
    stop - start >= 16 && bytes[start..stop].iter().any(|b| b.is_ascii_alphabetic())
}

/// What [`scan_folder`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub files: usize,
    pub bytes: u64,
}

/// Reads every file under `dir` (recursively) and panics naming the first file holding a
/// pattern, with its first hits. Files that vanish between listing and reading (SQLite removes
/// its -wal and -shm files when the last connection closes) are skipped and not counted.
pub fn scan_folder(dir: &Path, patterns: &Patterns) -> ScanSummary {
    let mut files = crate::all_files(dir);
    files.sort();
    let mut summary = ScanSummary::default();
    for f in &files {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", f.display()),
        };
        let hits = patterns.find(&bytes);
        assert!(hits.is_empty(), "{} holds {} identifying values in the clear, e.g. {:?}", f.display(), hits.len(), &hits[..hits.len().min(10)]);
        summary.files += 1;
        summary.bytes += bytes.len() as u64;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_inside_a_hash_or_a_longer_number_are_chance() {
        let pats = Patterns::new(&["333699".to_string(), "山田太郎".to_string()]);
        let check = |text: &str, expected: &[&str]| assert_eq!(pats.find(text.as_bytes()), expected, "{text}");
        check("\"sha256\":\"9f1c02ab333699cd7e0e5b6a1d2c3f4e\"", &[]);
        check("\"insurer\":\"333699\"", &["333699"]);
        check("2026-11-22T10:45:33.123336990Z", &[]);
        check("bango=333699;", &["333699"]);
        check("[6,0,0,0]333699[5,0,0,0]", &["333699"]);
        check("short hex ab333699", &["333699"]);
        check("9f1c02ab山田太郎cd7e0e5b6a1d2c3f4e", &["山田太郎"]);
    }

    #[test]
    fn finds_utf8_and_shift_jis_forms_of_long_enough_needles() {
        let pats = Patterns::new(&["山田 太郎".to_string(), "03-1234-5678".to_string(), "山田".to_string(), "12345".to_string()]);
        // 山田 太郎 in UTF-8 and Shift_JIS, the phone once; 山田 (4 bytes in Shift_JIS, 6 in UTF-8).
        assert_eq!(pats.len(), 4);
        assert_eq!(pats.shift_jis_len(), 1);
        let mut bytes = b"xx".to_vec();
        bytes.extend_from_slice(&encoding_rs::SHIFT_JIS.encode("氏名山田 太郎").0);
        bytes.extend_from_slice(b"--03-1234-5678");
        let hits = pats.find_hits(&bytes);
        assert_eq!(hits, [Hit { needle: "山田 太郎".into(), shift_jis: true }, Hit { needle: "03-1234-5678".into(), shift_jis: false }], "{hits:?}");
        assert_eq!(pats.find("患者 山田 太郎 12345".as_bytes()), ["山田 太郎", "山田"]);
        assert!(pats.find(b"12345").is_empty() && pats.find(b"").is_empty() && pats.find(b"03-12").is_empty());
    }

    #[test]
    fn scan_folder_counts_files_and_panics_on_a_hit() {
        let dir = crate::process_temp_dir("niji-testkit-plaintext");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.bin"), [0u8, 1, 2, 3]).unwrap();
        std::fs::write(dir.join("sub/b.bin"), b"nothing here").unwrap();
        let pats = Patterns::new(&["佐藤 花子".to_string()]);
        assert_eq!(scan_folder(&dir, &pats), ScanSummary { files: 2, bytes: 16 });
        std::fs::write(dir.join("sub/c.txt"), "患者: 佐藤 花子").unwrap();
        let err = std::panic::catch_unwind(|| scan_folder(&dir, &pats)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("c.txt holds 1 identifying values in the clear") && msg.contains("佐藤 花子"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
