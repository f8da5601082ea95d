//! Ingest of the real examples (CLINS FHIR, the UKE sample) and of `niji_synth` data: zero
//! rejects where expected, the ErrorExamples rejected with their reasons, and no identifying
//! value in any content part.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use niji_ingest::*;

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

fn config() -> IngestConfig {
    IngestConfig::new(Date::new(2026, 11, 21).unwrap())
}

/// Ingests a file, returning its report and its split records.
fn run(path: &Path, config: &IngestConfig, mapping: Option<&CsvMapping>) -> (FileReport, Vec<SplitRecord>) {
    let mut out = Vec::new();
    let report = ingest_path(path, config, mapping, &mut |r| out.push(r)).unwrap();
    (report, out)
}

/// Characters outside ASCII that content may show (Debug output): only unit words.
fn content_non_ascii_ok(debug: &str) -> bool {
    let allowed: HashSet<char> = JAPANESE_UNITS.iter().flat_map(|u| u.chars()).chain(['μ', 'µ']).collect();
    debug.chars().all(|c| c.is_ascii() || allowed.contains(&c))
}

/// Asserts that no identity value of a record appears in its content, that content holds no
/// non-ASCII text besides units, and that none of `secrets` appears in any content.
fn assert_no_leak(records: &[SplitRecord], secrets: &[String]) {
    let mut all = String::new();
    for r in records {
        let debug = format!("{:?}", r.content);
        assert!(content_non_ascii_ok(&debug), "non-ASCII text in content: {debug}");
        for item in &r.identity.items {
            if matches!(item.kind, IdentifierKind::Sex | IdentifierKind::BirthDate) {
                continue; // reduced forms (sex, year-month) are content by design
            }
            let v = item.value.trim();
            let long_enough = if v.is_ascii() { v.len() >= 4 } else { v.chars().count() >= 2 };
            if long_enough {
                assert!(!debug.contains(v), "identity value of {} found in content {debug}", item.field);
            }
        }
        all.push_str(&debug);
        all.push('\n');
    }
    for s in secrets {
        assert!(!all.contains(s.as_str()), "identifying string found in content");
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    v.sort();
    v
}

#[test]
fn clins_examples_accepted_and_split() {
    let dir = datasets().join("clins");
    let config = config();
    let mut records = Vec::new();
    let mut kinds = HashSet::new();
    for path in json_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("ErrorExample") {
            continue;
        }
        let (report, recs) = run(&path, &config, None);
        assert_eq!(report.rejected_records, 0, "{name}: {:?}", report.rejected_lines());
        assert!(report.accepted_total() + report.skipped > 0, "{name}");
        kinds.extend(report.accepted.keys().copied());
        records.extend(recs);
    }
    for k in [
        RecordKind::Patient,
        RecordKind::Condition,
        RecordKind::Observation,
        RecordKind::AllergyIntolerance,
        RecordKind::MedicationRequest,
        RecordKind::Encounter,
        RecordKind::Organization,
        RecordKind::Practitioner,
    ] {
        assert!(kinds.contains(&k), "{k:?} never accepted");
    }
    // The MAKINO patient: identity has name, kana, phone, address, member id parts, narrative.
    let (_, recs) = run(&dir.join("Patient-Example-JP-Patient-eCS-MAKINO.json"), &config, None);
    let id = &recs[0].identity;
    assert_eq!(id.values(IdentifierKind::NameKanji).next(), Some("牧野 爛漫"));
    assert_eq!(id.values(IdentifierKind::NameKana).next(), Some("マキノ ランマン"));
    assert!(id.values(IdentifierKind::Phone).any(|p| p == "03-123-1234"));
    assert!(id.values(IdentifierKind::PostalCode).any(|p| p == "781-8125"));
    assert_eq!(id.values(IdentifierKind::InsuredSymbol).next(), Some("あいう"));
    assert_eq!(id.values(IdentifierKind::InsuredNumber).next(), Some("１８７"));
    assert_eq!(id.values(IdentifierKind::BranchNumber).next(), Some("05"));
    match &recs[0].content.body {
        ContentBody::Patient(p) => {
            assert_eq!(p.sex, Some(Sex::Female));
            assert_eq!(p.birth, Some(YearMonth { year: 1930, month: 6 }));
            assert_eq!(p.prefecture.map(|p| p.code()), Some(39));
        }
        other => panic!("{other:?}"),
    }
    let secrets: Vec<String> =
        ["牧野", "爛漫", "マキノ", "ランマン", "03-123-1234", "03-0123-4545", "五台山", "781-8125", "000999739", "00012345", "あいう", "１８７"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    assert_no_leak(&records, &secrets);
    // Narratives of bundles end up in identity only.
    assert!(records.iter().any(|r| r.identity.values(IdentifierKind::Narrative).next().is_some()));
}

#[test]
fn clins_error_examples_rejected_with_reasons() {
    let dir = datasets().join("clins");
    let mut config = config();
    config
        .masters
        .load(
            CodeSystem::GeneralDrugName,
            "general_drug_name_master.txt",
            std::fs::File::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/general_drug_name_master.txt")).unwrap(),
        )
        .unwrap();
    let cases = [
        (
            "MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json",
            "MedicationRequest.medicationCodeableConcept.coding",
            Reason::NoStandardDrugCode,
        ),
        (
            "MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days.json",
            "MedicationRequest.medicationCodeableConcept.coding[0].code",
            Reason::NotInMaster(CodeSystem::GeneralDrugName),
        ),
        ("Observation-ErrorExample-ObsLabo-eGFR.json", "Observation.code.coding", Reason::NoLocalLabCode),
    ];
    for (file, field, reason) in cases {
        let (report, recs) = run(&dir.join(file), &config, None);
        assert!(recs.is_empty(), "{file} accepted");
        assert_eq!(report.rejected_records, 1, "{file}");
        assert!(report.rejected.iter().any(|p| p.field == field && p.reason == reason), "{file}: {:?}", report.rejected_lines());
        for line in report.rejected_lines() {
            assert!(line.starts_with(&format!("{file}:entry 0:")), "{line}");
            println!("{line}");
        }
    }
    // Their valid twins pass with the same configuration.
    for twin in [
        "MedicationRequest-Example-JP-MedReq-PO-SID-28days.json",
        "Observation-Example-JP-Obs-LabResult-eCS-eGFR.json",
        "MedicationRequest-Example-JP-MedReq-ExtSkin-Total2.json",
    ] {
        let (report, _) = run(&dir.join(twin), &config, None);
        assert_eq!(report.rejected_records, 0, "{twin}: {:?}", report.rejected_lines());
    }
}

#[test]
fn uke_sample_accepted_and_split() {
    let path = datasets().join("uke/RECEIPTC_GAIRAI_SAMPLE.UKE");
    let (report, records) = run(&path, &config(), None);
    assert_eq!(report.rejected_records, 0, "{:?}", report.rejected_lines());
    assert_eq!(report.accepted[&RecordKind::Uke(UkeRecord::RE)], 75);
    assert_eq!(report.accepted[&RecordKind::Uke(UkeRecord::SI)], 320);
    let res: Vec<&SplitRecord> = records.iter().filter(|r| matches!(r.content.body, ContentBody::Claim(_))).collect();
    assert_eq!(res[0].identity.values(IdentifierKind::NameKanji).next(), Some("テスト\u{3000}汎用"));
    assert_eq!(res[0].identity.values(IdentifierKind::NameKana).next(), Some("テストハンヨウ"));
    // The very long 傷病名 and the CO comments are free text in identity.
    assert!(records.iter().any(|r| r.identity.values(IdentifierKind::FreeText).any(|t| t.starts_with("寿限無"))));
    assert!(records.iter().any(|r| r.identity.values(IdentifierKind::FreeText).any(|t| t == "疼痛時")));
    let secrets: Vec<String> =
        ["テスト", "汎用", "カキクケコ", "寿限無", "疼痛時", "右眼", "05012345678", "01010016", "13642", "1111111", "00697", "ミヤコゾヤヨイ"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    // 13642 is a point total in HO: content keeps it as a number, so leave it out of the secrets.
    let secrets: Vec<String> = secrets.into_iter().filter(|s| s != "13642").collect();
    assert_no_leak(&records, &secrets);
}

/// With the 傷病名 and 医薬品 masters loaded, a claim line whose code is missing from them is
/// rejected at its line; the codes the masters hold pass.
#[test]
fn uke_codes_missing_from_a_loaded_master_are_rejected() {
    let path = datasets().join("uke/RECEIPTC_GAIRAI_SAMPLE.UKE");
    let mut config = config();
    // The disease master holds only 0000999 (未コード化傷病名); the drug master holds every
    // drug code the sample uses but 620098801.
    config.masters.load(CodeSystem::ReceiptDisease, "receipt-disease.csv", "0,B,0000999,未コード化傷病名\n".as_bytes()).unwrap();
    let (_, all) = run(&path, &self::config(), None);
    let mut drugs = String::from("変更区分,マスター種別,医薬品コード\n");
    for r in &all {
        if let ContentBody::ClaimLine(l) = &r.content.body {
            if l.code.system == CodeSystem::ReceiptDrug && l.code.code.as_str() != "620098801" {
                drugs.push_str(&format!("0,Y,{}\n", l.code.code.as_str()));
            }
        }
    }
    config.masters.load(CodeSystem::ReceiptDrug, "receipt-drug.csv", drugs.as_bytes()).unwrap();
    let (report, _) = run(&path, &config, None);
    let lines = report.rejected_lines();
    assert!(lines.iter().any(|l| l.ends_with(":SY.1(傷病名コード): code is not in the loaded レセ電傷病名コード master")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.ends_with(":IY.3(医薬品コード): code is not in the loaded レセ電医薬品コード master")), "{lines:#?}");
    // As many rejects as lines with those codes (the fields are ASCII up to the code).
    let bytes = std::fs::read(&path).unwrap();
    let with_code = |record: &[u8], field: usize, code: &dyn Fn(&[u8]) -> bool| {
        bytes.split(|&b| b == b'\n').filter(|l| l.starts_with(record) && l.split(|&b| b == b',').nth(field).is_some_and(code)).count()
    };
    let missing = lines.iter().filter(|l| l.contains("not in the loaded")).count();
    let diseases = with_code(b"SY,", 1, &|c| c != b"0000999");
    assert!(diseases > 0 && diseases < with_code(b"SY,", 1, &|_| true));
    assert_eq!(missing, diseases + with_code(b"IY,", 3, &|c| c == b"620098801"), "{lines:#?}");
    // Only the rejects' own lines (and what belongs to them) are lost, not the file.
    assert!(report.accepted_total() > 0);
}

/// 修飾語 of a 傷病名 and the comment codes of a claim line are checked against their masters
/// too, at their own fields.
#[test]
fn uke_modifiers_and_comment_codes_are_checked_against_their_masters() {
    let text = "IR,1,13,1,0000000,,病院,202110,00,0300000000\r\n\
RE,1,1112,202110,山田　太郎,1,19911031,,,,,,,001,,,,,,,,,,,,,,,,,,,,,,,ヤマダ,\r\n\
HO,01010016,１,１,1,100,,,,,,,,,\r\n\
SY,8833421,20210801,1,20568002,,01,\r\n\
SY,8833421,20210801,1,2056,,,\r\n\
SI,11,2,111000110,,288,1,810000001,,820000002,\r\n\
SI,11,2,111000110,,288,1,810000001,\r\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
    let mut config = config();
    config.masters.load(CodeSystem::DiseaseModifier, "disease-modifier.csv", "2056\n".as_bytes()).unwrap();
    config.masters.load(CodeSystem::ReceiptComment, "receipt-comment.csv", "810000001\n".as_bytes()).unwrap();
    let report = uke::ingest_uke("t.UKE", &sjis[..], &config, &mut |_| {}).unwrap();
    let lines = report.rejected_lines();
    assert_eq!(
        lines,
        [
            "t.UKE:4:SY.4(修飾語コード): code is not in the loaded 修飾語コード master",
            "t.UKE:6:SI.9(コメントコード): code is not in the loaded コメントコード master",
        ],
        "{lines:#?}"
    );
}

/// An Organization's 保険医療機関番号 is checked against a loaded facility master: a number of
/// the right shape that the master does not list is rejected at its identifier; without a
/// master only the shape is checked.
#[test]
fn fhir_facility_numbers_are_checked_against_a_loaded_master() {
    let org = |number: &str| {
        format!(
            r#"{{"resourceType":"Organization","id":"o{number}","identifier":[{{"system":"http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no","value":"{number}"}}],"name":"病院"}}"#
        )
    };
    let ndjson = [org("1312345678"), org("1399999999"), org("13123")].join("\n") + "\n";
    let mut with_master = config();
    with_master.masters.load(CodeSystem::FacilityNumber, "facility-number.csv", "医療機関番号,名称\n1312345678,病院\n".as_bytes()).unwrap();
    let mut facilities = Vec::new();
    let report = fhir::ingest_ndjson("o.ndjson", ndjson.as_bytes(), &with_master, &mut |r| {
        if let ContentBody::Organization(o) = &r.content.body {
            facilities.push(o.facility.as_ref().map(|c| c.code.as_str().to_string()));
        }
    })
    .unwrap();
    assert_eq!(
        report.rejected_lines(),
        [
            "o.ndjson:2:Organization.identifier[0].value: code is not in the loaded 保険医療機関番号 master",
            "o.ndjson:3:Organization.identifier[0].value: not a valid 保険医療機関番号 (wrong shape)",
        ]
    );
    assert_eq!(facilities, [Some("1312345678".to_string())]);
    // Without the master, the unlisted number of the right shape is accepted.
    let report = fhir::ingest_ndjson("o.ndjson", ndjson.as_bytes(), &config(), &mut |_| {}).unwrap();
    assert_eq!(report.rejected_lines(), ["o.ndjson:3:Organization.identifier[0].value: not a valid 保険医療機関番号 (wrong shape)"]);
}

#[test]
fn uke_problems_are_located() {
    let text = "IR,1,13,1,0000000,,病院,202110,00,0300000000\r\n\
RE,1,1112,202110,山田　太郎,1,19911131,,,,,,,001,,,,,,,,,,,,,,,,,,,,,,,ヤマダ,\r\n\
HO,01010016,１,１,1,100,,,,,,,,,\r\n\
RE,2,1112,202110,山田　花子,2,4310501,,,,,,,002,,,,,,,,,,,,,,,,,,,,,,,ヤマダ,\r\n\
RE,3,1112,202110,山田　次郎,1,3640107,,,,,,,003,,,,,,,,,,,,,,,,,,,,,,,ヤマダ,\r\n\
HO,01010017,１,１,1,100,,,,,,,,,\r\n\
SY,250001,20210801,1,,,01,\r\n\
IY,,2,62009880,1,1,2,,,,,,,2\r\n\
RE,4,1112,202110,山田　三郎,1,20991231,,,,,,,004,,,,,,,,,,,,,,,,,,,,,,,ヤマダ,\r\n";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(text);
    let mut out = Vec::new();
    let report = uke::ingest_uke("t.UKE", &sjis[..], &config(), &mut |r| out.push(r)).unwrap();
    let lines = report.rejected_lines();
    let expect = [
        "t.UKE:2:RE.6(生年月日): not a real calendar date",
        "t.UKE:3:RE: belongs to a rejected claim (RE)",
        "t.UKE:4:RE.6(生年月日): date lies outside its era",
        "t.UKE:6:HO.1(保険者番号): insurer number check digit is wrong",
        "t.UKE:7:SY.1(傷病名コード): not a valid レセ電傷病名コード (wrong shape)",
        "t.UKE:8:IY.3(医薬品コード): not a valid レセ電医薬品コード (wrong shape)",
        "t.UKE:9:RE.6(生年月日): date is in the future",
    ];
    for e in expect {
        assert!(lines.iter().any(|l| l == e), "missing {e} in {lines:#?}");
    }
    for l in &lines {
        assert!(!l.contains("山田") && !l.contains("01010017") && !l.contains("1991"), "{l}");
    }
    // 昭和64年1月7日 is fine.
    assert!(out.iter().any(|r| matches!(&r.content.body, ContentBody::Claim(c) if c.birth == Some(YearMonth { year: 1989, month: 1 }))));
}

/// A claim whose line is not Shift_JIS is rejected, and so are its payers and lines: they must
/// not fall to the claim before it, whose person they are not (its member id would link two
/// people).
#[test]
fn the_lines_of_an_undecodable_claim_are_rejected_with_it() {
    let head = "IR,1,13,1,0000000,,病院,202110,00,0300000000\r\n\
RE,1,1112,202110,山田　太郎,1,19911031,,,,,,,001,,,,,,,,,,,,,,,,,,,,,,,ヤマダ,\r\n\
HO,01010016,１,１,1,100,,,,,,,,,\r\n";
    let tail = "HO,06132013,１,２,1,100,,,,,,,,,\r\nIY,,2,620098801,1,1,2,,,,,,,2\r\n";
    let mut bytes = encoding_rs::SHIFT_JIS.encode(head).0.into_owned();
    // Line 4: an RE whose name holds a byte pair Shift_JIS does not have.
    bytes.extend_from_slice(b"RE,2,1112,202110,\x85\x40,1,19911031,,,,,,,002,,,,,,,,,,,,,,,,,,,,,,,,\r\n");
    bytes.extend_from_slice(&encoding_rs::SHIFT_JIS.encode(tail).0);
    let mut out = Vec::new();
    let report = uke::ingest_uke("t.UKE", &bytes[..], &config(), &mut |r| out.push(r)).unwrap();
    let lines = report.rejected_lines();
    for e in ["t.UKE:4:: line is not valid Shift_JIS", "t.UKE:5:RE: belongs to a rejected claim (RE)", "t.UKE:6:RE: belongs to a rejected claim (RE)"]
    {
        assert!(lines.iter().any(|l| l == e), "missing {e} in {lines:#?}");
    }
    // Only the first claim's payer reached the sink.
    let payers = out.iter().filter(|r| matches!(r.content.body, ContentBody::ClaimPayer(_))).count();
    assert_eq!(payers, 1);

    // The same with a claim line rejected for its length.
    let long_re = format!("RE,2,1112,202110,山田　次郎,1,19911031,,,,,,,002,{},,\r\n", "9".repeat(300));
    let text = format!("{head}{long_re}{tail}");
    let bytes = encoding_rs::SHIFT_JIS.encode(&text).0.into_owned();
    let config = IngestConfig { max_line_bytes: 200, ..config() };
    let mut out = Vec::new();
    let report = uke::ingest_uke("t.UKE", &bytes[..], &config, &mut |r| out.push(r)).unwrap();
    let lines = report.rejected_lines();
    for e in ["t.UKE:5:RE: belongs to a rejected claim (RE)", "t.UKE:6:RE: belongs to a rejected claim (RE)"] {
        assert!(lines.iter().any(|l| l == e), "missing {e} in {lines:#?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("t.UKE:4::")), "{lines:#?}");
    assert_eq!(out.iter().filter(|r| matches!(r.content.body, ContentBody::ClaimPayer(_))).count(), 1);
}

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, ext, out);
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
            out.push(p);
        }
    }
    out.sort();
}

#[test]
fn synthetic_population_ingests_without_rejects() {
    let dir = tempfile::tempdir().unwrap();
    niji_synth::generate(&niji_synth::SynthConfig::new(dir.path(), 300), &mut |_| {}).unwrap();
    // Strict CLINS rules: synthetic lab results carry a local code, uncoded drugs the 標準コードなし marker.
    let config = config();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let persons_map = CsvMapping::from_toml(&std::fs::read_to_string(fixtures.join("synth_persons.toml")).unwrap()).unwrap();
    let events_map = CsvMapping::from_toml(&std::fs::read_to_string(fixtures.join("synth_events.toml")).unwrap()).unwrap();
    let mut records = Vec::new();
    let mut totals = std::collections::BTreeMap::new();
    for ext in ["json", "ndjson", "uke", "csv"] {
        let mut paths = Vec::new();
        collect(dir.path(), ext, &mut paths);
        assert!(!paths.is_empty() || ext == "csv", "no {ext} files");
        for p in paths {
            if p.starts_with(dir.path().join("truth")) {
                continue;
            }
            let mapping = match p.file_name().unwrap().to_str().unwrap() {
                "persons.csv" => Some(&persons_map),
                "events.csv" => Some(&events_map),
                _ => None,
            };
            let (report, recs) = run(&p, &config, mapping);
            assert_eq!(report.rejected_records, 0, "{}: {:#?}", p.display(), report.rejected_lines().iter().take(20).collect::<Vec<_>>());
            for (k, n) in &report.accepted {
                *totals.entry(*k).or_insert(0u64) += n;
            }
            records.extend(recs);
        }
    }
    println!("{totals:?}");
    assert!(totals.get(&RecordKind::Patient).copied().unwrap_or(0) > 0);
    assert!(totals.get(&RecordKind::Uke(UkeRecord::RE)).copied().unwrap_or(0) > 0);
    // Identifying strings from the ground truth never reach content.
    let truth = std::fs::read_to_string(dir.path().join("truth/persons.csv")).unwrap();
    let mut lines = truth.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let mut secrets = HashSet::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        for col in ["surname", "given_name", "surname_kana", "given_name_kana", "postal_code", "address", "home_phone", "mobile_phone"] {
            let v = f[idx(col)];
            if v.chars().count() >= 2 && (!v.is_ascii() || v.len() >= 6) {
                secrets.insert(v.to_string());
            }
        }
    }
    // Content holds no non-ASCII text but units, so only ASCII secrets need a search.
    let ascii: Vec<String> = secrets.into_iter().filter(|s| s.is_ascii()).collect();
    let mut content_tokens = HashSet::new();
    for r in &records {
        let d = format!("{:?}", r.content);
        for t in d.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            content_tokens.insert(t.to_string());
        }
    }
    for s in &ascii {
        assert!(!content_tokens.contains(s), "truth identifier in content");
    }
    assert_no_leak(&records, &[]);
}

