//! End-to-end checks of generated data: one 10,000-person run shared by most tests, and
//! small runs for determinism and configuration errors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use niji_core::InsurerNumber;
use niji_synth::{generate, Formats, SynthConfig, SynthError, SynthSummary};

const PERSONS: u64 = 10_000;
/// The default observation period is the calendar year 2024.
const START: &str = "2024-01-01";

/// The shared run: 10,000 people, all formats, seed 1.
fn run() -> &'static (PathBuf, SynthSummary) {
    static RUN: OnceLock<(PathBuf, SynthSummary)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("niji-synth-10k");
        let _ = fs::remove_dir_all(&dir);
        let config = SynthConfig::new(&dir, PERSONS);
        let summary = generate(&config, &mut |_| {}).expect("generate");
        (dir, summary)
    })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Fields of one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// Data rows of a CSV file, each checked to have as many fields as the header.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let columns = csv_fields(lines.next().expect("header")).len();
    lines
        .enumerate()
        .map(|(i, l)| {
            let fields = csv_fields(l);
            assert_eq!(fields.len(), columns, "{}:{}: {l}", path.display(), i + 2);
            fields
        })
        .collect()
}

fn truth_persons(dir: &Path) -> Vec<Vec<String>> {
    csv_rows(&dir.join("truth/persons.csv"))
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("niji-synth-determinism");
    let _ = fs::remove_dir_all(&base);
    let config = |name: &str, seed: u64, threads: usize| {
        let mut c = SynthConfig::new(base.join(name), 1_500);
        c.seed = seed;
        c.threads = threads;
        c.hospitals = 5;
        c
    };
    let a = generate(&config("a", 7, 1), &mut |_| {}).unwrap();
    let b = generate(&config("b", 7, 3), &mut |_| {}).unwrap();
    let c = generate(&config("c", 8, 2), &mut |_| {}).unwrap();
    let tree = |name: &str| -> BTreeMap<PathBuf, Vec<u8>> {
        let root = base.join(name);
        files_under(&root).into_iter().map(|p| (p.strip_prefix(&root).unwrap().to_path_buf(), fs::read(&p).unwrap())).collect()
    };
    let (ta, tb, tc) = (tree("a"), tree("b"), tree("c"));
    assert!(ta.len() > 50, "a run writes files: {}", ta.len());
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>(), "same files");
    for (path, bytes) in &ta {
        assert!(bytes == &tb[path], "{} differs between runs with the same seed", path.display());
    }
    assert_eq!(a.records, b.records);
    assert_eq!(a.bytes, b.bytes);
    assert_ne!(ta.get(Path::new("truth/persons.csv")), tc.get(Path::new("truth/persons.csv")));
    assert_ne!(a.records, c.records);
    let _ = fs::remove_dir_all(&base);
}

#[test]
fn the_summary_matches_the_files() {
    let (dir, summary) = run();
    let files = files_under(dir);
    assert_eq!(summary.persons, PERSONS);
    assert_eq!(summary.files, files.len() as u64);
    let bytes: u64 = files.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(summary.bytes, bytes);
    let truth_rows = csv_rows(&dir.join("truth/records.csv")).len() as u64;
    assert_eq!(summary.records.truth_records, truth_rows);
    assert_eq!(csv_rows(&dir.join("csv/persons.csv")).len() as u64, summary.records.registry_persons);
    assert_eq!(csv_rows(&dir.join("csv/events.csv")).len() as u64, summary.records.registry_events);
    let persons = truth_persons(dir);
    assert_eq!(persons.len() as u64, PERSONS);
    let deaths = persons.iter().filter(|r| !r[18].is_empty()).count() as u64;
    assert_eq!(deaths, summary.deaths);
    let married = persons.iter().filter(|r| !r[9].is_empty()).count();
    assert!(married > 0);
    assert!(summary.records.patients > 1_000, "{summary:?}");
    assert!(summary.records.uke_claims > 1_000, "{summary:?}");
    assert!(summary.records.registry_persons > 10, "{summary:?}");
    // About 1.2% of Japan's population dies in a year.
    let deaths = summary.deaths as f64 / PERSONS as f64;
    assert!((0.006..0.02).contains(&deaths), "yearly death rate {deaths}");
}

fn check_insurer_number(text: &str, context: &str) {
    let n = InsurerNumber::parse(text).unwrap_or_else(|e| panic!("{context}: {text:?}: {e}"));
    assert!(matches!(n.digits().len(), 6 | 8), "{context}: {text}");
}

