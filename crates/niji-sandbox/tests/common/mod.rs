//! Test support: a permit policy and small lake-shaped tables built in memory.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;

use niji_review::application::{LinkagePair, PurposeCategory, Track};
use niji_review::{DatasetGrant, PermitPolicy, TableGrant};
use niji_sandbox::arrow::array::{new_null_array, ArrayRef, FixedSizeBinaryArray, Int64Array, StringArray};
use niji_sandbox::arrow::record_batch::RecordBatch;
use niji_sandbox::{GrantedTable, Limits, Workspace};

pub const NDB: &str = "ndb-2024";
pub const KAIGO: &str = "kaigo-2024";

pub fn key(person: u8) -> [u8; 32] {
    [person; 32]
}

pub fn policy(linkage: bool) -> PermitPolicy {
    let grant = |table: &str, columns: &[&str]| TableGrant { table: table.into(), columns: columns.iter().map(|c| c.to_string()).collect() };
    PermitPolicy {
        application_id: 7,
        version: 1,
        datasets: vec![
            DatasetGrant { dataset: KAIGO.into(), tables: vec![grant("claims", &["facility_prefecture", "sex"])] },
            DatasetGrant {
                dataset: NDB.into(),
                tables: vec![grant("claim_lines", &["code", "points", "kind"]), grant("patients", &["sex", "birth_year_month"])],
            },
        ],
        cohort: None,
        purpose: "test".into(),
        purpose_category: PurposeCategory::AcademicResearch,
        recipients: vec![],
        researchers: vec![],
        linkage: if linkage { vec![LinkagePair::new(KAIGO, NDB)] } else { vec![] },
        track: Track::Visiting,
        output_preset: "standard".into(),
        starts_on: time::macros::date!(2026 - 01 - 01),
        expires_on: time::macros::date!(2026 - 12 - 31),
        conditions: vec![],
        date_shift_days: None,
    }
}

/// A lake table with the given columns filled (others null); `person` gives the person of each row.
pub fn table(dataset: &str, table: &str, persons: &[u8], columns: &[(&str, ArrayRef)]) -> GrantedTable {
    let schema = niji_lake::table_schema(table).expect("a lake table");
    let rows = persons.len();
    let arrays: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "person_key" {
                let keys: Vec<[u8; 32]> = persons.iter().map(|p| key(*p)).collect();
                Arc::new(FixedSizeBinaryArray::try_from_iter(keys.iter()).unwrap()) as ArrayRef
            } else if let Some((_, a)) = columns.iter().find(|(n, _)| n == f.name()) {
                a.clone()
            } else {
                new_null_array(f.data_type(), rows)
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    // Two batches, to exercise partitions.
    let half = rows / 2;
    GrantedTable { dataset: dataset.into(), table: table.into(), schema, batches: vec![batch.slice(0, half), batch.slice(half, rows - half)] }
}

pub fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

pub fn ints(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

/// claim_lines: code A by persons 1,1,2,3 (4 rows, 3 persons), B by 3,4 (2 rows, 2 persons),
/// C by 5 (1 row); a row of person 6 whose code looks like a name (`Alice`).
pub fn claim_lines() -> GrantedTable {
    let persons = [1, 1, 2, 3, 3, 4, 5, 6];
    table(
        NDB,
        "claim_lines",
        &persons,
        &[
            ("code", strings(&["A", "A", "A", "A", "B", "B", "C", "Alice"])),
            ("points", ints(&[10, 20, 30, 40, 50, 60, 70, 80])),
            ("kind", strings(&["drug"; 8])),
            ("quantity", Arc::new(niji_sandbox::arrow::array::Float64Array::from(vec![1.0; 8]))),
        ],
    )
}

pub fn patients() -> GrantedTable {
    let persons = [1, 2, 3, 4, 5, 6];
    table(
        NDB,
        "patients",
        &persons,
        &[
            ("sex", strings(&["male", "female", "female", "male", "male", "female"])),
            ("birth_year_month", strings(&["1950-03", "1962-11", "1971-01", "1948-07", "1985-05", "1990-12"])),
        ],
    )
}

pub fn kaigo_claims() -> GrantedTable {
    let persons = [1, 2, 3];
    table(KAIGO, "claims", &persons, &[("sex", strings(&["male", "female", "female"]))])
}

pub fn workspace_with(linkage: bool, excluded: &[u8], limits: Limits) -> Workspace {
    let excluded: HashSet<[u8; 32]> = excluded.iter().map(|p| key(*p)).collect();
    Workspace::open(vec![claim_lines(), patients(), kaigo_claims()], &policy(linkage), [9; 32], &excluded, limits).expect("open")
}

pub fn workspace() -> Workspace {
    workspace_with(false, &[], Limits::default())
}
