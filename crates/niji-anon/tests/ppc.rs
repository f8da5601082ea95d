//! The 第34条 pipeline end to end on a small synthetic claims-like table.

use niji_anon::builtin::{AgeBands, DateLevel};
use niji_anon::ppc::{self, DateShiftRule, OutlierRule, PpcColumn, PpcConfig, PpcError, PpcRole, QiHierarchy, RareValueRule, Threshold};
use niji_anon::{engine, ModelSettings, PrivacyModel, Table};
use std::collections::HashMap;

const HEADER: [&str; 11] = ["氏名", "被保険者番号", "患者ID", "年齢", "性別", "市区町村", "傷病名", "入院日", "退院日", "メモ", "薬剤"];

/// Deterministic rows: 3 records per patient, 40 patients.
fn table() -> Table {
    let mut state = 12345u64;
    let mut next = |m: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let towns = ["13101", "13102", "14100", "27100", "01100"];
    let icd = ["E11.9", "I10", "J45.0", "E11.2", "I21.0"];
    let drugs = ["A", "A", "B", "B", "C", "RareDrug"];
    let mut rows = Vec::new();
    for p in 0..40u64 {
        let age = if p == 7 { 104 } else { 30 + next(60) };
        let sex = if next(2) == 0 { "男" } else { "女" };
        let town = towns[next(5) as usize];
        for e in 0..3u64 {
            let day = 1 + next(20);
            let stay = 1 + next(8);
            let drug = if p == 3 && e == 0 { "RareDrug" } else { drugs[next(5) as usize] };
            rows.push(vec![
                format!("患者{p}"),
                format!("0{p:07}"),
                format!("P{p:04}"),
                age.to_string(),
                sex.to_string(),
                town.to_string(),
                icd[next(5) as usize].to_string(),
                format!("2024-{:02}-{day:02}", 3 + e),
                format!("2024-{:02}-{:02}", 3 + e, day + stay),
                "自由記述".to_string(),
                drug.to_string(),
            ]);
        }
    }
    Table::from_rows(&HEADER, rows).unwrap()
}

fn config() -> PpcConfig {
    let role = |column: &str, role| PpcColumn { column: column.into(), role };
    PpcConfig {
        columns: vec![
            role("氏名", PpcRole::DirectIdentifier),
            role("被保険者番号", PpcRole::IdentificationCode),
            role("患者ID", PpcRole::LinkingCode),
            role("年齢", PpcRole::QuasiIdentifier(QiHierarchy::AgeBands(AgeBands { min: 0, max: 120, widths: vec![5, 10, 20], top_code: None }))),
            role("性別", PpcRole::QuasiIdentifier(QiHierarchy::Given(niji_anon::Hierarchy::parse("男;*\n女;*\n", ';').unwrap()))),
            role("市区町村", PpcRole::QuasiIdentifier(QiHierarchy::Municipalities)),
            role("傷病名", PpcRole::Sensitive),
            role("入院日", PpcRole::QuasiIdentifier(QiHierarchy::Dates(vec![DateLevel::Month, DateLevel::Quarter, DateLevel::Year]))),
            role("退院日", PpcRole::Insensitive),
            role("メモ", PpcRole::FreeText),
            role("薬剤", PpcRole::Insensitive),
        ],
        date_shift: Some(DateShiftRule {
            person_column: "患者ID".into(), date_columns: vec!["入院日".into(), "退院日".into()], max_days: 30
        }),
        outliers: vec![OutlierRule { column: "年齢".into(), lower: None, upper: Some(Threshold::Value(90.0)) }],
        rare_values: vec![RareValueRule { column: "薬剤".into(), min_count: 3, replacement: "その他".into() }],
        model: ModelSettings { privacy: PrivacyModel::k_anonymity(3), suppression_limit: 0.1, ..Default::default() },
    }
}