#[test]
fn csv_problems_are_located() {
    let mapping = CsvMapping::from_toml(
        r#"
[[column]]
name = "id"
role = "identifier"
kind = "patient_id"
required = true
[[column]]
name = "ins"
role = "identifier"
kind = "insurer_number"
[[column]]
name = "born"
role = "quasi"
type = "birth_date"
[[column]]
name = "muni"
role = "quasi"
type = "municipality"
[[column]]
name = "dx"
role = "content"
type = "code"
system = "icd10"
"#,
    )
    .unwrap();
    let mut config = config();
    config.member_insurer_check = Severity::Reject;
    let csv = "id,ins,born,muni,dx\nP1,01010016,S20.07.06,131016,E11.9\n,01010017,H31.05.01,99999,11.9\nP3,０１０１００１６,2030-01-01,13101,I10\n";
    let mut out = Vec::new();
    let report = csv_map::ingest_csv("p.csv", csv.as_bytes(), &mapping, &config, &mut |r| out.push(r)).unwrap();
    let lines = report.rejected_lines();
    for e in [
        "p.csv:3:id: required element is missing",
        "p.csv:3:ins: insurer number check digit is wrong",
        "p.csv:3:born: date lies outside its era",
        "p.csv:3:muni: not a valid JIS X 0402 municipality code",
        "p.csv:3:dx: not a valid ICD-10 (wrong shape)",
        "p.csv:4:born: date is in the future",
    ] {
        assert!(lines.contains(&e.to_string()), "missing {e} in {lines:#?}");
    }
    assert_eq!(report.accepted_total(), 1);
    let ContentBody::Row(values) = &out[0].content.body else { panic!() };
    assert!(values.iter().any(|v| v.value == Value::YearMonth(YearMonth { year: 1945, month: 7 })));
    assert!(values.iter().any(|v| matches!(v.value, Value::Municipality(m) if m.code() == 13101)));
    assert!(values.iter().any(|v| matches!(v.value, Value::Prefecture(p) if p.code() == 1)));
    assert_eq!(out[0].identity.values(IdentifierKind::PatientId).next(), Some("P1"));
}

