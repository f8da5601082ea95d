//! Robustness: arbitrary bytes and mutated valid inputs never panic any parser, every reject is
//! located, and reports never echo input bytes they were not built from.

use std::path::Path;

use niji_ingest::*;
use proptest::prelude::*;

fn config() -> IngestConfig {
    IngestConfig::new(Date::new(2026, 11, 21).unwrap())
}

fn datasets() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

fn check_report(report: &FileReport, lines: u64) {
    for p in report.rejected.iter().chain(&report.warnings) {
        match p.location {
            Location::Line(n) => assert!(n >= 1 && n <= lines.max(1), "line {n} of {lines}"),
            Location::Entry(_) | Location::File => {}
        }
        let text = report.format(p);
        assert!(text.starts_with(&report.file));
    }
    // Every rejected record has at least one located problem.
    assert!(report.rejected.len() as u64 >= report.rejected_records);
}

fn lines_of(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, byte, op) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let i = pos % v.len();
        match op % 4 {
            0 => v[i] = byte,
            1 => v.insert(i, byte),
            2 => {
                v.remove(i);
            }
            _ => v.truncate(i),
        }
    }
    v
}

fn uke_sample() -> Vec<u8> {
    std::fs::read(datasets().join("uke/RECEIPTC_GAIRAI_SAMPLE.UKE")).unwrap()
}

fn json_sample() -> Vec<u8> {
    std::fs::read(datasets().join("clins/Bundle-Bundle-CLINS-Observations-Example-01.json")).unwrap()
}

const NDJSON: &str = concat!(
    r#"{"resourceType":"Patient","id":"p","identifier":[{"system":"http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID","value":"01010016::123:01"}],"name":[{"text":"山田 太郎"}],"gender":"male","birthDate":"1950-01-02"}"#,
    "\n",
    r#"{"resourceType":"Condition","code":{"coding":[{"system":"http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full","code":"E119"}]},"subject":{"reference":"Patient/p"},"onsetDateTime":"2020-01-01"}"#,
    "\n",
    r#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://medis.or.jp/CodeSystem/master-JLAC10-17digits","code":"3F070000002327101"}]},"subject":{"reference":"Patient/p"},"valueQuantity":{"value":1.5,"unit":"mg/dL"}}"#,
    "\n",
);

const NOTE_MAPPING: &str = include_str!("fixtures/note-mapping.toml");

