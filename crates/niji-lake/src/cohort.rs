//! A permit's cohort (issue 5: "restricted to its cohort") applied to lake tables: which persons
//! a project may see, and which of their event rows.
//!
//! - A row is **in scope** when its event date lies in the period (if one is given) and its age
//!   column in the age range (if one is given). Event dates: `encounters.start`,
//!   `conditions.onset` (else `recorded`), `medications.authored`, `lab_results.effective`,
//!   `allergies.recorded` (else `onset`), `claims.month`; `claim_lines` follow their claim.
//!   A row without the date (or age) a filter needs is out of scope; so are all `registry_values`
//!   rows under a period or age range (they have no event date or age of their own).
//! - A person is **in the cohort** when they have an in-scope `conditions` row whose ICD-10
//!   code (the code when its system is ICD-10, else an `Icd10:` alternative coding) starts with
//!   one of the cohort's disease codes or prefixes (dots and case ignored); without diseases,
//!   when they have any in-scope event row.
//! - [`restrict`] keeps, in every table, only the cohort's persons, and in event tables only
//!   in-scope rows; `patients` rows of cohort persons are kept whole.
//!
//! Invariants: no I/O (the caller reads the tables, including `conditions` and `claims` when the
//! cohort needs them even if they are not granted); an empty filter restricts nothing.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, Date32Array, FixedSizeBinaryArray, Int32Array, Int64Array, RecordBatch, StringArray};
use time::Date;

/// Who a project may see (the permit's cohort, in the lake's terms).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CohortSpec {
    /// ICD-10 codes or prefixes; empty: no disease condition.
    pub diseases: Vec<String>,
    /// Inclusive age range in whole years.
    pub age: Option<(u32, u32)>,
    /// Inclusive period of event dates.
    pub period: Option<(Date, Date)>,
}

impl CohortSpec {
    /// Whether the spec restricts anything.
    pub fn is_empty(&self) -> bool {
        self.diseases.is_empty() && self.age.is_none() && self.period.is_none()
    }
}