/// The mapping of a file with a free-text column, in `encoding`.
fn note_mapping(encoding: &str) -> CsvMapping {
    CsvMapping::from_toml(&format!("encoding = \"{encoding}\"\n{}", include_str!("fixtures/note-mapping.toml"))).unwrap()
}

#[test]
fn csv_quoted_cells_span_lines() {
    // An EHR's comment column with line breaks (CRLF inside the cell), quotes and a comma; a
    // bad row after it is located at its own line; a quote left open is refused at its line.
    let csv = "id,note,dx\r\nP1,\"夫の○○さんも\r\n通院中\",E11.9\r\nP2,\"a \"\"quoted\"\" word, and a comma\",11.9\r\nP3,\"\",I10\r\nP4,\"never\r\nclosed,I10\r\nP5,ok,I10\r\n";
    let cases: [(&str, Vec<u8>); 2] = [("utf-8", csv.as_bytes().to_vec()), ("shift_jis", encoding_rs::SHIFT_JIS.encode(csv).0.into_owned())];
    for (encoding, bytes) in cases {
        let mut out = Vec::new();
        let report = csv_map::ingest_csv("n.csv", &bytes[..], &note_mapping(encoding), &config(), &mut |r| out.push(r)).unwrap();
        assert_eq!(
            report.rejected_lines(),
            [
                "n.csv:4:dx: not a valid ICD-10 (wrong shape)",
                "n.csv:6:: row is longer than the line limit, or its quoted cell is not closed by the end of the file; its 3 lines are not read as rows"
            ],
            "{encoding}"
        );
        assert_eq!((report.accepted_total(), report.rejected_records), (2, 2), "{encoding}");
        let notes: Vec<Vec<&str>> = out.iter().map(|r| r.identity.values(IdentifierKind::FreeText).collect()).collect();
        assert_eq!(notes, [vec!["夫の○○さんも\n通院中"], vec![]], "{encoding}");
    }
}

