//! Identity normalization before keying: the same person written by different holders' systems
//! must give the same normalized value, because a keyed hash of it (see [`crate::pseudonym`])
//! only matches on equal bytes.
//!
//! What is folded, in order:
//! - [`text`]: Unicode NFKC (full-width digits and letters to ASCII, half-width kana to
//!   full-width, ｶﾞ to ガ, compatibility ideographs to unified ones), variation selectors
//!   (U+FE00–FE0F, U+E0100–E01EF: 藤 + VS17 is 藤) removed, hiragana to katakana, every space
//!   (U+0020, U+3000 and the other Unicode spaces), `・`/`･` and control characters removed,
//!   ASCII letters upper-cased.
//! - [`kanji_name`]: `text` plus the 異体字 table (`niji-synth/data/itaiji.tsv`: 渡邊/渡邉 → 渡辺,
//!   髙 → 高, 﨑 → 崎 …).
//! - [`kana_name`]: `text` plus a phonetic fold that absorbs the typing slips clerks make:
//!   small kana to large (ッ→ツ, ャ→ヤ, ァ→ア …), ヂ→ジ, ヅ→ズ, ヲ→オ, ヰ→イ, ヱ→エ, ヴ→ブ and
//!   ー removed.
//! - [`birth_date`]: ISO, `YYYY/MM/DD`, 西暦 `YYYYMMDD`, 和暦 `GYYMMDD`, `S45.03.02` and
//!   `昭和45年3月2日` (元年 included) to ISO `YYYY-MM-DD`, through `niji_ingest::dates` (the parser
//!   the intake already validates with, so both agree on what a date is).
//! - [`sex`]: `male`/`female`/`M`/`F`/`1`/`2`/`男`/`女` (FHIR, UKE, spreadsheets).
//! - [`insurer_number`], [`insured_symbol`], [`insured_number`], [`branch_number`], [`phone`],
//!   [`postal_code`], [`address`]: width, spaces, zero-fill.
//!
//! Precision cost of the phonetic fold: names that differ only in a folded distinction become
//! one name. ヂ/ジ and ヅ/ズ are pronounced alike and registered interchangeably in practice, so
//! little is lost there; small and large kana are not (キョウコ and キヨウコ, ハットリ and
//! ハツトリ become one), and dropping ー joins オーノ/オノ and サトー/サト, which can be different
//! names. Two different people collide only if they also share birth date and sex and their
//! names differ in nothing else; linkage then still has the kanji name, which is not folded
//! phonetically, to tell them apart (a kana-only agreement never overrides a kanji given-name
//! disagreement).
//!
//! Any change to what these functions return changes the vault's link index: raise
//! [`crate::LINK_INDEX_FORMAT`] with it.
//!
//! Invariants: every function is pure and idempotent (`f(f(x)) == f(x)`, tested with proptest);
//! outputs are NFKC-stable; no function reads a clock or a file (the 異体字 table is compiled in).

use std::collections::HashMap;
use std::sync::OnceLock;

use niji_ingest::dates::{self, Precision};
use niji_ingest::DateError;
use unicode_normalization::UnicodeNormalization;

/// Why a value could not be normalized (never quotes the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("the value is empty after normalization")]
    Empty,
    #[error("not a full date: {0}")]
    Date(#[from] DateError),
    #[error("the date lacks a day")]
    PartialDate,
    #[error("expected digits")]
    NotDigits,
    #[error("unknown sex code")]
    Sex,
}

/// Sex as linkage uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sex {
    Male,
    Female,
    Other,
    Unknown,
}

impl Sex {
    /// One-letter code used inside keys (`M`, `F`, `O`, `U`).
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
            Sex::Other => "O",
            Sex::Unknown => "U",
        }
    }
}

/// Width, spaces, kana script and variation selectors folded; see the module docs.
pub fn text(s: &str) -> String {
    if s.is_ascii() {
        // ASCII is NFKC-stable: one pass, no normalization tables.
        return s.bytes().filter(|b| b.is_ascii_graphic()).map(|b| b.to_ascii_uppercase() as char).collect();
    }
    fixpoint(s, text_pass)
}

/// A kanji (or any) name: [`text`] plus the 異体字 table.
pub fn kanji_name(s: &str) -> String {
    fixpoint(s, kanji_pass)
}

/// A kana name: [`text`] plus the phonetic fold.
pub fn kana_name(s: &str) -> String {
    fixpoint(s, |s| text(s).chars().filter_map(fold_kana).collect())
}

