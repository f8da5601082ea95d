//! A registry's CSV with a mapping, end to end: its content and quasi-identifier columns reach
//! the lake's `registry_values` table (long form, typed, generalized, under the person keys the
//! vault holds for each row); no identifier value does; a refused CSV leaves nothing.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, Date32Array, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use niji_ingest::{ingest_path, CsvMapping};
use niji_intake::{ingest, open_vault, NoProgress, OnReject, Outcome};
use niji_privacy::PersonKey;
use niji_testkit::plaintext::Patterns;

mod common;
use common::*;

const MAPPING: &str = r#"
[[column]]
name = "registry_id"
role = "identifier"
kind = "patient_id"
required = true

[[column]]
name = "name"
role = "identifier"
kind = "name_kanji"
required = true

[[column]]
name = "born"
role = "quasi"
type = "birth_date"

[[column]]
name = "sex"
role = "identifier"
kind = "sex"

[[column]]
name = "address"
role = "identifier"
kind = "address"

[[column]]
name = "phone"
role = "identifier"
kind = "phone"

[[column]]
name = "city"
role = "quasi"
type = "municipality"

[[column]]
name = "pref"
role = "quasi"
type = "prefecture"

[[column]]
name = "dx"
role = "content"
type = "code"
system = "icd10"

[[column]]
name = "diagnosed_on"
role = "content"
type = "date"

[[column]]
name = "first_seen"
role = "content"
type = "year_month"

[[column]]
name = "hba1c"
role = "content"
type = "number"
unit_column = "unit"

[[column]]
name = "unit"
role = "ignore"

[[column]]
name = "stage"
role = "content"
type = "number"
"#;

const HEADER: &str = "registry_id,name,born,sex,address,phone,city,pref,dx,diagnosed_on,first_seen,hba1c,unit,stage\n";
const ROWS: &str = "\
REG-000111,山田太郎,1950-03-15,M,東京都千代田区霞が関1-2-3,03-5555-0123,131016,13,E11.9,2024-04-18,2024-03,7.2,%,2
REG-000222,佐藤花子,1962/11/02,F,大阪府大阪市北区梅田9-8-7,06-4444-0987,27127,,I10,2023-01-05,,,,
";

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}")).as_any().downcast_ref::<T>().unwrap()
}

/// One `registry_values` row, read back.
#[derive(Debug, Clone, PartialEq)]
struct Value {
    key: [u8; 32],
    file: i32,
    line: i64,
    variable: String,
    ty: String,
    system: Option<String>,
    text: Option<String>,
    number: Option<f64>,
    unit: Option<String>,
    days: Option<i32>,
}

fn read_values(version: &Path, key: &niji_lake::LakeKey) -> Vec<Value> {
    let mut out = Vec::new();
    for b in niji_lake::read_table(version, "registry_values", key).unwrap() {
        let s = |name: &str, r: usize| {
            let a = column::<StringArray>(&b, name);
            (!a.is_null(r)).then(|| a.value(r).to_string())
        };
        let keys = column::<FixedSizeBinaryArray>(&b, "person_key");
        let (files, lines) = (column::<Int32Array>(&b, "file"), column::<Int64Array>(&b, "line"));
        let (numbers, dates) = (column::<Float64Array>(&b, "value_number"), column::<Date32Array>(&b, "value_date"));
        for r in 0..b.num_rows() {
            out.push(Value {
                key: keys.value(r).try_into().unwrap(),
                file: files.value(r),
                line: lines.value(r),
                variable: s("variable", r).unwrap(),
                ty: s("value_type", r).unwrap(),
                system: s("code_system", r),
                text: s("value_text", r),
                number: (!numbers.is_null(r)).then(|| numbers.value(r)),
                unit: s("unit", r),
                days: (!dates.is_null(r)).then(|| dates.value(r)),
            });
        }
    }
    out
}

/// Every text of the table (names and values) joined, for the plaintext scan.
fn all_text(values: &[Value]) -> String {
    let mut s = String::new();
    for v in values {
        for t in [Some(&v.variable), Some(&v.ty), v.system.as_ref(), v.text.as_ref(), v.unit.as_ref()].into_iter().flatten() {
            s.push_str(t);
            s.push('\n');
        }
        if let Some(n) = v.number {
            s.push_str(&format!("{n}\n"));
        }
    }
    s
}

/// The identity values of `file` under `mapping` (what must never reach the lake).
fn identity_values(file: &Path, mapping: &CsvMapping) -> Vec<String> {
    let mut out = Vec::new();
    ingest_path(file, &options().ingest, Some(mapping), &mut |r| {
        out.extend(r.identity.items.into_iter().filter(|i| i.kind != niji_ingest::IdentifierKind::Sex).map(|i| i.value))
    })
    .unwrap();
    out
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    (chrono_like(y, m, d) - chrono_like(1970, 1, 1)) as i32
}