#[test]
fn csv_rows_past_the_line_limit_are_refused_where_they_start() {
    // The row opened on line 2 passes the limit on line 3 and its quote closes on line 5, a line
    // longer than the limit on its own: the row is refused at line 2, none of its lines (a note
    // line that looks like a row among them) is read, and reading goes on at line 6. A line too
    // long on its own is refused as such.
    let mut config = config();
    config.max_line_bytes = 40;
    let long = "x".repeat(45);
    let csv = format!(
        "id,note,dx\nP1,\"first line of a note\nP9,a note line,E11.9\nsecond line\n{long} closing\",E11.9\nP2,ok,I10\nP3,{long},I10\nP4,ok,I10\n"
    );
    let mut out = Vec::new();
    let report = csv_map::ingest_csv("l.csv", csv.as_bytes(), &note_mapping("utf-8"), &config, &mut |r| out.push(r)).unwrap();
    assert_eq!(
        report.rejected_lines(),
        [
            "l.csv:2:: row is longer than the line limit, or its quoted cell is not closed by the end of the file; its 4 lines are not read as rows",
            "l.csv:7:: line is longer than the limit"
        ]
    );
    assert_eq!(report.rejected_records, 2);
    let ids: Vec<&str> = out.iter().flat_map(|r| r.identity.values(IdentifierKind::PatientId)).collect();
    assert_eq!(ids, ["P2", "P4"]);
}