/// Splits a written full name into (family, given) at the first separator (a space of any width
/// or `・`), before normalization. `None` when the name has no separator.
pub fn split_name(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_matches(|c: char| c.is_whitespace());
    let i = s.find(|c: char| c.is_whitespace())?;
    let family = &s[..i];
    let given = s[i..].trim_start_matches(|c: char| c.is_whitespace());
    (!family.is_empty() && !given.is_empty()).then_some((family, given))
}

/// A birth date in any accepted form to ISO `YYYY-MM-DD`.
pub fn birth_date(s: &str) -> Result<String, NormalizeError> {
    let t: String = s.nfkc().filter(|c| !c.is_whitespace()).collect();
    if t.is_empty() {
        return Err(NormalizeError::Empty);
    }
    let d = dates::parse_any(&t)?;
    if d.precision != Precision::Day {
        return Err(NormalizeError::PartialDate);
    }
    Ok(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
}

/// A sex code of FHIR (`male`), UKE (`1`/`2`), spreadsheets (`M`, `男`) or ISO 5218 (`0`, `9`).
pub fn sex(s: &str) -> Result<Sex, NormalizeError> {
    let t = text(s);
    Ok(match t.as_str() {
        "MALE" | "M" | "1" | "男" | "男性" => Sex::Male,
        "FEMALE" | "F" | "2" | "女" | "女性" => Sex::Female,
        "OTHER" | "3" => Sex::Other,
        "UNKNOWN" | "0" | "9" | "U" => Sex::Unknown,
        _ => return Err(NormalizeError::Sex),
    })
}

/// 保険者番号: digits only; a 6-digit 国保 number is zero-filled to 8.
pub fn insurer_number(s: &str) -> Result<String, NormalizeError> {
    let d = digits_only(s)?;
    Ok(if d.len() < 8 { format!("{d:0>8}") } else { d })
}

/// 記号: [`text`] (full-width to ASCII, hiragana to katakana, upper case); hyphens kept.
pub fn insured_symbol(s: &str) -> String {
    text(s)
}

/// 番号: [`text`]; when all digits, leading zeros are dropped (holders zero-fill to different
/// widths).
pub fn insured_number(s: &str) -> String {
    let t = text(s);
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let trimmed = t.trim_start_matches('0');
        if trimmed.is_empty() {
            "0".to_string()
        } else {
            trimmed.to_string()
        }
    } else {
        t
    }
}

/// 枝番: two digits, zero-filled.
pub fn branch_number(s: &str) -> Result<String, NormalizeError> {
    let d = digits_only(s)?;
    let n = d.trim_start_matches('0');
    Ok(format!("{n:0>2}"))
}

/// A phone number: digits only, `+81` turned into the leading `0`.
pub fn phone(s: &str) -> Result<String, NormalizeError> {
    let t = text(s);
    let t = t.strip_prefix("+81").map(|r| format!("0{}", r.trim_start_matches(['-', '(', ')']))).unwrap_or(t);
    let d: String = t.chars().filter(char::is_ascii_digit).collect();
    if d.is_empty() {
        Err(NormalizeError::NotDigits)
    } else {
        Ok(d)
    }
}

/// A postal code: its digits (`〒123-4567` → `1234567`).
pub fn postal_code(s: &str) -> Result<String, NormalizeError> {
    let d: String = text(s).chars().filter(char::is_ascii_digit).collect();
    if d.is_empty() {
        Err(NormalizeError::NotDigits)
    } else {
        Ok(d)
    }
}

/// An address line: [`kanji_name`] folding, then block numbers written `1-2-3` whether they came
/// as `1丁目2番3号`, `12番地5` or with other dashes; a leading postal code mark is dropped.
pub fn address(s: &str) -> String {
    fixpoint(s, address_pass)
}

// ---------------------------------------------------------------------------------------------

fn text_pass(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkc() {
        if c.is_whitespace() || c.is_control() || is_dot(c) || is_variation_selector(c) {
            continue;
        }
        out.push(hiragana_to_katakana(c).to_ascii_uppercase());
    }
    out
}

fn kanji_pass(s: &str) -> String {
    let t = text(s);
    let table = itaiji();
    let mut out = String::with_capacity(t.len());
    for c in t.chars() {
        out.push(*table.get(&c).unwrap_or(&c));
    }
    out
}