#[test]
fn every_insurer_number_has_a_valid_check_digit() {
    let (dir, _) = run();
    let history = csv_rows(&dir.join("truth/insurance_history.csv"));
    assert!(history.len() as u64 > PERSONS * 9 / 10);
    for row in &history {
        check_insurer_number(&row[2], "insurance_history.csv");
        if row[2].len() == 8 && &row[2][..2] != "39" {
            assert_eq!(row[5].len(), 2, "枝番 has two digits: {row:?}");
        }
    }
    let mut ho = 0;
    for path in files_under(&dir.join("uke")) {
        for line in decode_uke(&path).lines() {
            let f: Vec<&str> = line.split(',').collect();
            if f[0] == "HO" {
                check_insurer_number(f[1], &path.display().to_string());
                ho += 1;
            }
            if f[0] == "KO" {
                check_insurer_number(f[1], "公費負担者番号");
            }
        }
    }
    assert!(ho > 1_000);
    // Member ids in FHIR: 保険者番号:記号:番号:枝番.
    for path in files_under(&dir.join("ndjson")).iter().filter(|p| p.ends_with("Patient.ndjson")) {
        for line in fs::read_to_string(path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for id in v["identifier"].as_array().unwrap() {
                if id["system"] == "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID" {
                    let member = id["value"].as_str().unwrap();
                    let parts: Vec<&str> = member.split(':').collect();
                    assert_eq!(parts.len(), 4, "{member}");
                    check_insurer_number(parts[0], "member id");
                }
            }
        }
    }
}

#[test]
fn people_aged_75_and_over_are_insured_by_the_kouki_koureisha_system() {
    let (dir, _) = run();
    let start = (2024, 1, 1);
    let births: HashMap<String, (i32, u32, u32)> = truth_persons(dir)
        .into_iter()
        .map(|r| {
            let d: Vec<u32> = r[4].split('-').map(|x| x.parse().unwrap()).collect();
            (r[0].clone(), (d[0] as i32, d[1], d[2]))
        })
        .collect();
    let mut by_person: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    for row in csv_rows(&dir.join("truth/insurance_history.csv")) {
        by_person.entry(row[0].clone()).or_default().push(row);
    }
    let mut old = 0;
    let mut changed = 0;
    for (person, rows) in &by_person {
        let (y, m, d) = births[person];
        let age = start.0 - y - i32::from((m, d) > (start.1, start.2));
        let first = &rows[0];
        if age >= 76 {
            old += 1;
            assert!(first[2].starts_with("39"), "person {person} aged {age} has {first:?}");
        }
        if rows.iter().any(|r| r[1].as_str() >= START) {
            changed += 1;
        }
    }
    assert!(old > 1000);
    // About 11% change insurer in a year, plus 75th birthdays and marriages.
    let share = changed as f64 / by_person.len() as f64;
    assert!((0.09..0.18).contains(&share), "share with an insurance change: {share}");
}

fn decode_uke(path: &Path) -> String {
    let bytes = fs::read(path).unwrap();
    let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!had_errors, "{} is not valid Shift_JIS", path.display());
    text.into_owned()
}

/// Every double-byte character is in JIS X 0208 (no vendor extensions such as NEC row 13
/// or IBM kanji), so that strict Shift_JIS decoders (`iconv -f SHIFT_JIS`) read the file.
fn check_jis_x_0208(bytes: &[u8], path: &Path) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            0x00..=0x7F | 0xA1..=0xDF => i += 1,
            0x81..=0x84 | 0x88..=0x9F | 0xE0..=0xEA => {
                let trail = bytes[i + 1];
                assert!(b != 0xEA || trail <= 0xA4, "{}: code {b:02X}{trail:02X} at {i}", path.display());
                i += 2;
            }
            _ => panic!("{}: byte {b:02X} at {i} is outside JIS X 0208", path.display()),
        }
    }
}

/// Field counts of the UKE 医科 records, as in shared/datasets/uke.
fn uke_fields(record: &str) -> Option<usize> {
    Some(match record {
        "IR" => 10,
        "RE" => 38,
        "HO" => 15,
        "KO" => 12,
        "SN" => 9,
        "SY" => 8,
        "SI" | "IY" => 44,
        "CO" => 5,
        "GO" => 4,
        _ => return None,
    })
}