#[test]
fn csv_rows_of_the_limit_are_read_whatever_their_line_ends() {
    // 40 bytes with LF or with CRLF (the CR is not the row's), inside quotes across lines too.
    let mut config = config();
    config.max_line_bytes = 40;
    let row = format!("P1,{},I10", "n".repeat(33));
    let quoted = format!("P2,\"{}\r\n{}\",I10", "q".repeat(15), "q".repeat(15));
    assert_eq!((row.len(), quoted.len() - 1), (40, 40));
    for end in ["\n", "\r\n"] {
        let csv = format!("id,note,dx{end}{row}{end}{quoted}{end}");
        let report = csv_map::ingest_csv("e.csv", csv.as_bytes(), &note_mapping("utf-8"), &config, &mut |_| {}).unwrap();
        assert_eq!((report.rejected_lines(), report.accepted_total()), (Vec::<String>::new(), 2), "{end:?}");
        let longer = csv.replacen("P1,", "P1,n", 1);
        let report = csv_map::ingest_csv("e.csv", longer.as_bytes(), &note_mapping("utf-8"), &config, &mut |_| {}).unwrap();
        assert_eq!(report.rejected_lines(), ["e.csv:2:: line is longer than the limit"], "{end:?}");
    }
}

#[test]
fn csv_files_whose_header_cannot_be_read_stop_there() {
    // A header too long, or with a quote left open, is refused, and no row after it is read
    // (there is nothing to match their cells with).
    let mut config = config();
    config.max_line_bytes = 40;
    for (csv, first) in [
        (format!("id,note,dx,{}\nP1,{},I10\nP2,ok,I10\n", "y".repeat(40), "z".repeat(40)), "l.csv:1:: line is longer than the limit"),
        (
            "\"id,note,dx\nP1,ok,I10\n".to_string(),
            "l.csv:1:: row is longer than the line limit, or its quoted cell is not closed by the end of the file; its 2 lines are not read as rows",
        ),
    ] {
        let mut out = Vec::new();
        let report = csv_map::ingest_csv("l.csv", csv.as_bytes(), &note_mapping("utf-8"), &config, &mut |r| out.push(r)).unwrap();
        assert_eq!(report.rejected_lines(), [first]);
        assert!(out.is_empty());
    }
}

