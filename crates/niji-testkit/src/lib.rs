//! Test support (a dev-dependency only): evaluation against `niji synth`'s ground truth, shared
//! by niji-privacy's linkage test and bench and niji-vault's tests — generate a population, ingest
//! every identity record with niji-ingest, map each to its true person through
//! `truth/records.csv`, and score a key per record with pairwise precision/recall and cluster
//! purity/completeness. [`plaintext`] scans raw bytes (an instance's files, a vault's) for
//! identifying values in the clear; [`logs`] keeps log lines in memory for tests of what is
//! written.
//!
//! Invariant: used by tests and benches only; nothing of the platform depends on it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use niji_ingest::{ingest_path, ContentBody, CsvMapping, Date, IdentifierKind, Identity, IngestConfig, Location};
use niji_privacy::{normalize, LinkRecord};

/// A folder in the temporary directory for this test process (`<prefix>-<pid>`), emptied first.
/// Test binaries keep their generated populations in a process-wide static, which is never
/// dropped; so that runs do not pile up in the temporary directory, the folders of this prefix
/// whose process is gone (no `/proc/<pid>`) are removed on the way.
pub fn process_temp_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|r| r.strip_prefix('-')) else { continue };
            if pid.parse::<u32>().is_ok() && Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub mod logs;
pub mod plaintext;

/// Who a record's patient number (カルテ番号) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderScope {
    /// The hospital: its FHIR export and its claims share patient numbers (the usual case).
    Hospital,
    /// Each format of each hospital is a separate holder (as if claims came from the insurer
    /// side): patient numbers join only claims of one hospital, so hospital records and claims
    /// must meet through names, birth dates and insurance numbers.
    FormatAndHospital,
}

/// Identity records with their true person.
pub struct Dataset {
    pub records: Vec<LinkRecord>,
    /// Where each record came from: `path/under/dir:line` (`:0` for a Bundle's Patient).
    pub record_refs: Vec<String>,
    pub truth: Vec<u64>,
    /// Rows of `truth/records.csv` (every one should have been matched).
    pub truth_rows: usize,
    pub persons: u64,
}

pub fn generate(dir: &Path, persons: u64, formats: niji_synth::Formats, years: i32) -> niji_synth::SynthSummary {
    let mut config = niji_synth::SynthConfig::new(dir, persons);
    config.formats = formats;
    // The period ends with 2024, before the intake's `now`.
    config.end_year = 2024;
    config.start_year = 2025 - years.max(1);
    niji_synth::generate(&config, &mut |_| {}).expect("synth")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(dir, &mut out);
    out
}

/// Ingests the identity records of a generated folder (Bundles, NDJSON Patients, UKE claims with
/// their HO/KO/SN payers, registry persons) and matches them to the truth.
pub fn ingest(dir: &Path, persons: u64, scope: HolderScope) -> Dataset {
    let truth_text = std::fs::read_to_string(dir.join("truth/records.csv")).unwrap();
    let mut truth_map: HashMap<(String, u64), u64> = HashMap::new();
    for line in truth_text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (source, file, line_no, person) = (f[0], f[1], f[3], f[4].parse::<u64>().unwrap());
        let n = if source == "fhir_bundle" { 0 } else { line_no.parse().unwrap() };
        truth_map.insert((file.to_string(), n), person);
    }
    let config = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../niji-ingest/tests/fixtures");
    let persons_map = CsvMapping::from_toml(&std::fs::read_to_string(fixtures.join("synth_persons.toml")).unwrap()).unwrap();

    let mut paths = Vec::new();
    for sub in ["fhir", "ndjson", "uke", "csv"] {
        files(&dir.join(sub), &mut paths);
    }
    paths.sort();
    let mut records = Vec::new();
    let mut record_refs = Vec::new();
    let mut truth = Vec::new();
    let mut push = |rel: &str, n: u64, record: LinkRecord| {
        let person = *truth_map.get(&(rel.to_string(), n)).unwrap_or_else(|| panic!("no truth for {rel}:{n}"));
        records.push(record);
        record_refs.push(format!("{rel}:{n}"));
        truth.push(person);
    };
    for p in paths {
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
        let parts: Vec<&str> = rel.split('/').collect();
        let name = *parts.last().unwrap();
        let holder = match (parts[0], scope) {
            ("csv", _) => "registry".to_string(),
            (_, HolderScope::Hospital) => parts[1].to_string(),
            (format, HolderScope::FormatAndHospital) => format!("{format}:{}", parts[1]),
        };
        match parts[0] {
            "fhir" | "ndjson" => {
                if parts[0] == "ndjson" && name != "Patient.ndjson" {
                    continue;
                }
                let mut out = Vec::new();
                ingest_path(&p, &config, None, &mut |r| {
                    if matches!(r.content.body, ContentBody::Patient(_)) {
                        out.push(r)
                    }
                })
                .unwrap();
                for r in out {
                    let n = match (parts[0], r.content.record.location) {
                        ("fhir", _) => 0,
                        (_, Location::Line(n)) => n,
                        _ => panic!("unexpected location"),
                    };
                    push(&rel, n, LinkRecord { holder: holder.clone(), observed: None, identity: r.identity });
                }
            }
            "uke" => {
                // Claim = RE + the HO/KO/SN records that point at its line.
                let mut claims: Vec<(u64, LinkRecord)> = Vec::new();
                let mut index: HashMap<u64, usize> = HashMap::new();
                ingest_path(&p, &config, None, &mut |r| match &r.content.body {
                    ContentBody::Claim(c) => {
                        let Location::Line(n) = r.content.record.location else { return };
                        let observed = c.month.and_then(|m| Date::new(m.year, m.month, 1).ok());
                        index.insert(n, claims.len());
                        claims.push((n, LinkRecord { holder: holder.clone(), observed, identity: r.identity }));
                    }
                    ContentBody::ClaimPayer(c) => {
                        if let Some(&i) = c.claim.and_then(|l| index.get(&l)) {
                            claims[i].1.identity.items.extend(r.identity.items);
                        }
                    }
                    _ => {}
                })
                .unwrap();
                for (n, c) in claims {
                    push(&rel, n, c);
                }
            }
            "csv" if name == "persons.csv" => {
                let mut out = Vec::new();
                ingest_path(&p, &config, Some(&persons_map), &mut |r| out.push(r)).unwrap();
                for r in out {
                    let Location::Line(n) = r.content.record.location else { panic!() };
                    push(&rel, n, LinkRecord { holder: holder.clone(), observed: None, identity: r.identity });
                }
            }
            _ => {}
        }
    }
    Dataset { records, record_refs, truth, truth_rows: truth_text.lines().count() - 1, persons }
}