fn check_uke_file(path: &Path) -> (usize, usize) {
    let bytes = fs::read(path).unwrap();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && bytes[i - 1] == b'\r', "{}: bare LF at byte {i}", path.display());
        }
    }
    assert!(bytes.ends_with(b"\r\n"));
    check_jis_x_0208(&bytes, path);
    let text = decode_uke(path);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let name = path.display().to_string();
    assert!(lines[0].starts_with("IR,"), "{name}: first record {}", lines[0]);
    assert!(lines.last().unwrap().starts_with("GO,"), "{name}: last record");
    // Within a claim: RE, then HO / KO / SN, then SY, then SI / IY / CO.
    let stage = |r: &str| match r {
        "RE" => 0,
        "HO" => 1,
        "KO" => 2,
        "SN" => 3,
        "SY" => 4,
        _ => 5,
    };
    let mut claims = 0;
    let mut wareki = 0;
    let mut last_stage = 0;
    let mut receipt_no = 0;
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let record = fields[0];
        let expected = uke_fields(record).unwrap_or_else(|| panic!("{name}:{}: unknown record {record}", i + 1));
        assert_eq!(fields.len(), expected, "{name}:{}: {record} has {} fields: {line}", i + 1, fields.len());
        match record {
            "IR" => assert_eq!(i, 0, "{name}: IR only first"),
            "GO" => {
                assert_eq!(i, lines.len() - 1, "{name}: GO only last");
                assert_eq!(fields[1].parse::<usize>().unwrap(), claims, "{name}: GO counts the claims");
            }
            "RE" => {
                claims += 1;
                receipt_no += 1;
                assert_eq!(fields[1], receipt_no.to_string(), "{name}: レセプト番号 in sequence");
                assert!(matches!(fields[5], "1" | "2"), "sex");
                match fields[6].len() {
                    8 => {}
                    7 => {
                        wareki += 1;
                        assert!(matches!(&fields[6][..1], "1" | "2" | "3" | "4" | "5"), "era digit");
                    }
                    _ => panic!("{name}: birth date {}", fields[6]),
                }
                assert!(!fields[4].is_empty() && !fields[36].is_empty(), "names");
                last_stage = 0;
            }
            _ => {
                assert!(claims > 0, "{name}:{}: {record} before the first RE", i + 1);
                let s = stage(record);
                assert!(s >= last_stage, "{name}:{}: {record} out of order", i + 1);
                last_stage = s;
            }
        }
    }
    (claims, wareki)
}

#[test]
fn uke_files_are_shift_jis_with_crlf_and_records_in_order() {
    let (dir, summary) = run();
    let files = files_under(&dir.join("uke"));
    assert!(files.iter().all(|p| p.extension().unwrap() == "UKE"));
    let mut claims = 0;
    let mut wareki = 0;
    for path in &files {
        let (c, w) = check_uke_file(path);
        claims += c;
        wareki += w;
    }
    assert_eq!(claims as u64, summary.records.uke_claims);
    assert!(wareki > 0, "some birth dates in 和暦 GYYMMDD");
    assert!(wareki < claims / 2);
}

#[test]
fn the_uke_checks_accept_the_published_sample() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/uke/RECEIPTC_GAIRAI_SAMPLE.UKE");
    if !sample.exists() {
        eprintln!("skipped: {} not found", sample.display());
        return;
    }
    let text = decode_uke(&sample);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        if let Some(n) = uke_fields(fields[0]) {
            assert_eq!(fields.len(), n, "sample {line}");
        }
    }
}

#[test]
fn fhir_bundles_parse_as_collections_with_a_patient_and_narrative() {
    let (dir, summary) = run();
    let files = files_under(&dir.join("fhir"));
    assert_eq!(files.len() as u64, summary.records.fhir_bundles);
    for path in &files {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(v["resourceType"], "Bundle");
        assert_eq!(v["type"], "collection");
        assert_eq!(v["id"], path.file_stem().unwrap().to_str().unwrap());
        let entries = v["entry"].as_array().unwrap();
        let patients: Vec<&serde_json::Value> = entries.iter().map(|e| &e["resource"]).filter(|r| r["resourceType"] == "Patient").collect();
        assert_eq!(patients.len(), 1, "{}", path.display());
        let p = patients[0];
        let div = p["text"]["div"].as_str().unwrap();
        let kanji = p["name"][0]["text"].as_str().unwrap();
        assert!(div.contains(kanji), "narrative repeats the name: {div}");
        if let Some(phone) = p["telecom"][0]["value"].as_str() {
            assert!(div.contains(phone), "narrative repeats the phone");
        }
        assert_eq!(p["name"][1]["extension"][0]["valueCode"], "SYL");
        // Every reference inside the Bundle resolves to an entry.
        let urls: HashSet<&str> = entries.iter().map(|e| e["fullUrl"].as_str().unwrap()).collect();
        for e in entries {
            let r = &e["resource"];
            for key in ["subject", "patient", "encounter", "serviceProvider"] {
                if let Some(reference) = r[key]["reference"].as_str() {
                    assert!(urls.contains(reference), "{}: dangling {reference}", path.display());
                }
            }
        }
    }
}