#[test]
fn csv_shift_jis_second_bytes_are_not_delimiters_and_a_bom_is_not_a_cell() {
    // `|` (0x7C) and `\` (0x5C) are second bytes of Shift_JIS characters (－ is 81 7C, 表 is
    // 95 5C): with either as the delimiter, a note holding them stays one cell, and the quote
    // after them opens nothing. A UTF-8 byte order mark before quoted header cells.
    for delimiter in ['|', '\\'] {
        let mapping =
            CsvMapping::from_toml(&format!("delimiter = '{delimiter}'\nencoding = \"shift_jis\"\n{}", include_str!("fixtures/note-mapping.toml")))
                .unwrap();
        let d = delimiter;
        let csv = format!("id{d}note{d}dx\r\nP1{d}表－\"x{d}E11.9\r\nP2{d}ok{d}I10\r\n");
        let bytes = encoding_rs::SHIFT_JIS.encode(&csv).0.into_owned();
        let mut out = Vec::new();
        let report = csv_map::ingest_csv("s.csv", &bytes[..], &mapping, &config(), &mut |r| out.push(r)).unwrap();
        assert_eq!((report.rejected_lines(), report.accepted_total()), (Vec::<String>::new(), 2), "{delimiter}");
        assert_eq!(out[0].identity.values(IdentifierKind::FreeText).collect::<Vec<_>>(), ["表－\"x"], "{delimiter}");
    }
    let csv = "\u{feff}\"id\",\"note\",dx\nP1,\"a\nb\",I10\n";
    let report = csv_map::ingest_csv("b.csv", csv.as_bytes(), &note_mapping("utf-8"), &config(), &mut |_| {}).unwrap();
    assert_eq!((report.rejected_lines(), report.accepted_total()), (Vec::<String>::new(), 1));
}