/// An insurer-side 資格履歴 file, as identity records: one record per change of a person's
/// member id, holding the old and the new id with the birth date (built from
/// `truth/insurance_history.csv`, which is what such a file holds; persons are not read from it).
pub fn history_records(dir: &Path) -> Vec<LinkRecord> {
    let persons = std::fs::read_to_string(dir.join("truth/persons.csv")).unwrap();
    let mut birth: HashMap<String, (String, String)> = HashMap::new();
    for line in persons.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        birth.insert(f[0].to_string(), (f[4].to_string(), f[3].to_string()));
    }
    let history = std::fs::read_to_string(dir.join("truth/insurance_history.csv")).unwrap();
    let mut out = Vec::new();
    let mut last: Option<(String, String)> = None;
    for line in history.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let member = format!("{}:{}:{}:{}", f[2], f[3], f[4], f[5]);
        if let Some((person, old)) = &last {
            if person == f[0] {
                let (b, sex) = &birth[f[0]];
                let item = |kind, field: &str, value: &str| niji_ingest::IdentityItem { kind, field: field.to_string(), value: value.to_string() };
                out.push(LinkRecord {
                    holder: "insurer-history".to_string(),
                    observed: None,
                    identity: Identity {
                        items: vec![
                            item(IdentifierKind::MemberId, "old", old),
                            item(IdentifierKind::MemberId, "new", &member),
                            item(IdentifierKind::BirthDate, "birth", b),
                            item(IdentifierKind::Sex, "sex", sex),
                        ],
                    },
                });
            }
        }
        last = Some((f[0].to_string(), member));
    }
    out
}

/// Pairwise and cluster figures of predicted labels against true persons.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub precision: f64,
    pub recall: f64,
    pub purity: f64,
    pub completeness: f64,
    pub true_persons: usize,
    pub predicted_persons: usize,
    /// True persons whose records are exactly one predicted cluster.
    pub exact_persons: f64,
}

pub fn metrics<L: Hash + Eq + Clone>(predicted: &[L], truth: &[u64]) -> Metrics {
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let mut cell: HashMap<(&L, u64), u64> = HashMap::new();
    let mut pred: HashMap<&L, u64> = HashMap::new();
    let mut tru: HashMap<u64, u64> = HashMap::new();
    for (p, &t) in predicted.iter().zip(truth) {
        *cell.entry((p, t)).or_default() += 1;
        *pred.entry(p).or_default() += 1;
        *tru.entry(t).or_default() += 1;
    }
    let tp: u64 = cell.values().map(|&c| pairs(c)).sum();
    let pp: u64 = pred.values().map(|&c| pairs(c)).sum();
    let tt: u64 = tru.values().map(|&c| pairs(c)).sum();
    let mut pred_major: HashMap<&L, u64> = HashMap::new();
    let mut true_major: HashMap<u64, u64> = HashMap::new();
    for (&(p, t), &c) in &cell {
        let e = pred_major.entry(p).or_default();
        *e = (*e).max(c);
        let e = true_major.entry(t).or_default();
        *e = (*e).max(c);
    }
    let n = predicted.len() as f64;
    let exact = cell.iter().filter(|(&(p, t), &c)| c == tru[&t] && c == pred[p]).count();
    Metrics {
        precision: if pp == 0 { 1.0 } else { tp as f64 / pp as f64 },
        recall: if tt == 0 { 1.0 } else { tp as f64 / tt as f64 },
        purity: pred_major.values().sum::<u64>() as f64 / n,
        completeness: true_major.values().sum::<u64>() as f64 / n,
        true_persons: tru.len(),
        predicted_persons: pred.len(),
        exact_persons: exact as f64 / tru.len() as f64,
    }
}