#[test]
fn ndjson_lines_parse_and_match_their_file() {
    let (dir, summary) = run();
    let mut count = 0u64;
    for path in files_under(&dir.join("ndjson")) {
        let kind = path.file_stem().unwrap().to_str().unwrap().to_string();
        for line in fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(v["resourceType"], kind.as_str());
            count += 1;
        }
    }
    assert_eq!(count, summary.records.ndjson_resources);
}

#[test]
fn ground_truth_covers_every_source_record() {
    let (dir, _) = run();
    let truth = csv_rows(&dir.join("truth/records.csv"));
    let mut keys: HashSet<(String, String, String)> = HashSet::new();
    for row in &truth {
        assert_eq!(row.len(), 5, "{row:?}");
        assert!(row[4].parse::<u64>().unwrap() < PERSONS);
        assert!(keys.insert((row[1].clone(), row[2].clone(), row[3].clone())), "duplicate truth row {row:?}");
    }
    let has = |file: &str, id: &str, line: &str| keys.contains(&(file.to_string(), id.to_string(), line.to_string()));
    let rel = |p: &Path| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
    // Bundles: file and Patient id.
    for path in files_under(&dir.join("fhir")) {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let patient = v["entry"].as_array().unwrap().iter().find(|e| e["resource"]["resourceType"] == "Patient").unwrap();
        assert!(has(&rel(&path), patient["resource"]["id"].as_str().unwrap(), ""), "{}", path.display());
    }
    // NDJSON: Patient id and line.
    for path in files_under(&dir.join("ndjson")).iter().filter(|p| p.ends_with("Patient.ndjson")) {
        for (i, line) in fs::read_to_string(path).unwrap().lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(has(&rel(path), v["id"].as_str().unwrap(), &(i + 1).to_string()), "{}:{}", path.display(), i + 1);
        }
    }
    // UKE: file, レセプト番号 and RE line.
    for path in files_under(&dir.join("uke")) {
        for (i, line) in decode_uke(&path).split("\r\n").enumerate() {
            if let Some(rest) = line.strip_prefix("RE,") {
                let number = rest.split(',').next().unwrap();
                assert!(has(&rel(&path), number, &(i + 1).to_string()), "{}:{}", path.display(), i + 1);
            }
        }
    }
    // Registry: one truth row per persons.csv row.
    let registry = fs::read_to_string(dir.join("csv/persons.csv")).unwrap();
    for (i, line) in registry.lines().enumerate().skip(1) {
        let id = line.split(',').next().unwrap();
        assert!(has("csv/persons.csv", id, &(i + 1).to_string()), "persons.csv:{}", i + 1);
    }
}

#[test]
fn ages_follow_the_pyramid() {
    let (dir, _) = run();
    let persons = truth_persons(dir);
    // Aged 65 and over on the first day of the period: born before 1959-01-01.
    let old = persons.iter().filter(|r| r[4].as_str() < "1959-01-01").count();
    let children = persons.iter().filter(|r| r[4].as_str() >= "2009-01-01").count();
    let share = old as f64 / persons.len() as f64;
    assert!((0.25..0.33).contains(&share), "share aged 65+: {share}");
    let child_share = children as f64 / persons.len() as f64;
    assert!((0.09..0.15).contains(&child_share), "share under 15: {child_share}");
    let women = persons.iter().filter(|r| r[3] == "F").count() as f64 / persons.len() as f64;
    assert!((0.49..0.54).contains(&women), "share of women: {women}");
}

/// Removes the separators holders put between surname and given name.
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !matches!(c, ' ' | '　')).collect()
}

