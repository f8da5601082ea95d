//! A synthetic population (`niji synth`) ingested with niji-ingest into identity records with a
//! record reference (`file:line`, `file:entry`) and their true person (from
//! `truth/records.csv`), in the way niji-privacy's evaluation does it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use niji_ingest::{ingest_path, ContentBody, CsvMapping, Date, IngestConfig, Location};
use niji_privacy::LinkRecord;

pub struct Rec {
    pub record_ref: String,
    pub link: LinkRecord,
    pub person: u64,
}

pub fn generate(dir: &Path, persons: u64) {
    let mut config = niji_synth::SynthConfig::new(dir, persons);
    config.formats = niji_synth::Formats::ALL;
    config.start_year = 2024;
    config.end_year = 2024;
    niji_synth::generate(&config, &mut |_| {}).expect("synth");
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

/// Patients of FHIR Bundles and NDJSON, UKE claims with their payer records, registry persons.
pub fn ingest(dir: &Path) -> Vec<Rec> {
    let truth_text = std::fs::read_to_string(dir.join("truth/records.csv")).unwrap();
    let mut truth: HashMap<(String, u64), u64> = HashMap::new();
    for line in truth_text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let n = if f[0] == "fhir_bundle" { 0 } else { f[3].parse().unwrap() };
        truth.insert((f[1].to_string(), n), f[4].parse().unwrap());
    }
    let config = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../niji-ingest/tests/fixtures");
    let mapping = CsvMapping::from_toml(&std::fs::read_to_string(fixtures.join("synth_persons.toml")).unwrap()).unwrap();
    let mut paths = Vec::new();
    for sub in ["fhir", "ndjson", "uke", "csv"] {
        files(&dir.join(sub), &mut paths);
    }
    paths.sort();
    let mut out = Vec::new();
    let mut push = |rel: &str, n: u64, link: LinkRecord| {
        let person = *truth.get(&(rel.to_string(), n)).expect("truth row");
        out.push(Rec { record_ref: format!("{rel}:{n}"), link, person });
    };
    for p in paths {
        let rel = p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
        let parts: Vec<&str> = rel.split('/').collect();
        let name = *parts.last().unwrap();
        let holder = if parts[0] == "csv" { "registry".to_string() } else { parts[1].to_string() };
        match parts[0] {
            "fhir" | "ndjson" if parts[0] == "fhir" || name == "Patient.ndjson" => {
                let mut recs = Vec::new();
                ingest_path(&p, &config, None, &mut |r| {
                    if matches!(r.content.body, ContentBody::Patient(_)) {
                        recs.push(r)
                    }
                })
                .unwrap();
                for r in recs {
                    let n = match (parts[0], r.content.record.location) {
                        ("fhir", _) => 0,
                        (_, Location::Line(n)) => n,
                        _ => panic!("unexpected location"),
                    };
                    push(&rel, n, LinkRecord { holder: holder.clone(), observed: None, identity: r.identity });
                }
            }
            "uke" => {
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
                let mut recs = Vec::new();
                ingest_path(&p, &config, Some(&mapping), &mut |r| recs.push(r)).unwrap();
                for r in recs {
                    let Location::Line(n) = r.content.record.location else { panic!() };
                    push(&rel, n, LinkRecord { holder: holder.clone(), observed: None, identity: r.identity });
                }
            }
            _ => {}
        }
    }
    out
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(dir, &mut out);
    out
}