#[test]
fn fhir_problems_are_located() {
    let ndjson = concat!(
        r#"{"resourceType":"Patient","id":"a","identifier":[{"system":"x","value":"1"}],"birthDate":"2023-02-29","gender":"male"}"#,
        "\n",
        "not json\n",
        r#"{"resourceType":"Condition","code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10","code":"E1"}]}}"#,
        "\n",
        r#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://medis.or.jp/CodeSystem/master-JLAC10-17digits","code":"3F070000002327101"}]},"subject":{"reference":"Patient/a"},"effectiveDateTime":"2099-01-01"}"#,
        "\n",
        r#"{"resourceType":"Nonsense"}"#,
        "\n",
        r##"{"resourceType":"MedicationRequest","status":"completed","intent":"order","subject":{"reference":"#nope"},"medicationCodeableConcept":{"coding":[{"system":"http://capstandard.jp/iyaku.info/CodeSystem/YJ-code","code":"1190012F1042"}]}}"##,
        "\n",
    );
    let report = fhir::ingest_ndjson("r.ndjson", ndjson.as_bytes(), &config(), &mut |_| {}).unwrap();
    let lines = report.rejected_lines();
    for e in [
        "r.ndjson:1:Patient.birthDate: not a real calendar date",
        "r.ndjson:2:: not valid JSON",
        "r.ndjson:3:Condition.code.coding[0].code: not a valid ICD-10 (wrong shape)",
        "r.ndjson:3:Condition.subject: required element is missing",
        "r.ndjson:4:Observation.effectiveDateTime: date is in the future",
        "r.ndjson:5:resourceType: not a FHIR resource type",
        "r.ndjson:6:MedicationRequest.subject.reference: reference to a contained resource that is not there",
    ] {
        assert!(lines.contains(&e.to_string()), "missing {e} in {lines:#?}");
    }
    assert_eq!(report.rejected_records, 6);
}