fn hash_of<T: Hash>(v: T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

fn first_full_kana(id: &Identity) -> Option<&str> {
    id.items
        .iter()
        .find(|i| i.kind == IdentifierKind::NameKana && !i.field.ends_with(".family") && !i.field.ends_with(".given"))
        .map(|i| i.value.as_str())
}

/// NDB's ID2 as practiced: exact hash of kana name, birth date and sex as written. Records lacking
/// one of them stay alone.
pub fn baseline_id2(records: &[LinkRecord]) -> Vec<u64> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = &r.identity;
            match (first_full_kana(id), id.values(IdentifierKind::BirthDate).next(), id.values(IdentifierKind::Sex).next()) {
                (Some(k), Some(b), Some(s)) => hash_of(("id2", k, b, s)),
                _ => hash_of(("alone", i)),
            }
        })
        .collect()
}

/// ID2 after this crate's normalization (kana fold, ISO dates, sex codes): what normalization
/// alone buys, before any linkage rule.
pub fn baseline_id2_normalized(records: &[LinkRecord]) -> Vec<u64> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = &r.identity;
            let k = first_full_kana(id).map(normalize::kana_name);
            let b = id.values(IdentifierKind::BirthDate).find_map(|v| normalize::birth_date(v).ok());
            let s = id.values(IdentifierKind::Sex).find_map(|v| normalize::sex(v).ok());
            match (k, b, s) {
                (Some(k), Some(b), Some(s)) => hash_of(("id2n", k, b, s)),
                _ => hash_of(("alone", i)),
            }
        })
        .collect()
}

pub fn print_row(label: &str, m: &Metrics) {
    println!(
        "{label:<34} precision {:>7.3}%  recall {:>7.3}%  purity {:>7.3}%  completeness {:>7.3}%  persons {:>6} (true {:>6}, exact {:>6.2}%)",
        m.precision * 100.0,
        m.recall * 100.0,
        m.purity * 100.0,
        m.completeness * 100.0,
        m.predicted_persons,
        m.true_persons,
        m.exact_persons * 100.0
    );
}

/// Prints the records of persons split over several keys or keys shared by several persons
/// (synthetic data only; for diagnosing the rules).
pub fn print_errors<L: Hash + Eq + Clone + std::fmt::Debug>(data: &Dataset, predicted: &[L], limit: usize) {
    let mut by_person: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut by_label: HashMap<&L, Vec<usize>> = HashMap::new();
    for (i, (&t, p)) in data.truth.iter().zip(predicted).enumerate() {
        by_person.entry(t).or_default().push(i);
        by_label.entry(p).or_default().push(i);
    }
    let show = |i: usize| {
        let r = &data.records[i];
        let items: Vec<String> = r
            .identity
            .items
            .iter()
            .filter(|it| {
                !matches!(
                    it.kind,
                    IdentifierKind::Narrative
                        | IdentifierKind::FreeText
                        | IdentifierKind::RecordIdentifier
                        | IdentifierKind::SubjectReference
                        | IdentifierKind::OtherPartyIdentifier
                )
            })
            .map(|it| format!("{:?}={}", it.kind, it.value))
            .collect();
        println!("    person {} holder {} observed {:?}: {}", data.truth[i], r.holder, r.observed, items.join(" | "));
    };
    let mut n = 0;
    let mut persons: Vec<_> = by_person.iter().collect();
    persons.sort();
    for (t, recs) in persons {
        let labels: std::collections::HashSet<&L> = recs.iter().map(|&i| &predicted[i]).collect();
        if labels.len() > 1 && n < limit {
            n += 1;
            println!("  split person {t} into {} keys:", labels.len());
            for l in labels {
                let i = recs.iter().copied().find(|&i| &predicted[i] == l).unwrap();
                show(i);
            }
        }
    }
    let mut n = 0;
    for recs in by_label.values() {
        let persons: std::collections::HashSet<u64> = recs.iter().map(|&i| data.truth[i]).collect();
        if persons.len() > 1 && n < limit {
            n += 1;
            println!("  merged persons {persons:?}:");
            for t in persons {
                show(recs.iter().copied().find(|&i| data.truth[i] == t).unwrap());
            }
        }
    }
}