/// Days since 0000-03-01 (proleptic Gregorian), enough to compare dates.
fn chrono_like(y: i32, m: u32, d: u32) -> i64 {
    let (y, m) = if m <= 2 { (y as i64 - 1, m as i64 + 12) } else { (y as i64, m as i64) };
    365 * y + y / 4 - y / 100 + y / 400 + (153 * (m - 3) + 2) / 5 + d as i64 - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_content_reaches_registry_values_typed_generalized_and_without_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(&dir.path().join("instance")).await;
    instance.store.create_organization("registry", "registry", 0).await.unwrap();
    let mapping = CsvMapping::from_toml(MAPPING).unwrap();
    let small = dir.path().join("registry.csv");
    std::fs::write(&small, format!("{HEADER}{ROWS}")).unwrap();
    // And niji synth's registry files with their own mappings.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../niji-ingest/tests/fixtures");
    let map = |name: &str| CsvMapping::from_toml(&std::fs::read_to_string(fixtures.join(name)).unwrap()).unwrap();
    let (persons_map, events_map) = (map("synth_persons.toml"), map("synth_events.toml"));
    let (persons_csv, events_csv) = (synth().join("csv/persons.csv"), synth().join("csv/events.csv"));

    let lake = instance.paths.lake();
    let mut reports = Vec::new();
    let mut values = Vec::new();
    for (dataset, file, mapping) in
        [("registry-small", &small, &mapping), ("registry-persons", &persons_csv, &persons_map), ("registry-events", &events_csv, &events_map)]
    {
        let mut s = submission("registry", dataset, vec![file.clone()], OnReject::RefuseSubmission);
        s.csv_mapping = Some(mapping.clone());
        reports.push(committed(&instance, s).await);
        let key = niji_lake::LakeKey(instance.data_key(&format!("lake:{dataset}/v1"), "test").await.unwrap().0);
        values.push(read_values(&lake.join(dataset).join("v1"), &key));
    }
    let small_values = &values[0];

    // The small file: every non-empty content and quasi-identifier value, typed, generalized.
    let row = |line: i64| -> HashMap<&str, &Value> { small_values.iter().filter(|v| v.line == line).map(|v| (v.variable.as_str(), v)).collect() };
    let (r2, r3) = (row(2), row(3));
    assert_eq!(small_values.len(), r2.len() + r3.len(), "only lines 2 and 3: {small_values:?}");
    let mut names2: Vec<&str> = r2.keys().copied().collect();
    names2.sort();
    assert_eq!(names2, ["born", "city", "diagnosed_on", "dx", "first_seen", "hba1c", "pref", "sex", "stage"]);
    let mut names3: Vec<&str> = r3.keys().copied().collect();
    names3.sort();
    assert_eq!(names3, ["born", "city", "diagnosed_on", "dx", "sex"], "empty cells give no row");
    fn typed(v: &Value) -> (&str, Option<&str>, Option<&str>, Option<f64>, Option<&str>, Option<i32>) {
        (v.ty.as_str(), v.system.as_deref(), v.text.as_deref(), v.number, v.unit.as_deref(), v.days)
    }
    assert_eq!(typed(r2["born"]), ("year_month", None, Some("1950-03"), None, None, None), "birth date to year-month");
    assert_eq!(typed(r3["born"]), ("year_month", None, Some("1962-11"), None, None, None));
    assert_eq!(typed(r2["sex"]), ("sex", None, Some("male"), None, None, None));
    assert_eq!(typed(r3["sex"]), ("sex", None, Some("female"), None, None, None));
    assert_eq!(typed(r2["city"]), ("municipality", None, Some("13101"), None, None, None), "check digit dropped");
    assert_eq!(typed(r3["city"]), ("municipality", None, Some("27127"), None, None, None));
    assert_eq!(typed(r2["pref"]), ("prefecture", None, Some("13"), None, None, None));
    assert_eq!(typed(r2["dx"]), ("code", Some("Icd10"), Some("E11.9"), None, None, None));
    assert_eq!(typed(r3["dx"]), ("code", Some("Icd10"), Some("I10"), None, None, None));
    assert_eq!(typed(r2["diagnosed_on"]), ("date", None, None, None, None, Some(days(2024, 4, 18))));
    assert_eq!(typed(r3["diagnosed_on"]), ("date", None, None, None, None, Some(days(2023, 1, 5))));
    assert_eq!(typed(r2["first_seen"]), ("year_month", None, Some("2024-03"), None, None, None));
    assert_eq!(typed(r2["hba1c"]), ("number", None, None, Some(7.2), Some("%"), None));
    assert_eq!(typed(r2["stage"]), ("number", None, None, Some(2.0), None, None));
    assert!(small_values.iter().all(|v| v.file == 0));
    // One person key per row, two persons; the version's statistics count them.
    let key2: HashSet<[u8; 32]> = r2.values().map(|v| v.key).collect();
    let key3: HashSet<[u8; 32]> = r3.values().map(|v| v.key).collect();
    assert!(key2.len() == 1 && key3.len() == 1 && key2 != key3);
    let table = |r: &niji_intake::VersionReport| r.tables.iter().find(|t| t.table_name == "registry_values").cloned().unwrap();
    let t = table(&reports[0]);
    assert_eq!((t.rows, t.persons), (small_values.len() as i64, 2));
    assert_eq!((t.coverage_from.as_deref(), t.coverage_to.as_deref()), (Some("2023-01-05"), Some("2024-04-18")));

    // The synthetic registry: its columns, and per line one key, the key the vault holds for
    // that line.
    let vars = |v: &[Value]| v.iter().map(|v| v.variable.clone()).collect::<HashSet<String>>();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<HashSet<String>>();
    assert_eq!(
        vars(&values[1]),
        names(&["facility_code", "sex", "birth_date", "disease_icd10", "diagnosed_on", "enrolled_on"]),
        "content columns and what identifiers give to content (sex, birth year-month)"
    );
    assert_eq!(vars(&values[2]), names(&["event_date", "event", "code", "value"]));
    assert!(values[1].iter().filter(|v| v.variable == "birth_date").all(|v| v.ty == "year_month" && v.text.as_ref().is_some_and(|t| t.len() == 7)));
    assert!(values[2].iter().any(|v| v.variable == "code" && v.system.as_deref() == Some("Jlac10")));
    assert!(values[2].iter().any(|v| v.variable == "value" && v.number.is_some() && v.unit.as_deref() == Some("%")));
    let (vault, _) = open_vault(&instance, "test").await.unwrap();
    for (i, (dataset, file)) in [("registry-persons", &persons_csv), ("registry-events", &events_csv)].into_iter().enumerate() {
        let (report, values) = (&reports[i + 1], &values[i + 1]);
        let t = table(report);
        assert_eq!(t.rows as usize, values.len());
        assert!(values.len() > 40 && t.persons >= 5, "{dataset}: {} values, {} persons", values.len(), t.persons);
        let mut key_of_line: HashMap<i64, [u8; 32]> = HashMap::new();
        for v in values {
            assert_eq!(*key_of_line.entry(v.line).or_insert(v.key), v.key, "{dataset} line {}: two person keys", v.line);
        }
        assert_eq!(key_of_line.len() as u64, report.records_accepted, "{dataset}: every row has values");
        let mut by_key: HashMap<[u8; 32], Vec<i64>> = HashMap::new();
        for (line, key) in &key_of_line {
            by_key.entry(*key).or_default().push(*line);
        }
        assert_eq!(by_key.len() as i64, t.persons);
        let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
        let tag = format!("{dataset}/v1");
        for (key, lines) in by_key.iter().take(40) {
            let stored: HashSet<String> =
                vault.identities_of(&PersonKey(*key)).await.unwrap().into_iter().filter(|s| s.dataset == tag).map(|s| s.record_ref).collect();
            for line in lines {
                let want = format!("{file_name}:{line}");
                assert!(stored.iter().any(|r| r.ends_with(&want)), "{dataset} line {line}: the vault holds {stored:?} under its key");
            }
        }
    }
    vault.close().await;

    // No identifier value of either file in any text of the table (the decrypted values).
    let mut needles = identity_values(&small, &mapping);
    needles.extend(identity_values(&persons_csv, &persons_map));
    needles.extend(identity_values(&events_csv, &events_map));
    // Dates of birth stay whole in the vault only; in the lake only their year-month.
    needles.retain(|n| n.chars().count() >= 4);
    assert!(needles.iter().any(|n| n == "山田太郎") && needles.iter().any(|n| n == "REG-000111") && needles.len() > 50);
    let pats = Patterns::new(&needles);
    let text: String = values.iter().map(|v| all_text(v)).collect();
    assert!(!pats.find(format!("{HEADER}{ROWS}").as_bytes()).is_empty(), "control: the input shows the needles");
    let hits = pats.find(text.as_bytes());
    assert!(hits.is_empty(), "identifiers in registry_values: {hits:?}");
    for v in values.iter().flatten() {
        assert!(v.text.as_deref().is_none_or(|t| t.is_ascii()), "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_csv_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(&dir.path().join("instance")).await;
    instance.store.create_organization("registry", "registry", 0).await.unwrap();
    let before = state(&instance).await;
    let log_before = instance.log().size();
    let bad = dir.path().join("registry.csv");
    // Line 4: a municipality code with a wrong check digit.
    std::fs::write(&bad, format!("{HEADER}{ROWS}REG-000333,鈴木一郎,1970-01-01,M,,,131017,,E11.9,2024-01-01,,,,\n")).unwrap();
    let mut s = submission("registry", "registry-small", vec![bad], OnReject::RefuseSubmission);
    s.csv_mapping = Some(CsvMapping::from_toml(MAPPING).unwrap());
    let out = ingest(&instance, s, &options(), Arc::new(NoProgress)).await.unwrap();
    let Outcome::Refused { files, rejected_records } = out else { panic!("accepted a CSV with a rejected row") };
    assert_eq!(rejected_records, 1);
    let lines: Vec<String> = files.iter().flat_map(|r| r.rejected_lines()).collect();
    assert!(lines.iter().any(|l| l.ends_with("registry.csv:4:city: not a valid JIS X 0402 municipality code")), "{lines:?}");
    assert_eq!(state(&instance).await, before, "a refused CSV changed the instance");
    assert!(!instance.paths.lake().join("registry-small").exists());
    assert_eq!(instance.log().size(), log_before + 1, "the refusal is logged, nothing else");
}

/// An identifier mapped as content (a registry's member numbers as a local code) would reach the
/// lake: the file is refused as a whole, even when the holder quarantines rejected records, and
/// nothing of it is stored; the other file of the submission is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_that_looks_like_an_identifier_refuses_its_file_even_under_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(&dir.path().join("instance")).await;
    instance.store.create_organization("registry", "registry", 0).await.unwrap();
    let mapping =
        CsvMapping::from_toml(&format!("{MAPPING}\n[[column]]\nname = \"member\"\nrole = \"content\"\ntype = \"code\"\nsystem = \"local\"\n"))
            .unwrap();
    let header = HEADER.replace('\n', ",member\n");
    let good = dir.path().join("good.csv");
    std::fs::write(&good, format!("{header}{}", ROWS.replace('\n', ",A1\n"))).unwrap();
    let bad = dir.path().join("members.csv");
    let members: Vec<String> = (0..60).map(|i| format!("{:08}", 40_000_000 + i * 13)).collect();
    let rows: String = members.iter().enumerate().map(|(i, m)| format!("REG-9{i:05},氏名{i},1970-01-01,M,,,,,E11.9,2024-01-01,,,,,{m}\n")).collect();
    std::fs::write(&bad, format!("{header}{rows}")).unwrap();

    // Refusing: nothing stored, the reason names the file, line 1 and the column.
    let before = state(&instance).await;
    let mut s = submission("registry", "registry-members", vec![good.clone(), bad.clone()], OnReject::RefuseSubmission);
    s.csv_mapping = Some(mapping.clone());
    let Outcome::Refused { files, rejected_records } = ingest(&instance, s, &options(), Arc::new(NoProgress)).await.unwrap() else {
        panic!("accepted a file with an identifier as content")
    };
    assert_eq!(rejected_records, 60);
    let lines: Vec<String> = files.iter().flat_map(|r| r.rejected_lines()).collect();
    assert_eq!(lines, ["members.csv:1:member: content column looks like an identifier (60 distinct of 60 values, all 8 characters wide); map it as identifier or ignore; file refused"]);
    assert!(lines.iter().all(|l| !members.iter().any(|m| l.contains(m.as_str()))), "a refusal quotes no value");
    assert_eq!(state(&instance).await, before);

    // Quarantine: the good file is stored, no row of the refused one.
    let mut s = submission("registry", "registry-members", vec![good, bad], OnReject::Quarantine);
    s.csv_mapping = Some(mapping);
    let report = committed(&instance, s).await;
    assert_eq!((report.records_accepted, report.records_quarantined), (2, 60));
    let key = niji_lake::LakeKey(instance.data_key("lake:registry-members/v1", "test").await.unwrap().0);
    let values = read_values(&instance.paths.lake().join("registry-members").join("v1"), &key);
    assert!(values.iter().all(|v| v.file == 0), "a value of the refused file: {:?}", values.iter().find(|v| v.file != 0));
    assert!(values.iter().any(|v| v.variable == "member" && v.text.as_deref() == Some("A1")));
    let text = all_text(&values);
    assert!(members.iter().all(|m| !text.contains(m.as_str())));
    let t = report.tables.iter().find(|t| t.table_name == "registry_values").unwrap();
    assert_eq!(t.persons, 2, "the refused file's persons are not linked in");
    let (vault, _) = open_vault(&instance, "test").await.unwrap();
    let counts = vault.datasets().await.unwrap();
    vault.close().await;
    assert_eq!(counts, [("registry-members/v1".to_string(), 2)], "the vault holds the good file's two rows only");
}
