//! The lake over synthetic data: round trip of row counts, wrong key and damaged files refused,
//! no plaintext in the files, atomic versions (abort + recover leaves nothing), statistics equal
//! to the tables read back.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow_array::{Array, Date32Array, FixedSizeBinaryArray, StringArray};
use niji_ingest::{ingest_path, CodeSystem, ContentBody, Date, IdentifierKind, IngestConfig, SplitRecord};
use niji_lake::{commit, open_table, read_table, recover, LakeError, LakeKey, LakeOptions, LakeWriter, COVERAGE_YEARS, TABLES};
use niji_privacy::{Domain, PersonKey, Pseudonymizer, VaultKey};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const KEY: LakeKey = LakeKey([0x42; 32]);

/// Synthetic records of 300 persons, by file (FHIR JSON, NDJSON, UKE, the registry CSVs with
/// their mappings).
fn records() -> &'static Vec<Vec<SplitRecord>> {
    static RECORDS: OnceLock<Vec<Vec<SplitRecord>>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        niji_synth::generate(&niji_synth::SynthConfig::new(dir.path(), 300), &mut |_| {}).unwrap();
        let mut config = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
        config.clins_strict = false;
        let mut paths = Vec::new();
        collect(dir.path(), &mut paths);
        let mut files = Vec::new();
        for p in paths {
            if p.starts_with(dir.path().join("truth")) {
                continue;
            }
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            if !["json", "ndjson", "uke", "csv"].contains(&ext.as_str()) {
                continue;
            }
            let mapping = match p.file_name().and_then(|n| n.to_str()) {
                _ if ext != "csv" => None,
                Some("persons.csv") => Some(csv_mapping("synth_persons.toml")),
                Some("events.csv") => Some(csv_mapping("synth_events.toml")),
                _ => continue,
            };
            let mut out = Vec::new();
            ingest_path(&p, &config, mapping.as_ref(), &mut |r| out.push(r)).unwrap();
            files.push(out);
        }
        files
    })
}

fn csv_mapping(name: &str) -> niji_ingest::CsvMapping {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../niji-ingest/tests/fixtures").join(name);
    niji_ingest::CsvMapping::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
    out.sort();
}

/// A keyed stand-in for linkage: the pseudonym of the record's subject (or its position).
fn person_key(p: &Pseudonymizer, file: usize, r: &SplitRecord) -> PersonKey {
    let subject = r
        .identity
        .values(IdentifierKind::SubjectReference)
        .chain(r.identity.values(IdentifierKind::PatientId))
        .chain(r.identity.values(IdentifierKind::MemberId))
        .next()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{file}:{:?}", r.content.record.location));
    p.keyed(Domain::Person, &[&subject])
}

/// Rows each table should get from the records.
fn expected(files: &[Vec<SplitRecord>]) -> [u64; TABLES.len()] {
    let mut n = [0u64; TABLES.len()];
    for r in files.iter().flatten() {
        match &r.content.body {
            ContentBody::Patient(_) => n[0] += 1,
            ContentBody::Encounter(_) => n[1] += 1,
            ContentBody::Condition(_) | ContentBody::ClaimDisease(_) => n[2] += 1,
            ContentBody::Medication(_) => n[3] += 1,
            ContentBody::Observation(o) => n[4] += 1 + o.components.len() as u64,
            ContentBody::Allergy(_) => n[5] += 1,
            ContentBody::Claim(_) => n[6] += 1,
            ContentBody::ClaimLine(_) => n[7] += 1,
            ContentBody::Row(values) => n[8] += values.len() as u64,
            _ => {}
        }
    }
    n
}

/// Writes all records as version `v1` of a lake in `root`; returns the version folder.
fn write_version(root: &Path, options: LakeOptions) -> (PathBuf, niji_lake::LakeSummary) {
    let pseudo = Pseudonymizer::new(&VaultKey::from_bytes(&[7; 32]).unwrap());
    let staging = root.join(".staging-v1");
    let mut w = LakeWriter::create(&staging, &KEY, options).unwrap();
    for (i, file) in records().iter().enumerate() {
        w.set_file(i as i32);
        for r in file {
            w.push(&person_key(&pseudo, i, r), &r.content).unwrap();
        }
    }
    let summary = w.finish().unwrap();
    let version = root.join("v1");
    commit(&staging, &version).unwrap();
    (version, summary)
}