#[test]
fn pipeline_removes_identifiers_shifts_dates_codes_outliers_and_anonymizes() {
    let input = table();
    let out = ppc::run(&input, &config(), Some(b"0123456789abcdef0123456789abcdef")).unwrap();
    let t = &out.table;
    assert_eq!(t.header(), ["年齢", "性別", "市区町村", "傷病名", "入院日", "退院日", "薬剤"]);
    let rules: Vec<&str> = out.report.rules.iter().map(|r| r.rule).collect();
    assert_eq!(
        rules,
        [
            "date_shift",
            "date_shift",
            "remove_direct_identifier",
            "remove_identification_code",
            "remove_linking_code",
            "remove_free_text",
            "top_coding",
            "rare_values",
            "privacy_model"
        ]
    );
    let top = &out.report.rules[6];
    assert_eq!((top.rows_affected, top.detail.as_str()), (3, "90 以上を \"90+\" に置換"));
    assert_eq!(out.report.rules[7].rows_affected, 1);
    assert!(out.report.rules.iter().all(|r| !r.detail.contains("RareDrug") && !r.detail.contains("患者3") && !r.detail.contains("P0003")));
    assert!(!(0..t.num_rows()).any(|r| t.column("薬剤").unwrap().value(r) == "RareDrug"));

    // Every class of quasi-identifier values has at least k = 3 records.
    let qis: Vec<usize> = ["年齢", "性別", "市区町村", "入院日"].iter().map(|c| t.column_index(c).unwrap()).collect();
    assert!(engine::class_sizes(t, &qis).iter().all(|&s| s >= 3));
    assert!(out.report.risk_after.prosecutor.highest <= 1.0 / 3.0);
    assert!(out.report.risk_before.prosecutor.highest > out.report.risk_after.prosecutor.highest);
    assert!(out.report.suppressed_records <= 12);
    assert_eq!(out.report.records_out + out.report.suppressed_records, 120);
    assert_eq!(out.report.generalization.len(), 4);

    // Same key, same output; another key, other dates; no key, an error.
    let again = ppc::run(&input, &config(), Some(b"0123456789abcdef0123456789abcdef")).unwrap();
    assert_eq!(again, out);
    let other = ppc::run(&input, &config(), Some(b"another key")).unwrap();
    assert_ne!(other.table.column("退院日").unwrap(), t.column("退院日").unwrap());
    assert_eq!(ppc::run(&input, &config(), None).unwrap_err(), PpcError::MissingKey);
}

#[test]
fn date_shift_keeps_each_persons_intervals() {
    let input = table();
    let mut config = config();
    // Keep dates out of the privacy model to compare them row by row.
    config.columns[7].role = PpcRole::Insensitive;
    config.model.privacy = PrivacyModel::k_anonymity(1);
    config.model.suppressed_rows = niji_anon::SuppressedRows::Mask;
    config.columns[2].role = PpcRole::Insensitive; // keep the patient id to check per person
    let out = ppc::run(&input, &config, Some(b"k")).unwrap();
    let days = |s: &str| {
        let (y, m, d) = niji_anon::builtin::parse_date(s).unwrap();
        ppc::days_from_civil(y, m, d)
    };
    let mut shift_of: HashMap<String, i64> = HashMap::new();
    for r in 0..input.num_rows() {
        let person = input.column("患者ID").unwrap().value(r).to_owned();
        assert_eq!(out.table.column("患者ID").unwrap().value(r), person);
        for c in ["入院日", "退院日"] {
            let shift = days(out.table.column(c).unwrap().value(r)) - days(input.column(c).unwrap().value(r));
            assert!(shift.abs() <= 30);
            assert_eq!(*shift_of.entry(person.clone()).or_insert(shift), shift, "{person} shifted by different amounts");
        }
    }
    assert!(shift_of.values().any(|&s| s != 0));
}

#[test]
fn pipeline_refuses_columns_without_a_role() {
    let mut config = config();
    config.columns.pop();
    assert_eq!(ppc::run(&table(), &config, Some(b"k")).unwrap_err(), PpcError::UnassignedColumn("薬剤".into()));
}