/// The tables the cohort needs read besides the granted ones.
pub fn needed_tables(spec: &CohortSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !spec.diseases.is_empty() {
        out.push("conditions");
    }
    if !spec.is_empty() {
        out.push("claims");
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum CohortError {
    #[error("a table does not have the lake's schema")]
    Schema,
}

/// The cohort's persons, from every table read (`tables`: name and batches; the granted ones
/// and those [`needed_tables`] names).
pub fn cohort_persons(spec: &CohortSpec, tables: &[(&str, &[RecordBatch])]) -> Result<HashSet<[u8; 32]>, CohortError> {
    let mut persons = HashSet::new();
    let claims = in_scope_claims(spec, tables)?;
    for (name, batches) in tables {
        if !spec.diseases.is_empty() && *name != "conditions" {
            continue;
        }
        if *name == "patients" {
            continue;
        }
        for batch in *batches {
            let keep = in_scope(spec, name, batch, &claims)?;
            let keys = keys(batch)?;
            let codes = if *name == "conditions" && !spec.diseases.is_empty() { Some(condition_codes(batch)?) } else { None };
            for row in 0..batch.num_rows() {
                if !keep[row] {
                    continue;
                }
                if let Some(codes) = &codes {
                    if !codes[row].as_deref().is_some_and(|c| spec.diseases.iter().any(|d| normalize(d).is_some_and(|d| c.starts_with(&d)))) {
                        continue;
                    }
                }
                if let Ok(k) = <[u8; 32]>::try_from(keys.value(row)) {
                    persons.insert(k);
                }
            }
        }
    }
    Ok(persons)
}

/// The rows of `table` the cohort lets a project see.
pub fn restrict(
    spec: &CohortSpec,
    table: &str,
    batches: Vec<RecordBatch>,
    persons: &HashSet<[u8; 32]>,
    tables: &[(&str, &[RecordBatch])],
) -> Result<Vec<RecordBatch>, CohortError> {
    if spec.is_empty() {
        return Ok(batches);
    }
    let claims = in_scope_claims(spec, tables)?;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let scope = if table == "patients" { vec![true; batch.num_rows()] } else { in_scope(spec, table, &batch, &claims)? };
        let keys = keys(&batch)?;
        let keep: BooleanArray =
            (0..batch.num_rows()).map(|r| Some(scope[r] && <[u8; 32]>::try_from(keys.value(r)).is_ok_and(|k| persons.contains(&k)))).collect();
        out.push(arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|_| CohortError::Schema)?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

/// (file, claim) of the claims in scope, when `claims` was read.
fn in_scope_claims(spec: &CohortSpec, tables: &[(&str, &[RecordBatch])]) -> Result<Option<HashSet<(i32, i64)>>, CohortError> {
    let Some((_, batches)) = tables.iter().find(|(n, _)| *n == "claims") else { return Ok(None) };
    let mut out = HashSet::new();
    for batch in *batches {
        let keep = row_scope(spec, "claims", batch)?;
        let file = column::<Int32Array>(batch, "file")?;
        let claim = column::<Int64Array>(batch, "claim")?;
        for (r, &kept) in keep.iter().enumerate() {
            if kept && !file.is_null(r) && !claim.is_null(r) {
                out.insert((file.value(r), claim.value(r)));
            }
        }
    }
    Ok(Some(out))
}

fn in_scope(spec: &CohortSpec, table: &str, batch: &RecordBatch, claims: &Option<HashSet<(i32, i64)>>) -> Result<Vec<bool>, CohortError> {
    if table != "claim_lines" {
        return row_scope(spec, table, batch);
    }
    if spec.age.is_none() && spec.period.is_none() {
        return Ok(vec![true; batch.num_rows()]);
    }
    // A claim line is in scope when its claim is; without the claims, none is.
    let Some(claims) = claims else { return Ok(vec![false; batch.num_rows()]) };
    let file = column::<Int32Array>(batch, "file")?;
    let claim = column::<Int64Array>(batch, "claim")?;
    Ok((0..batch.num_rows()).map(|r| !file.is_null(r) && !claim.is_null(r) && claims.contains(&(file.value(r), claim.value(r)))).collect())
}

/// Period and age of each row of an event table (patients: always in scope).
fn row_scope(spec: &CohortSpec, table: &str, batch: &RecordBatch) -> Result<Vec<bool>, CohortError> {
    let n = batch.num_rows();
    let mut keep = vec![true; n];
    if table == "patients" {
        return Ok(keep);
    }
    if table == "registry_values" {
        // No event date or age per value: out of scope as soon as a filter needs one.
        return Ok(vec![spec.period.is_none() && spec.age.is_none(); n]);
    }
    if let Some((from, to)) = spec.period {
        if table == "claims" {
            let months = column::<StringArray>(batch, "month")?;
            let (from, to) = (format!("{:04}-{:02}", from.year(), from.month() as u8), format!("{:04}-{:02}", to.year(), to.month() as u8));
            for (r, k) in keep.iter_mut().enumerate() {
                *k &= !months.is_null(r) && months.value(r).get(..7).is_some_and(|m| m >= from.as_str() && m <= to.as_str());
            }
        } else {
            let dates: Vec<&Date32Array> = date_columns(table).iter().filter_map(|c| column::<Date32Array>(batch, c).ok()).collect();
            if dates.is_empty() {
                return Err(CohortError::Schema);
            }
            let (from, to) = (days(from), days(to));
            for (r, k) in keep.iter_mut().enumerate() {
                let d = dates.iter().find(|a| !a.is_null(r)).map(|a| a.value(r));
                *k &= d.is_some_and(|d| d >= from && d <= to);
            }
        }
    }
    if let Some((min, max)) = spec.age {
        let ages = column::<Int32Array>(batch, "age")?;
        for (r, k) in keep.iter_mut().enumerate() {
            *k &= !ages.is_null(r) && ages.value(r) >= min as i32 && ages.value(r) <= max as i32;
        }
    }
    Ok(keep)
}

/// The event-date columns of a table, in order of preference.
fn date_columns(table: &str) -> &'static [&'static str] {
    match table {
        "encounters" => &["start"],
        "conditions" => &["onset", "recorded"],
        "medications" => &["authored"],
        "lab_results" => &["effective"],
        "allergies" => &["recorded", "onset"],
        _ => &[],
    }
}

/// Each condition row's ICD-10 code, normalized (upper case, no dot).
fn condition_codes(batch: &RecordBatch) -> Result<Vec<Option<String>>, CohortError> {
    let system = column::<StringArray>(batch, "code_system")?;
    let code = column::<StringArray>(batch, "code")?;
    let alt = column::<StringArray>(batch, "alt_codes")?;
    Ok((0..batch.num_rows())
        .map(|r| {
            let primary = (!system.is_null(r) && system.value(r) == "Icd10" && !code.is_null(r)).then(|| code.value(r));
            let alternative =
                || (!alt.is_null(r)).then(|| alt.value(r)).into_iter().flat_map(|a| a.split(';')).find_map(|c| c.strip_prefix("Icd10:"));
            primary.or_else(alternative).and_then(normalize)
        })
        .collect())
}

/// An ICD-10 code or prefix, upper case, without dots or spaces; `None` when it is not one.
fn normalize(code: &str) -> Option<String> {
    let c: String = code.chars().filter(|c| *c != '.' && !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let mut chars = c.chars();
    (chars.next().is_some_and(|x| x.is_ascii_alphabetic()) && c.len() >= 2 && chars.all(|x| x.is_ascii_alphanumeric())).then_some(c)
}

fn keys(batch: &RecordBatch) -> Result<&FixedSizeBinaryArray, CohortError> {
    column::<FixedSizeBinaryArray>(batch, "person_key")
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, CohortError> {
    batch.column_by_name(name).and_then(|a: &Arc<dyn Array>| a.as_any().downcast_ref::<T>()).ok_or(CohortError::Schema)
}

fn days(d: Date) -> i32 {
    (d - Date::from_calendar_date(1970, time::Month::January, 1).expect("a date")).whole_days() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::ArrayRef;

    fn key(p: u8) -> [u8; 32] {
        [p; 32]
    }

    /// A conditions batch: (person, ICD-10 code, onset days since 1970, age).
    fn conditions(rows: &[(u8, &str, i32, i32)]) -> RecordBatch {
        let schema = crate::table_schema("conditions").unwrap();
        let n = rows.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "person_key" => Arc::new(FixedSizeBinaryArray::try_from_iter(rows.iter().map(|r| key(r.0))).unwrap()),
                    "code_system" => Arc::new(StringArray::from(vec!["Icd10"; n])),
                    "code" => Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                    "onset" => Arc::new(Date32Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                    "age" => Arc::new(Int32Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                    _ => arrow_array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn date(y: i32, m: u8, d: u8) -> Date {
        Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
    }

    #[test]
    fn diseases_period_and_age_choose_persons_and_rows() {
        let in_2024 = days(date(2024, 5, 1));
        let in_2019 = days(date(2019, 5, 1));
        let batch = conditions(&[
            (1, "E119", in_2024, 50),
            (1, "I10", in_2024, 50),
            (2, "E11.2", in_2019, 60),
            (3, "E11", in_2024, 30),
            (4, "J45", in_2024, 50),
        ]);
        let tables = [("conditions", std::slice::from_ref(&batch))];
        let check = |spec: CohortSpec, persons: &[u8], rows: usize| {
            let cohort = cohort_persons(&spec, &tables).unwrap();
            let mut got: Vec<u8> = cohort.iter().map(|k| k[0]).collect();
            got.sort();
            assert_eq!(got, persons, "{spec:?}");
            let kept = restrict(&spec, "conditions", vec![batch.clone()], &cohort, &tables).unwrap();
            assert_eq!(kept.iter().map(|b| b.num_rows()).sum::<usize>(), rows, "{spec:?}");
        };
        check(CohortSpec::default(), &[1, 2, 3, 4], 5);
        check(CohortSpec { diseases: vec!["e11".into()], ..Default::default() }, &[1, 2, 3], 4);
        let period = Some((date(2024, 1, 1), date(2024, 12, 31)));
        check(CohortSpec { diseases: vec!["E11".into()], period, ..Default::default() }, &[1, 3], 3);
        check(CohortSpec { diseases: vec!["E11".into()], period, age: Some((40, 74)) }, &[1], 2);
        check(CohortSpec { period, ..Default::default() }, &[1, 3, 4], 4);
        check(CohortSpec { diseases: vec!["C50".into()], ..Default::default() }, &[], 0);
    }

    /// Registry values follow the cohort's persons; under a period or an age range (which they
    /// cannot be checked against) none is in scope.
    #[test]
    fn registry_values_follow_persons_and_have_no_scope_under_period_or_age() {
        let conds = conditions(&[(1, "E119", days(date(2024, 5, 1)), 50), (2, "I10", days(date(2024, 5, 1)), 50)]);
        let schema = crate::table_schema("registry_values").unwrap();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "person_key" => Arc::new(FixedSizeBinaryArray::try_from_iter([key(1), key(2), key(1)].into_iter()).unwrap()),
                    _ => arrow_array::new_null_array(f.data_type(), 3),
                }
            })
            .collect();
        let values = RecordBatch::try_new(schema, columns).unwrap();
        let tables = [("conditions", std::slice::from_ref(&conds)), ("registry_values", std::slice::from_ref(&values))];
        let kept = |spec: &CohortSpec| {
            let cohort = cohort_persons(spec, &tables).unwrap();
            restrict(spec, "registry_values", vec![values.clone()], &cohort, &tables).unwrap().iter().map(|b| b.num_rows()).sum::<usize>()
        };
        assert_eq!(kept(&CohortSpec::default()), 3);
        assert_eq!(kept(&CohortSpec { diseases: vec!["E11".into()], ..Default::default() }), 2);
        let period = Some((date(2024, 1, 1), date(2024, 12, 31)));
        assert_eq!(kept(&CohortSpec { diseases: vec!["E11".into()], period, ..Default::default() }), 0);
        assert_eq!(kept(&CohortSpec { age: Some((0, 120)), ..Default::default() }), 0);
    }
}