#[test]
fn round_trip_counts_match_ingest() {
    let root = tempfile::tempdir().unwrap();
    // Small batches and row groups: exercises flushing many row groups.
    let (version, summary) = write_version(root.path(), LakeOptions { batch_rows: 500, row_group_rows: 1000 });
    let want = expected(records());
    assert_eq!(summary.rows, want);
    println!("rows per table {:?}, skipped {}", summary.rows, summary.skipped);
    for (i, t) in TABLES.iter().enumerate() {
        let batches = read_table(&version, t, &KEY).unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, want[i], "{t}");
        if let Some(b) = batches.first() {
            assert_eq!(b.schema().field(0).name(), "person_key");
        }
    }
    for t in ["patients", "conditions", "medications", "lab_results", "claims", "claim_lines", "registry_values"] {
        assert!(summary.rows_of(t) > 0, "synthetic data has no {t}");
    }
    assert!(!root.path().join(".staging-v1").exists());
    // A claim line's and a claim disease's institution is their claim's (the IR before it).
    let facility_by_claim = |table: &str| -> Vec<((i32, i64), Option<String>)> {
        let mut out = Vec::new();
        for b in read_table(&version, table, &KEY).unwrap() {
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let (file, claim, facility) = (col("file"), col("claim"), col("facility_code"));
            let file = file.as_any().downcast_ref::<arrow_array::Int32Array>().unwrap();
            let claim = claim.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            let facility = facility.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            for r in 0..b.num_rows() {
                if !claim.is_null(r) {
                    out.push(((file.value(r), claim.value(r)), (!facility.is_null(r)).then(|| facility.value(r).to_owned())));
                }
            }
        }
        out
    };
    let claims: std::collections::HashMap<(i32, i64), Option<String>> = facility_by_claim("claims").into_iter().collect();
    assert!(claims.values().any(Option::is_some), "synthetic claims name facilities");
    for table in ["claim_lines", "conditions"] {
        let rows = facility_by_claim(table);
        assert!(!rows.is_empty(), "{table}");
        for (claim, facility) in rows {
            assert_eq!(claims.get(&claim), Some(&facility), "{table} {claim:?}");
        }
    }
}

#[test]
fn wrong_key_and_damaged_files_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (version, _) = write_version(root.path(), LakeOptions::default());
    let wrong = LakeKey([0x43; 32]);
    for t in TABLES {
        let err = read_table(&version, t, &wrong).unwrap_err();
        assert!(matches!(err, LakeError::Unreadable { .. }), "{t}: {err:?}");
        assert!(err.to_string().contains("wrong key or damaged file"), "{err}");
    }
    // One flipped byte, early (first page header / page) and in the middle (data pages).
    let path = version.join("lab_results.parquet");
    let original = fs::read(&path).unwrap();
    for at in [24, original.len() / 3, original.len() / 2] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = read_table(&version, "lab_results", &KEY).unwrap_err();
        assert!(matches!(err, LakeError::Unreadable { .. }), "byte {at}: {err:?}");
    }
    fs::write(&path, &original).unwrap();
    assert!(read_table(&version, "lab_results", &KEY).is_ok());
    // A table's file moved in place of another is refused (the AAD binds the table name).
    fs::copy(version.join("allergies.parquet"), version.join("encounters.parquet")).unwrap();
    assert!(matches!(open_table(&version, "encounters", &KEY), Err(LakeError::Unreadable { .. })));
}