/// Applies `pass` until the value stops changing (removing a space or a ー can let NFKC compose
/// what was apart, so one pass is not always idempotent); bounded, in practice one or two passes.
fn fixpoint(s: &str, pass: impl Fn(&str) -> String) -> String {
    let mut cur = pass(s);
    for _ in 0..6 {
        let next = pass(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

fn address_pass(s: &str) -> String {
    let t = kanji_name(s);
    let t = t.trim_start_matches('〒');
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        let prev_digit = out.chars().last().is_some_and(|p: char| p.is_ascii_digit());
        match c {
            '-' | '‐' | '‑' | '–' | '—' | '−' | 'ー' | '－' | 'ｰ' if prev_digit => out.push('-'),
            '丁' if prev_digit && chars.peek() == Some(&'目') => {
                chars.next();
                out.push('-');
            }
            '番' if prev_digit => {
                if chars.peek() == Some(&'地') {
                    chars.next();
                }
                out.push('-');
            }
            '号' if prev_digit => {}
            _ => out.push(c),
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn digits_only(s: &str) -> Result<String, NormalizeError> {
    let t = text(s);
    if t.is_empty() {
        return Err(NormalizeError::Empty);
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NormalizeError::NotDigits);
    }
    Ok(t)
}

fn is_dot(c: char) -> bool {
    matches!(c, '・' | '･' | '·')
}

fn is_variation_selector(c: char) -> bool {
    matches!(c as u32, 0xFE00..=0xFE0F | 0xE0100..=0xE01EF)
}

fn hiragana_to_katakana(c: char) -> char {
    match c as u32 {
        0x3041..=0x3096 | 0x309D..=0x309E => char::from_u32(c as u32 + 0x60).unwrap_or(c),
        _ => c,
    }
}

/// The phonetic fold of one katakana character (`None`: dropped).
fn fold_kana(c: char) -> Option<char> {
    Some(match c {
        'ァ' => 'ア',
        'ィ' => 'イ',
        'ゥ' => 'ウ',
        'ェ' => 'エ',
        'ォ' => 'オ',
        'ッ' => 'ツ',
        'ャ' => 'ヤ',
        'ュ' => 'ユ',
        'ョ' => 'ヨ',
        'ヮ' => 'ワ',
        'ヵ' => 'カ',
        'ヶ' => 'ケ',
        'ヂ' => 'ジ',
        'ヅ' => 'ズ',
        'ヲ' => 'オ',
        'ヰ' => 'イ',
        'ヱ' => 'エ',
        'ヴ' => 'ブ',
        'ー' | '－' | '-' | '‐' | '゛' | '゜' => return None,
        _ => c,
    })
}

/// 異体字 → standard form, from the table shared with `niji-synth` (compiled in). Keys include the
/// NFKC form of every variant, so the map applies after [`text`].
fn itaiji() -> &'static HashMap<char, char> {
    static TABLE: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::new();
        let tsv = include_str!("../../niji-synth/data/itaiji.tsv");
        for line in tsv.lines().filter(|l| !l.starts_with('#')).skip(1) {
            let mut cells = line.split('\t');
            let (Some(variant), Some(standard)) = (cells.next(), cells.next()) else { continue };
            let standard: String = standard.nfkc().filter(|c| !is_variation_selector(*c)).collect();
            let mut sc = standard.chars();
            let (Some(s), None) = (sc.next(), sc.next()) else { continue };
            for v in [variant.to_string(), variant.nfkc().filter(|c| !is_variation_selector(*c)).collect::<String>()] {
                let mut vc = v.chars();
                if let (Some(v), None) = (vc.next(), vc.next()) {
                    if v != s {
                        map.insert(v, s);
                    }
                }
            }
        }
        // A standard form that is itself a variant of another (chains) resolves to the end.
        let keys: Vec<char> = map.keys().copied().collect();
        for k in keys {
            let mut v = map[&k];
            let mut steps = 0;
            while let Some(&next) = map.get(&v) {
                if next == k || steps > 8 {
                    break;
                }
                v = next;
                steps += 1;
            }
            map.insert(k, v);
        }
        map
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert_eq!(kanji_name("渡邊　太郎"), "渡辺太郎");
        assert_eq!(kanji_name("渡邉 太郎"), "渡辺太郎");
        assert_eq!(kanji_name("髙橋・花子"), "高橋花子");
        assert_eq!(kanji_name("山﨑"), "山崎");
        assert_eq!(kanji_name("藤\u{E0100}田"), "藤田");
        assert_eq!(kana_name("ﾜﾀﾅﾍﾞ ﾀﾛｳ"), "ワタナベタロウ");
        assert_eq!(kana_name("わたなべ　たろう"), "ワタナベタロウ");
        assert_eq!(kana_name("ハットリ"), kana_name("ハツトリ"));
        assert_eq!(kana_name("サトー"), kana_name("サト"));
        assert_eq!(kana_name("キョウコ"), kana_name("キヨウコ"));
        assert_eq!(kana_name("フジ"), kana_name("フヂ"));
        assert_eq!(kana_name("ミズキ"), kana_name("ミヅキ"));
        assert_eq!(split_name("山田　太郎"), Some(("山田", "太郎")));
        assert_eq!(split_name("ﾔﾏﾀﾞ ﾀﾛｳ"), Some(("ﾔﾏﾀﾞ", "ﾀﾛｳ")));
        assert_eq!(split_name("山田太郎"), None);
    }

    #[test]
    fn dates_and_codes() {
        for s in ["1970-03-02", "1970/03/02", "19700302", "3450302", "S45.03.02", "昭和45年3月2日", "１９７０－０３－０２"] {
            assert_eq!(birth_date(s).unwrap(), "1970-03-02", "{s}");
        }
        assert_eq!(birth_date("平成元年1月8日").unwrap(), "1989-01-08");
        assert!(birth_date("4310501").is_err());
        assert_eq!(birth_date("1970-03"), Err(NormalizeError::PartialDate));
        for (s, x) in [
            ("male", Sex::Male),
            ("1", Sex::Male),
            ("M", Sex::Male),
            ("男", Sex::Male),
            ("female", Sex::Female),
            ("２", Sex::Female),
            ("女", Sex::Female),
        ] {
            assert_eq!(sex(s).unwrap(), x, "{s}");
        }
        assert_eq!(insurer_number("１３８０１４").unwrap(), "00138014");
        assert_eq!(insurer_number("06132013").unwrap(), "06132013");
        assert_eq!(insured_symbol("あいう"), "アイウ");
        assert_eq!(insured_symbol("ａｂ－１"), "AB-1");
        assert_eq!(insured_number("００１８７"), "187");
        assert_eq!(branch_number("5").unwrap(), "05");
        assert_eq!(branch_number("０５").unwrap(), "05");
        assert_eq!(phone("03-123-1234").unwrap(), "031231234");
        assert_eq!(phone("+81-90-1234-5678").unwrap(), "09012345678");
        assert_eq!(postal_code("〒781-8125").unwrap(), "7818125");
        assert_eq!(address("東京都千代田区丸の内1丁目2番3号"), address("東京都千代田区丸の内１－２－３"));
        assert_eq!(address("高知県高知市五台山12番地5"), "高知県高知市五台山12-5");
    }

    proptest! {
        #[test]
        fn idempotent(s in "\\PC{0,24}") {
            prop_assert_eq!(text(&text(&s)), text(&s));
            prop_assert_eq!(kanji_name(&kanji_name(&s)), kanji_name(&s));
            prop_assert_eq!(kana_name(&kana_name(&s)), kana_name(&s));
            prop_assert_eq!(address(&address(&s)), address(&s));
            prop_assert_eq!(insured_number(&insured_number(&s)), insured_number(&s));
        }

        #[test]
        fn japanese_names_idempotent(s in "[ぁ-ゖァ-ヺｦ-ﾟ一-龥渡邊邉髙﨑　 ・ー]{0,16}") {
            prop_assert_eq!(kanji_name(&kanji_name(&s)), kanji_name(&s));
            prop_assert_eq!(kana_name(&kana_name(&s)), kana_name(&s));
            prop_assert!(!kana_name(&s).contains(['ッ', 'ャ', 'ヂ', 'ヅ', 'ー', ' ', '　']));
        }

        #[test]
        fn dates_round_trip(y in 1900u16..2025, m in 1u8..13, d in 1u8..29) {
            let iso = format!("{y:04}-{m:02}-{d:02}");
            prop_assert_eq!(birth_date(&iso).unwrap(), iso.clone());
            prop_assert_eq!(birth_date(&format!("{y:04}{m:02}{d:02}")).unwrap(), iso.clone());
            prop_assert_eq!(birth_date(&birth_date(&iso).unwrap()).unwrap(), iso);
        }
    }
}