#[test]
fn overlong_ndjson_line_is_rejected_and_reading_goes_on() {
    let mut config = config();
    config.max_line_bytes = 1000;
    let mut input = String::new();
    input.push_str(&format!("{{\"resourceType\":\"Patient\",\"id\":\"{}\"}}\n", "x".repeat(5000)));
    input.push_str(r#"{"resourceType":"Patient","identifier":[{"system":"s","value":"v"}]}"#);
    input.push('\n');
    let report = fhir::ingest_ndjson("big.ndjson", input.as_bytes(), &config, &mut |_| {}).unwrap();
    assert_eq!(report.rejected_lines(), vec!["big.ndjson:1:: line is longer than the limit".to_string()]);
    assert_eq!(report.accepted[&RecordKind::Patient], 1);
}

#[test]
fn status_codes_cannot_carry_numbers() {
    let line = r#"{"resourceType":"Encounter","status":"5342613637","class":{"code":"AMB"}}"#;
    let report = fhir::ingest_ndjson("e.ndjson", line.as_bytes(), &config(), &mut |_| {}).unwrap();
    assert_eq!(report.rejected_lines(), vec!["e.ndjson:1:Encounter.status: not a valid status code (wrong shape)".to_string()]);
}

/// A CodeableConcept's text that repeats a coding's display is not free text; any other text is,
/// and goes to the identity part.
#[test]
fn concept_text_is_free_text_unless_it_repeats_a_display() {
    let check = |text: &str, expected_free_text: bool| {
        let json = format!(
            r#"{{"resourceType":"Condition","id":"c1","subject":{{"reference":"Patient/p1"}},"clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}}]}},"code":{{"coding":[{{"system":"http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full","code":"E785","display":"脂質異常症"}}],"text":"{text}"}}}}"#
        );
        let mut records = Vec::new();
        let report = niji_ingest::fhir::ingest_json("c.json", json.as_bytes(), &config(), &mut |r| records.push(r));
        assert_eq!(report.rejected_records, 0, "{:?}", report.rejected_lines());
        let free: Vec<&str> = records[0].identity.values(niji_ingest::IdentifierKind::FreeText).collect();
        assert_eq!(!free.is_empty(), expected_free_text, "{text}: {free:?}");
        if expected_free_text {
            assert_eq!(free, [text]);
        }
    };
    check("脂質異常症", false);
    check(" 脂質異常症 ", false);
    check("脂質異常症（夫の山田さんも通院中）", true);
    check("高脂血症", true);
}