#[test]
fn source_names_are_noisy_and_some_people_look_alike() {
    let (dir, _) = run();
    let persons = truth_persons(dir);
    let canonical: HashMap<u64, (String, String)> =
        persons.iter().map(|r| (r[0].parse().unwrap(), (format!("{}{}", r[5], r[6]), format!("{}{}", r[7], r[8])))).collect();
    let truth = csv_rows(&dir.join("truth/records.csv"));
    let person_of: HashMap<(String, String), u64> = truth.iter().map(|r| ((r[1].clone(), r[2].clone()), r[4].parse().unwrap())).collect();
    let (mut total, mut kanji_differs, mut kana_differs, mut halfwidth, mut separators) = (0, 0, 0, 0, HashSet::new());
    for path in files_under(&dir.join("ndjson")).iter().filter(|p| p.ends_with("Patient.ndjson")) {
        let rel = path.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
        for line in fs::read_to_string(path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let person = person_of[&(rel.clone(), v["id"].as_str().unwrap().to_string())];
            let kanji = v["name"][0]["text"].as_str().unwrap();
            let kana = v["name"][1]["text"].as_str().unwrap();
            let (true_kanji, true_kana) = &canonical[&person];
            total += 1;
            separators.insert(kanji.chars().find(|c| matches!(c, ' ' | '　')));
            if squeeze(kanji) != *true_kanji {
                kanji_differs += 1;
            }
            if squeeze(kana) != *true_kana {
                kana_differs += 1;
            }
            if kana.chars().any(|c| ('\u{FF66}'..='\u{FF9F}').contains(&c)) {
                halfwidth += 1;
            }
        }
    }
    assert!(total > 1_000);
    assert!(kanji_differs > 0, "no 異体字 or marriage differences");
    assert!(kana_differs > total / 50, "kana noise in {kana_differs} of {total}");
    assert!(kanji_differs + kana_differs < total / 2);
    assert!(halfwidth > 0, "some systems keep half-width kana");
    assert_eq!(separators.len(), 3, "full-width space, half-width space and none: {separators:?}");

    // Different people with the same name, birth date and sex (twins' siblings aside).
    let mut groups: HashMap<(String, String, String), Vec<u64>> = HashMap::new();
    for r in &persons {
        groups.entry((format!("{}{}", r[5], r[6]), r[4].clone(), r[3].clone())).or_default().push(r[0].parse().unwrap());
    }
    let shared = groups.values().filter(|g| g.len() > 1).count();
    assert!(shared >= 3, "people sharing name, birth date and sex: {shared}");
    let twins = persons.iter().filter(|r| r[1] == "twin").count();
    assert!(twins > 30, "twins: {twins}");
}

#[test]
fn lab_values_move_with_disease() {
    let (dir, _) = run();
    // HbA1c in the diabetes registry is above the population's.
    let events = csv_rows(&dir.join("csv/events.csv"));
    let hba1c: Vec<f64> = events.iter().filter(|r| r[2] == "lab" && r[4] == "3D046000001920402").map(|r| r[6].parse().unwrap()).collect();
    assert!(hba1c.len() > 20);
    let mean = hba1c.iter().sum::<f64>() / hba1c.len() as f64;
    assert!(mean > 6.5, "mean HbA1c of registered diabetics {mean}");
    assert!(hba1c.iter().all(|&v| (3.5..=15.0).contains(&v)));
}

#[test]
fn progress_is_reported_and_bad_configurations_are_refused() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("niji-synth-config");
    let _ = fs::remove_dir_all(&base);
    let mut config = SynthConfig::new(base.join("run"), 2_500);
    config.formats = Formats::BULK;
    config.progress_every = 1_000;
    let mut reports = Vec::new();
    let summary = generate(&config, &mut |p| reports.push(p.persons_done)).unwrap();
    assert_eq!(reports, vec![1_024, 2_048, 2_500]);
    assert!(reports.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(summary.records.fhir_bundles, 0);
    assert!(!base.join("run/fhir").exists());

    // The same folder again: refused rather than mixed with the earlier files.
    assert!(matches!(generate(&config, &mut |_| {}), Err(SynthError::OutputNotEmpty(_))));

    let check = |mutate: &dyn Fn(&mut SynthConfig)| {
        let mut c = SynthConfig::new(base.join("bad"), 10);
        mutate(&mut c);
        assert!(matches!(generate(&c, &mut |_| {}), Err(SynthError::Config(_))));
    };
    check(&|c| c.hospitals = 0);
    check(&|c| c.end_year = c.start_year - 1);
    check(&|c| c.hospital_share = 1.5);
    check(&|c| c.registry_diseases = vec!["no_such_disease".into()]);

    // An output folder that cannot be made is an I/O error naming the path.
    let blocker = base.join("a_file");
    fs::write(&blocker, b"not a folder").unwrap();
    let err = generate(&SynthConfig::new(blocker.join("out"), 10), &mut |_| {}).unwrap_err();
    assert!(matches!(&err, SynthError::Io { path, .. } if path.starts_with(&blocker)), "{err}");
    let _ = fs::remove_dir_all(&base);
}