const CSV: &str = "id,born,dx,val\nP1,1950-01-02,E11.9,1.5\nP2,S20.07.06,I10,2\n";
const MAPPING: &str = r#"
[[column]]
name = "id"
role = "identifier"
kind = "patient_id"
required = true
[[column]]
name = "born"
role = "identifier"
kind = "birth_date"
[[column]]
name = "dx"
role = "content"
type = "code"
system = "icd10"
[[column]]
name = "val"
role = "content"
type = "number"
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn uke_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let report = uke::ingest_uke("f.UKE", &bytes[..], &config(), &mut |_| {}).unwrap();
        check_report(&report, lines_of(&bytes));
    }

    #[test]
    fn uke_mutated(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..20)) {
        let bytes = mutate(&uke_sample(), &edits);
        let report = uke::ingest_uke("f.UKE", &bytes[..], &config(), &mut |_| {}).unwrap();
        check_report(&report, lines_of(&bytes));
    }

    #[test]
    fn ndjson_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let report = fhir::ingest_ndjson("f.ndjson", &bytes[..], &config(), &mut |_| {}).unwrap();
        check_report(&report, lines_of(&bytes));
    }

    #[test]
    fn ndjson_mutated(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..10)) {
        let bytes = mutate(NDJSON.as_bytes(), &edits);
        let report = fhir::ingest_ndjson("f.ndjson", &bytes[..], &config(), &mut |_| {}).unwrap();
        check_report(&report, lines_of(&bytes));
    }

    #[test]
    fn json_mutated(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..10)) {
        let bytes = mutate(&json_sample(), &edits);
        let report = fhir::ingest_json("f.json", &bytes, &config(), &mut |_| {});
        check_report(&report, 1);
        if report.accepted_total() == 0 && report.skipped == 0 {
            prop_assert!(report.rejected_records > 0 || bytes.is_empty() || report.rejected.is_empty());
        }
    }

    #[test]
    fn json_arbitrary_values(v in arb_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let report = fhir::ingest_json("f.json", &bytes, &config(), &mut |_| {});
        check_report(&report, 1);
    }

    #[test]
    fn csv_mutated(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..10)) {
        let mapping = CsvMapping::from_toml(MAPPING).unwrap();
        let bytes = mutate(CSV.as_bytes(), &edits);
        let report = csv_map::ingest_csv("f.csv", &bytes[..], &mapping, &config(), &mut |_| {}).unwrap();
        check_report(&report, lines_of(&bytes));
    }

    /// Any cell text, written as a spreadsheet writes CSV (quoted, quotes doubled), reads back
    /// as it was (CRLF inside it as LF, spaces at its ends trimmed), however many lines it takes,
    /// and the rows after it keep their own line numbers.
    #[test]
    fn csv_quoted_cells_read_back(notes in proptest::collection::vec("[a-z\",\r\n ○]{0,12}", 1..6), buffer in 1usize..8, form in 0..3) {
        // UTF-8, UTF-8 with a byte order mark before a quoted header, Shift_JIS.
        let (mark, shift_jis) = (form == 1, form == 2);
        let encoding = if shift_jis { "encoding = \"shift_jis\"\n" } else { "" };
        let mapping = CsvMapping::from_toml(&format!("{encoding}{NOTE_MAPPING}")).unwrap();
        let mut csv = String::from(if mark { "\u{feff}\"id\",\"note\",dx\r\n" } else { "id,note,dx\r\n" });
        for (i, note) in notes.iter().enumerate() {
            csv.push_str(&format!("P{i},\"{}\",E11.9\r\n", note.replace('"', "\"\"")));
        }
        // A bad row last, located at the line it starts on.
        csv.push_str("PX,,E1\r\n");
        let bad_line = csv.matches('\n').count();
        let bytes = if shift_jis { encoding_rs::SHIFT_JIS.encode(&csv).0.into_owned() } else { csv.clone().into_bytes() };
        let mut out = Vec::new();
        let report = csv_map::ingest_csv("q.csv", &bytes[..], &mapping, &config(), &mut |r| out.push(r)).unwrap();
        prop_assert_eq!(report.rejected_lines(), vec![format!("q.csv:{bad_line}:dx: not a valid ICD-10 (wrong shape)")]);
        prop_assert_eq!(out.len(), notes.len());
        // The same read through a buffer of a few bytes (a CRLF, a quote pair or a character split
        // between two reads).
        let mut small = Vec::new();
        let again = csv_map::ingest_csv("q.csv", std::io::BufReader::with_capacity(buffer, &bytes[..]), &mapping, &config(), &mut |r| small.push(r)).unwrap();
        prop_assert_eq!(again.rejected_lines(), report.rejected_lines());
        prop_assert_eq!(format!("{small:?}"), format!("{out:?}"));
        for (record, note) in out.iter().zip(&notes) {
            let want = note.replace("\r\n", "\n");
            let want: Vec<&str> = Some(want.trim()).filter(|t| !t.is_empty()).into_iter().collect();
            prop_assert_eq!(record.identity.values(IdentifierKind::FreeText).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn mapping_arbitrary_text(text in "\\PC{0,300}") {
        let _ = CsvMapping::from_toml(&text);
    }

    #[test]
    fn dates_never_panic(text in "[0-9０-９SHR./年月日-]{0,12}") {
        let _ = dates::parse_any(&text);
        let _ = dates::parse_compact(&text);
        let _ = dates::parse_compact_month(&text);
        let _ = dates::parse_iso(&text);
    }
}

/// Arbitrary JSON built around FHIR-looking keys, so the resource code paths are reached.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "resourceType",
        "type",
        "entry",
        "resource",
        "code",
        "coding",
        "system",
        "subject",
        "reference",
        "identifier",
        "value",
        "birthDate",
        "gender",
        "name",
        "text",
        "div",
        "status",
        "class",
        "valueQuantity",
        "unit",
        "contained",
        "id",
        "meta",
        "profile",
        "medicationCodeableConcept",
        "intent",
        "patient",
        "address",
        "telecom",
        "period",
        "start",
        "dosageInstruction",
        "timing",
        "note",
        "category",
        "extension",
        "valueCoding",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        prop::sample::select(vec![
            "Patient",
            "Bundle",
            "collection",
            "Condition",
            "Observation",
            "MedicationRequest",
            "Encounter",
            "Organization",
            "Practitioner",
            "AllergyIntolerance",
            "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID",
            "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code",
            "01010016:a:1:01",
            "2021-02-30",
            "male",
            "#x",
            "E11.9",
            "",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_string())),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}