#[test]
fn files_hold_no_plaintext() {
    let root = tempfile::tempdir().unwrap();
    let (version, _) = write_version(root.path(), LakeOptions::default());
    // Codes that occur in the data: as text when ≥ 5 bytes (a chance match in ciphertext is
    // negligible); every code, short ones like ICD-10 "I10" too, as `System:code` (how secondary
    // codings are stored) and as plain Parquet stores a string value (4-byte little-endian
    // length, then the bytes).
    let mut needles: HashSet<Vec<u8>> = HashSet::new();
    let mut icd = Vec::new();
    for r in records().iter().flatten() {
        let codes: Vec<_> = match &r.content.body {
            ContentBody::Condition(c) => c.codes.clone(),
            ContentBody::Medication(m) => m.codes.clone(),
            ContentBody::Observation(o) => o.codes.clone(),
            ContentBody::Allergy(a) => a.codes.clone(),
            ContentBody::ClaimDisease(d) => vec![d.code.clone()],
            ContentBody::ClaimLine(l) => vec![l.code.clone()],
            _ => vec![],
        };
        for c in codes {
            let text = c.code.as_str().as_bytes();
            if c.system == CodeSystem::Icd10 {
                icd.push(c.code.as_str().to_string());
            }
            if text.len() >= 5 {
                needles.insert(text.to_vec());
            }
            needles.insert(format!("{:?}:{}", c.system, c.code.as_str()).into_bytes());
            let mut framed = (text.len() as u32).to_le_bytes().to_vec();
            framed.extend_from_slice(text);
            needles.insert(framed);
        }
    }
    assert!(icd.iter().any(|c| c == "I10"), "synthetic conditions carry ICD-10 I10");
    // Column names and code-system names would be in a plaintext footer or page; disease and
    // drug names never reach content at all.
    for s in [
        "person_key",
        "code_system",
        "birth_year_month",
        "claim_lines",
        "Icd10",
        "ReceiptDisease",
        "niji-lake",
        "PAR1",
        "本態性高血圧症",
        "Hypertension",
    ] {
        needles.insert(s.as_bytes().to_vec());
    }
    // Person keys are binary: the first ones written must not show either.
    let pseudo = Pseudonymizer::new(&VaultKey::from_bytes(&[7; 32]).unwrap());
    for r in records()[0].iter().take(20) {
        needles.insert(person_key(&pseudo, 0, r).as_bytes().to_vec());
    }
    assert!(needles.len() > 100, "too few needles: {}", needles.len());
    println!("{} needles", needles.len());
    // Control: the same rows as plain Parquet do show the needles (the search would see a leak).
    let mut plain = Vec::new();
    let batches = read_table(&version, "conditions", &KEY).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut plain, batches[0].schema(), None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    let first_code = batches[0].column_by_name("code").unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap().value(0).to_string();
    let mut framed = (first_code.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(first_code.as_bytes());
    assert!(contains(&plain, &framed) && contains(&plain, b"Icd10:I10") && contains(&plain, b"person_key"), "control: plain Parquet shows codes");
    assert!(needles.contains(&framed) && needles.contains(b"Icd10:I10".as_slice()));
    for t in TABLES {
        let bytes = fs::read(version.join(format!("{t}.parquet"))).unwrap();
        assert_eq!(&bytes[..4], b"PARE", "{t}: encrypted-footer magic");
        for n in &needles {
            assert!(!contains(&bytes, n), "{t}: {:?} in plaintext", String::from_utf8_lossy(n));
        }
        // A plain Parquet reader without keys cannot read the file.
        let file = fs::File::open(version.join(format!("{t}.parquet"))).unwrap();
        assert!(ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).is_err(), "{t} readable without key");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn aborted_write_leaves_no_version() {
    let root = tempfile::tempdir().unwrap();
    let lake = root.path();
    let pseudo = Pseudonymizer::new(&VaultKey::from_bytes(&[7; 32]).unwrap());
    let staging = lake.join(".staging-v2");
    {
        let mut w = LakeWriter::create(&staging, &KEY, LakeOptions { batch_rows: 100, row_group_rows: 100 }).unwrap();
        for r in records()[0].iter().take(500) {
            w.push(&person_key(&pseudo, 0, r), &r.content).unwrap();
        }
        // Dropped without finish: like a killed process.
    }
    assert!(staging.exists());
    assert!(read_table(&staging, "patients", &KEY).is_err(), "unfinished file must not read");
    assert_eq!(recover(lake).unwrap(), 1);
    assert_eq!(fs::read_dir(lake).unwrap().count(), 0, "nothing left");
    assert_eq!(recover(lake).unwrap(), 0);
}

#[test]
fn staging_rules_and_no_overwrite() {
    let root = tempfile::tempdir().unwrap();
    assert!(matches!(LakeWriter::create(&root.path().join("v1"), &KEY, LakeOptions::default()), Err(LakeError::BadStaging)));
    let staging = root.path().join(".staging-a");
    LakeWriter::create(&staging, &KEY, LakeOptions::default()).unwrap().finish().unwrap();
    assert!(matches!(LakeWriter::create(&staging, &KEY, LakeOptions::default()), Err(LakeError::BadStaging)));
    fs::create_dir(root.path().join("v1")).unwrap();
    assert!(matches!(commit(&staging, &root.path().join("v1")), Err(LakeError::VersionExists)));
    commit(&staging, &root.path().join("v2")).unwrap();
    // An empty version still has every table, readable and empty.
    for t in TABLES {
        assert_eq!(read_table(&root.path().join("v2"), t, &KEY).unwrap().len(), 0);
    }
    assert!(matches!(read_table(&root.path().join("v2"), "nope", &KEY), Err(LakeError::UnknownTable)));
}

/// Days since 1970-01-01, counted naively (independent of the lake's formula).
fn epoch_days(year: i32, month: u32, day: u32) -> i32 {
    let leap = |y: i32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut n: i32 = 0;
    if year >= 1970 {
        n += (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum::<i32>();
    } else {
        n -= (year..1970).map(|y| if leap(y) { 366 } else { 365 }).sum::<i32>();
    }
    let lengths = [31, if leap(year) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    n += lengths[..month as usize - 1].iter().sum::<i32>();
    n + day as i32 - 1
}

fn date_days(d: Date) -> i32 {
    epoch_days(d.year as i32, d.month as u32, d.day as u32)
}

#[test]
fn statistics_match_tables_read_back() {
    let root = tempfile::tempdir().unwrap();
    let (version, summary) = write_version(root.path(), LakeOptions { batch_rows: 700, row_group_rows: 1500 });
    let (lo, hi) = (epoch_days(*COVERAGE_YEARS.start() as i32, 1, 1), epoch_days(*COVERAGE_YEARS.end() as i32, 12, 31));
    // Date columns that make a table's coverage; claims' `month` (YYYY-MM) counts as its first day.
    let event_columns = |t: &str| -> &'static [&'static str] {
        match t {
            "encounters" => &["start", "end"],
            "conditions" | "allergies" => &["onset", "recorded"],
            "medications" => &["authored"],
            "lab_results" => &["effective"],
            "claims" => &["admitted_on", "month"],
            "registry_values" => &["value_date"],
            _ => &[],
        }
    };
    let mut all_persons: HashSet<Vec<u8>> = HashSet::new();
    let mut overall: Option<(i32, i32)> = None;
    for t in TABLES {
        let stats = summary.table(t).unwrap();
        let batches = read_table(&version, t, &KEY).unwrap();
        let mut rows = 0u64;
        let mut persons: HashSet<Vec<u8>> = HashSet::new();
        let mut days: Vec<i32> = Vec::new();
        for b in &batches {
            rows += b.num_rows() as u64;
            let keys = b.column_by_name("person_key").unwrap().as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
            persons.extend(keys.iter().map(|k| k.unwrap().to_vec()));
            for c in event_columns(t) {
                let col = b.column_by_name(c).unwrap();
                if let Some(a) = col.as_any().downcast_ref::<Date32Array>() {
                    days.extend(a.iter().flatten());
                } else {
                    let a = col.as_any().downcast_ref::<StringArray>().unwrap();
                    for ym in a.iter().flatten() {
                        let (y, m) = ym.split_once('-').unwrap();
                        days.push(epoch_days(y.parse().unwrap(), m.parse().unwrap(), 1));
                    }
                }
            }
        }
        assert_eq!(stats.rows, rows, "{t} rows");
        assert_eq!(summary.rows_of(t), rows, "{t} rows_of");
        assert_eq!(stats.persons, persons.len() as u64, "{t} persons");
        let plausible: Vec<i32> = days.iter().copied().filter(|d| (lo..=hi).contains(d)).collect();
        let want = plausible.iter().min().zip(plausible.iter().max()).map(|(a, b)| (*a, *b));
        let got = stats.first.zip(stats.last).map(|(a, b)| (date_days(a), date_days(b)));
        assert_eq!(got, want, "{t} coverage");
        assert_eq!(stats.first.is_some(), stats.last.is_some());
        if let Some((a, b)) = want {
            overall = Some(overall.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        println!(
            "{t}: {} rows, {} persons, {:?} – {:?} ({} dates, {} implausible)",
            rows,
            persons.len(),
            stats.first,
            stats.last,
            days.len(),
            days.len() - plausible.len()
        );
        all_persons.extend(persons);
    }
    assert_eq!(summary.persons(), all_persons.len() as u64);
    assert_eq!(summary.coverage().map(|(a, b)| (date_days(a), date_days(b))), overall);
    assert_eq!(summary.tables().map(|(t, _)| t).collect::<Vec<_>>(), TABLES);
    // The synthetic data has dated rows in these tables, and the coverage is a real range.
    for t in ["encounters", "conditions", "medications", "lab_results", "claims", "registry_values"] {
        let s = summary.table(t).unwrap();
        assert!(s.rows > 0 && s.persons > 0 && s.first.is_some() && s.first <= s.last, "{t}: {s:?}");
    }
    for t in ["patients", "claim_lines"] {
        let s = summary.table(t).unwrap();
        assert!(s.first.is_none() && s.last.is_none(), "{t} has no event dates");
    }
    assert!(summary.persons() > 0 && summary.persons() >= summary.table("patients").unwrap().persons);
    assert!(summary.table("nope").is_none());
}
