//! The catalog agrees with the schemas: every table, every column in order, both languages.

use niji_lake::catalog::{self, column_type};
use niji_lake::{table_schema, TABLES};

#[test]
fn catalog_columns_are_the_schema_fields_in_order() {
    assert_eq!(catalog::tables().iter().map(|t| t.name).collect::<Vec<_>>(), TABLES);
    for t in TABLES {
        let doc = catalog::table(t).unwrap_or_else(|| panic!("{t} has no catalog entry"));
        let schema = table_schema(t).unwrap();
        let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let columns: Vec<&str> = doc.columns.iter().map(|c| c.name).collect();
        assert_eq!(columns, fields, "{t}: catalog columns differ from the schema");
        for c in doc.columns {
            assert!(column_type(t, c.name).is_some_and(|ty| ty != "other"), "{t}.{}: type", c.name);
        }
    }
}

/// Non-empty in both languages; Japanese text is Japanese (has characters outside ASCII) and
/// the English text is not Japanese sentences.
#[test]
fn every_description_is_written_in_both_languages() {
    let ja = |s: &str| !s.trim().is_empty() && s.chars().any(|c| matches!(c, '\u{3040}'..='\u{30ff}' | '\u{4e00}'..='\u{9fff}'));
    let en = |s: &str| !s.trim().is_empty() && s.chars().filter(char::is_ascii_alphabetic).count() >= 3;
    for t in catalog::tables() {
        assert!(ja(t.title_ja) && en(t.title_en), "{}: title", t.name);
        assert!(ja(t.description_ja) && en(t.description_en), "{}: description", t.name);
        assert!(!t.source.trim().is_empty(), "{}: source", t.name);
        for c in t.columns {
            assert!(ja(c.description_ja), "{}.{}: Japanese description", t.name, c.name);
            assert!(en(c.description_en), "{}.{}: English description", t.name, c.name);
            assert!(c.code_systems.iter().all(|s| !s.trim().is_empty()), "{}.{}: empty code system", t.name, c.name);
        }
    }
}

#[test]
fn titles_and_types() {
    let title = |t: &str| catalog::table(t).map(|d| d.title_ja);
    assert_eq!(title("patients"), Some("患者"));
    assert_eq!(title("encounters"), Some("受診"));
    assert_eq!(title("conditions"), Some("傷病名"));
    assert_eq!(title("medications"), Some("処方"));
    assert_eq!(title("lab_results"), Some("検体検査結果"));
    assert_eq!(title("allergies"), Some("アレルギー"));
    assert_eq!(title("claims"), Some("レセプト"));
    assert_eq!(title("claim_lines"), Some("レセプト明細"));
    assert!(catalog::table("nope").is_none());
    assert_eq!(column_type("patients", "person_key"), Some("person key"));
    assert_eq!(column_type("patients", "birth_year_month"), Some("string"));
    assert_eq!(column_type("patients", "prefecture"), Some("int32"));
    assert_eq!(column_type("patients", "deceased"), Some("boolean"));
    assert_eq!(column_type("encounters", "start"), Some("date"));
    assert_eq!(column_type("claims", "claim"), Some("int64"));
    assert_eq!(column_type("lab_results", "value"), Some("float64"));
    assert_eq!(column_type("lab_results", "nope"), None);
    assert_eq!(column_type("nope", "person_key"), None);
    let code = catalog::table("conditions").unwrap().column("code").unwrap();
    assert!(code.code_systems.contains(&"ICD-10 (MHLW)") && code.code_systems.contains(&"レセ電傷病名コード"));
}
