//! The public dashboard of a dataset (issue 6, データ利用支援ポータル): a few standard
//! aggregate tables of the dataset's latest committed version, each passed through the same
//! output checking as researchers' results (`niji-sdc`, NDB preset), for the portal to draw.
//!
//! The charts ([`CHARTS`]), all counting distinct persons (`person_key`):
//! - `age-sex`: persons by 10-year age band × sex. A person's age is the largest `age` of
//!   their rows (their age at their latest event in the dataset); the sex is the first known
//!   one of their `patients` rows, else of their `claims` rows. Each person is in one cell.
//! - `prefecture`: persons by prefecture of residence (the first known `patients.prefecture`,
//!   JIS X 0401 code as two digits); persons without one are `unknown`.
//! - `diagnoses`: the 10 ICD-10 three-character categories with the most persons (`conditions`:
//!   the code when its system is ICD-10, else the first ICD-10 coding of `alt_codes`).
//! - `drugs`: the 10 drug codes with the most persons (`medications` `code_system:code`, the
//!   first standard coding: YJ, HOT, 一般名処方, レセ電; and `claim_lines` of kind `drug`).
//! - `monthly`: persons with an event per month (`encounters.start`, `conditions.recorded`,
//!   `medications.authored`, `lab_results.effective`, `claims.month`).
//!
//! A registry (`registry_values`, a mapped CSV in long form) feeds the same charts by its values'
//! types: `sex` (after the patients' and claims' sex) and `prefecture` values per person, `code`
//! values of ICD-10 or a drug code system, `date` and `year_month` values as months. It has no
//! ages: its persons are in the `unknown` band.
//!
//! Keys are language-neutral codes ([`UNKNOWN`], age bands `40-49` and `90+`, sexes `male`,
//! `female`, `other`, prefecture `13`, ICD-10 `E11`, drug `Yj:3969007F1024`, month `2024-03`);
//! the portal translates them. Only keys that occur are rows (no zero cells).
//!
//! Counting is a pure accumulator ([`Counter`]) over record batches, so it is tested without a
//! lake; [`dataset_dashboard`] streams the version's tables through it, batch by batch, with
//! plain Arrow arrays and hash maps (no DataFusion, no sandbox). Memory: one entry per person
//! (32-byte key and a few fields) and one per distinct (person, code) and (person, month) pair.
//!
//! Invariants:
//! - Nothing unchecked leaves: every [`Chart`] holds only the released table of
//!   `niji_sdc::check` with [`Preset::Ndb`] (each cell carrying its person count), suppressed
//!   cells as [`Shown::Suppressed`] (never their value). As a second guard, a released value
//!   below the rules' minimum is turned into [`Shown::Suppressed`] too; so no count under 10
//!   leaves this module. Released counts are then rounded to 10 (the catalog's rule,
//!   `niji_core::disclosure::catalog_count`): the dashboard is recomputed when anyone opts out,
//!   and exact counts would show that person as a difference of one between two views.
//! - Persons in `excluded` (opted out of every use) are skipped in every table.
//! - Errors are fixed texts.
//!
//! A key held by fewer than 10 persons is left out with its row (`niji_sdc`'s released table),
//! so no chart tells that someone has a rare code; a row shown suppressed is a complement of
//! such rows (it counts at least 10). Known limit: the top-10 charts are chosen by the exact
//! counts (a suppressed key is known to be among the ten), but suppressed rows are listed after
//! the released ones in key order, so their place bounds nothing further.

use std::collections::{HashMap, HashSet};

use arrow_array::{Array, Date32Array, FixedSizeBinaryArray, Int32Array, RecordBatch, StringArray};
use niji_instance::Instance;
pub use niji_sdc::Shown;
use niji_sdc::{Cell, Measure, Preset, Rules, Table};

/// The key of an unknown value (no age, sex or prefecture recorded).
pub const UNKNOWN: &str = "unknown";

/// How many rows the top-N charts show.
pub const TOP: usize = 10;

/// One chart: what it shows and its released table.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Stable slug (`age-sex`, `prefecture`, `diagnoses`, `drugs`, `monthly`).
    pub id: &'static str,
    pub title_ja: &'static str,
    pub title_en: &'static str,
    /// Dimension names (machine names), and their labels.
    pub dimensions: &'static [&'static str],
    pub dimensions_ja: &'static [&'static str],
    pub dimensions_en: &'static [&'static str],
    /// The one measure: persons.
    pub measure_ja: &'static str,
    pub measure_en: &'static str,
    /// The released rows: keys (one per dimension) and values (one per measure).
    pub rows: Vec<(Vec<String>, Vec<Shown>)>,
    /// Cells suppressed (primary and secondary).
    pub suppressed: usize,
}

/// The dashboard of one dataset version.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub dataset: String,
    pub version: i64,
    pub charts: Vec<Chart>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DashboardError {
    #[error("the dataset has no committed version")]
    NotFound,
    #[error("the dataset could not be read")]
    Unreadable,
    #[error("the output could not be checked")]
    Unchecked,
    #[error("internal error")]
    Internal,
}

/// What a chart is, before it has rows.
#[derive(Debug, PartialEq, Eq)]
pub struct ChartSpec {
    pub id: &'static str,
    pub title_ja: &'static str,
    pub title_en: &'static str,
    pub dimensions: &'static [&'static str],
    pub dimensions_ja: &'static [&'static str],
    pub dimensions_en: &'static [&'static str],
}

/// The charts, in the order they are shown.
pub const CHARTS: [ChartSpec; 5] = [
    ChartSpec {
        id: "age-sex",
        title_ja: "年齢階級・性別の人数",
        title_en: "Persons by age band and sex",
        dimensions: &["age_band", "sex"],
        dimensions_ja: &["年齢階級", "性別"],
        dimensions_en: &["Age band", "Sex"],
    },
    ChartSpec {
        id: "prefecture",
        title_ja: "都道府県（居住地）別の人数",
        title_en: "Persons by prefecture of residence",
        dimensions: &["prefecture"],
        dimensions_ja: &["都道府県"],
        dimensions_en: &["Prefecture"],
    },
    ChartSpec {
        id: "diagnoses",
        title_ja: "傷病（ICD-10 3桁分類）上位10位の人数",
        title_en: "Top 10 diagnoses (ICD-10, 3 characters) by persons",
        dimensions: &["icd10"],
        dimensions_ja: &["ICD-10"],
        dimensions_en: &["ICD-10"],
    },
    ChartSpec {
        id: "drugs",
        title_ja: "医薬品 上位10位の人数",
        title_en: "Top 10 drugs by persons",
        dimensions: &["drug"],
        dimensions_ja: &["医薬品コード"],
        dimensions_en: &["Drug code"],
    },
    ChartSpec {
        id: "monthly",
        title_ja: "月別の受療者数（記録のある人数）",
        title_en: "Persons with an event per month",
        dimensions: &["month"],
        dimensions_ja: &["年月"],
        dimensions_en: &["Month"],
    },
];

/// A chart's exact counts, before output checking. Never leaves the crate's callers' hands
/// except through [`release`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawChart {
    pub spec: &'static ChartSpec,
    /// Keys and the distinct persons behind them, in display order.
    pub rows: Vec<(Vec<String>, u64)>,
}

/// Builds the dashboard of `dataset`'s latest committed version, skipping the persons in
/// `excluded` (those who opted out of every use).
pub async fn dataset_dashboard(instance: &Instance, dataset: &str, excluded: &HashSet<[u8; 32]>) -> Result<Dashboard, DashboardError> {
    let store = &instance.store;
    let latest = store.latest_committed_versions().await.map_err(|_| DashboardError::Internal)?;
    let &(_, version) = latest.iter().find(|(d, _)| d == dataset).ok_or(DashboardError::NotFound)?;
    let key_id = niji_intake::lake_key_id(&niji_intake::version_tag(dataset, version));
    let key = instance.existing_data_key(&key_id).await.map_err(|_| DashboardError::Internal)?.ok_or(DashboardError::Unreadable)?;
    let key = niji_lake::LakeKey(key.0);
    let dir = niji_intake::version_dir(&instance.paths, dataset, version);
    let excluded = excluded.clone();
    let raw = tokio::task::spawn_blocking(move || -> Result<Vec<RawChart>, DashboardError> {
        let mut counter = Counter::new(&excluded);
        for table in Counter::TABLES {
            let reader = niji_lake::open_table(&dir, table, &key).map_err(|_| DashboardError::Unreadable)?;
            for batch in reader {
                let batch = batch.map_err(|_| DashboardError::Unreadable)?;
                counter.add(table, &batch)?;
            }
        }
        Ok(counter.finish())
    })
    .await
    .map_err(|_| DashboardError::Internal)??;
    let charts = raw.into_iter().map(release).collect::<Result<Vec<_>, _>>()?;
    Ok(Dashboard { dataset: dataset.to_string(), version, charts })
}

/// Output checking of one chart: a table of persons (one count measure, every cell carrying
/// its persons) checked with the NDB preset; only the released table is kept.
pub fn release(raw: RawChart) -> Result<Chart, DashboardError> {
    let spec = raw.spec;
    let mut table = Table::new(spec.dimensions.iter().copied(), vec![Measure::count("persons")]);
    for (keys, persons) in &raw.rows {
        table.push(keys.iter().cloned(), vec![Cell::count(*persons)]);
    }
    let rules = Rules::preset(Preset::Ndb);
    let checked = niji_sdc::check(&table, &rules).map_err(|_| DashboardError::Unchecked)?;
    if !checked.table_reasons.is_empty() {
        return Err(DashboardError::Unchecked);
    }
    let minimum = rules.min_persons() as f64;
    let rows: Vec<(Vec<String>, Vec<Shown>)> = checked
        .released_table(&table)
        .rows
        .into_iter()
        .map(|r| {
            let values = r
                .values
                .into_iter()
                .map(|v| match v {
                    // A second guard: nothing under the minimum leaves, whatever the checker said;
                    // then the public rounding (to 10, as the catalog), so that one person's
                    // opt-out between two views does not show as a difference of one.
                    Shown::Value(x) if x >= minimum => match niji_core::disclosure::catalog_count(x as u64) {
                        Some(rounded) => Shown::Value(rounded as f64),
                        None => Shown::Suppressed,
                    },
                    _ => Shown::Suppressed,
                })
                .collect();
            (r.keys, values)
        })
        .collect();
    let mut rows = rows;
    if matches!(spec.id, "diagnoses" | "drugs") {
        // Ranked charts: released rows keep their rank; suppressed rows follow in key order, so
        // a suppressed row's place says nothing about its count.
        let (mut hidden, mut shown): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, v)| v.iter().any(|x| !matches!(x, Shown::Value(_))));
        hidden.sort_by(|a, b| a.0.cmp(&b.0));
        // Released rows by their rounded counts, then key: the exact order is not shown either.
        let count = |v: &[Shown]| v.iter().map(|x| if let Shown::Value(n) = x { *n } else { 0.0 }).sum::<f64>();
        shown.sort_by(|a, b| count(&b.1).total_cmp(&count(&a.1)).then_with(|| a.0.cmp(&b.0)));
        rows = shown.into_iter().chain(hidden).collect();
    }
    let suppressed = rows.iter().flat_map(|(_, v)| v).filter(|v| !matches!(v, Shown::Value(_))).count();
    Ok(Chart {
        id: spec.id,
        title_ja: spec.title_ja,
        title_en: spec.title_en,
        dimensions: spec.dimensions,
        dimensions_ja: spec.dimensions_ja,
        dimensions_en: spec.dimensions_en,
        measure_ja: "人数",
        measure_en: "Persons",
        rows,
        suppressed,
    })
}

/// What is known of one person.
#[derive(Debug, Default, Clone, Copy)]
struct Person {
    /// Index into [`SEXES`]: from `patients`, else from `claims`.
    patient_sex: Option<u8>,
    claim_sex: Option<u8>,
    registry_sex: Option<u8>,
    prefecture: Option<u8>,
    age: Option<i32>,
}

const SEXES: [&str; 4] = ["male", "female", "other", "unknown"];

/// Strings numbered in order of first appearance.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
}

/// Distinct persons per key: (key, person) pairs.
#[derive(Debug, Default)]
struct PersonsByKey {
    keys: Interner,
    pairs: HashSet<(u32, u32)>,
}

impl PersonsByKey {
    fn add(&mut self, key: &str, person: u32) {
        let k = self.keys.id(key);
        self.pairs.insert((k, person));
    }

    /// Every key with its persons, unordered.
    fn counts(self) -> Vec<(String, u64)> {
        let mut n = vec![0u64; self.keys.names.len()];
        for (k, _) in self.pairs {
            n[k as usize] += 1;
        }
        self.keys.names.into_iter().zip(n).collect()
    }

    /// The `top` keys with the most persons (ties: by key), most first.
    fn top(self, top: usize) -> Vec<(Vec<String>, u64)> {
        let mut all = self.counts();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(top);
        all.into_iter().map(|(k, n)| (vec![k], n)).collect()
    }
}

/// The dashboard's counts over record batches of the lake's tables (pure: no I/O).
#[derive(Debug)]
pub struct Counter<'a> {
    excluded: &'a HashSet<[u8; 32]>,
    index: HashMap<[u8; 32], u32>,
    persons: Vec<Person>,
    diagnoses: PersonsByKey,
    drugs: PersonsByKey,
    months: PersonsByKey,
}

const DRUG_SYSTEMS: [&str; 4] = ["Yj", "Hot", "GeneralDrugName", "ReceiptDrug"];

impl<'a> Counter<'a> {
    /// The tables [`Counter::add`] reads (others are ignored).
    pub const TABLES: [&'static str; 9] =
        ["patients", "encounters", "conditions", "medications", "lab_results", "allergies", "claims", "claim_lines", "registry_values"];

    pub fn new(excluded: &'a HashSet<[u8; 32]>) -> Self {
        Counter {
            excluded,
            index: HashMap::new(),
            persons: Vec::new(),
            diagnoses: PersonsByKey::default(),
            drugs: PersonsByKey::default(),
            months: PersonsByKey::default(),
        }
    }

    /// Adds one batch of `table` (with the lake's schema of that table).
    pub fn add(&mut self, table: &str, batch: &RecordBatch) -> Result<(), DashboardError> {
        if !Self::TABLES.contains(&table) {
            return Ok(());
        }
        let keys: &FixedSizeBinaryArray = column(batch, "person_key")?;
        let age: Option<&Int32Array> =
            if matches!(table, "patients" | "claim_lines" | "registry_values") { None } else { Some(column(batch, "age")?) };
        let strings = |name: &str| column::<StringArray>(batch, name);
        let (mut sex, mut prefecture, mut date, mut month) = (None, None, None, None);
        let (mut system, mut code, mut alt, mut kind) = (None, None, None, None);
        match table {
            "patients" => (sex, prefecture) = (Some(strings("sex")?), Some(column::<Int32Array>(batch, "prefecture")?)),
            "encounters" => date = Some(column::<Date32Array>(batch, "start")?),
            "conditions" | "medications" => {
                (system, code, alt) = (Some(strings("code_system")?), Some(strings("code")?), Some(strings("alt_codes")?));
                date = Some(column::<Date32Array>(batch, if table == "conditions" { "recorded" } else { "authored" })?);
            }
            "lab_results" => date = Some(column::<Date32Array>(batch, "effective")?),
            "claims" => (sex, month) = (Some(strings("sex")?), Some(strings("month")?)),
            "claim_lines" => (system, code, kind) = (Some(strings("code_system")?), Some(strings("code")?), Some(strings("kind")?)),
            // A registry's values in long form: the value's type says which chart it feeds.
            "registry_values" => {
                (system, code, kind) = (Some(strings("code_system")?), Some(strings("value_text")?), Some(strings("value_type")?));
                date = Some(column::<Date32Array>(batch, "value_date")?);
            }
            _ => {}
        }
        for row in 0..batch.num_rows() {
            if keys.is_null(row) {
                continue;
            }
            let Ok(key) = <[u8; 32]>::try_from(keys.value(row)) else { return Err(DashboardError::Internal) };
            if self.excluded.contains(&key) {
                continue;
            }
            let next = self.persons.len() as u32;
            let p = *self.index.entry(key).or_insert(next);
            if p == next {
                self.persons.push(Person::default());
            }
            let person = &mut self.persons[p as usize];
            if let Some(a) = age.and_then(|a| value_i32(a, row)) {
                person.age = Some(person.age.map_or(a, |b| b.max(a)));
            }
            let row_sex = sex.and_then(|s| sex_index(s, row));
            match table {
                "patients" => {
                    person.patient_sex = person.patient_sex.or(row_sex);
                    let pref = prefecture.and_then(|a| value_i32(a, row)).filter(|c| (1..=47).contains(c));
                    person.prefecture = person.prefecture.or(pref.map(|c| c as u8));
                }
                "claims" => person.claim_sex = person.claim_sex.or(row_sex),
                "registry_values" => match text(kind, row) {
                    Some("sex") => person.registry_sex = person.registry_sex.or(code.and_then(|c| sex_index(c, row))),
                    Some("prefecture") => {
                        let pref = text(code, row).and_then(|c| c.parse::<u8>().ok()).filter(|c| (1..=47).contains(c));
                        person.prefecture = person.prefecture.or(pref);
                    }
                    _ => {}
                },
                _ => {}
            }
            match table {
                "conditions" => {
                    if let Some(c) = icd10_category(text(system, row), text(code, row), text(alt, row)) {
                        self.diagnoses.add(&c, p);
                    }
                }
                "medications" => {
                    if let Some(d) = drug_code(text(system, row), text(code, row), text(alt, row)) {
                        self.drugs.add(&d, p);
                    }
                }
                "claim_lines" if text(kind, row) == Some("drug") => {
                    if let Some(d) = drug_code(text(system, row), text(code, row), None) {
                        self.drugs.add(&d, p);
                    }
                }
                "registry_values" if text(kind, row) == Some("code") => {
                    if let Some(c) = icd10_category(text(system, row), text(code, row), None) {
                        self.diagnoses.add(&c, p);
                    } else if let Some(d) = drug_code(text(system, row), text(code, row), None) {
                        self.drugs.add(&d, p);
                    }
                }
                "registry_values" if text(kind, row) == Some("year_month") => {
                    if let Some(m) = text(code, row).filter(|m| plausible_month(m)) {
                        self.months.add(m, p);
                    }
                }
                _ => {}
            }
            if let Some(m) = text(month, row).filter(|m| plausible_month(m)) {
                self.months.add(m, p);
            }
            if let Some(dates) = date {
                self.month_of_date(dates, row, p);
            }
        }
        Ok(())
    }

    fn month_of_date(&mut self, dates: &Date32Array, row: usize, person: u32) {
        if dates.is_null(row) {
            return;
        }
        let Ok(date) = time::Date::from_julian_day(dates.value(row) + UNIX_EPOCH_JULIAN_DAY) else { return };
        if !(1900..=2100).contains(&date.year()) {
            return;
        }
        self.months.add(&format!("{:04}-{:02}", date.year(), date.month() as u8), person);
    }

    /// The number of distinct persons seen (excluded persons not counted).
    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    /// The exact counts of every chart of [`CHARTS`], in that order.
    pub fn finish(self) -> Vec<RawChart> {
        // Age band × sex: one cell per person.
        let mut age_sex: HashMap<(u8, u8), u64> = HashMap::new();
        let mut prefecture: HashMap<u8, u64> = HashMap::new();
        for person in &self.persons {
            let band = person.age.filter(|a| *a >= 0).map_or(u8::MAX, |a| (a / 10).min(9) as u8);
            let sex = person.patient_sex.or(person.claim_sex).or(person.registry_sex).unwrap_or(3);
            *age_sex.entry((band, sex)).or_default() += 1;
            *prefecture.entry(person.prefecture.unwrap_or(u8::MAX)).or_default() += 1;
        }
        let mut age_sex: Vec<_> = age_sex.into_iter().collect();
        age_sex.sort();
        let age_sex = age_sex.into_iter().map(|((band, sex), n)| (vec![age_band(band), SEXES[sex as usize].to_string()], n)).collect();
        let mut prefecture: Vec<_> = prefecture.into_iter().collect();
        prefecture.sort();
        let prefecture = prefecture.into_iter().map(|(c, n)| (vec![if c == u8::MAX { UNKNOWN.to_string() } else { format!("{c:02}") }], n)).collect();
        let mut months = self.months.counts();
        months.sort();
        let months = months.into_iter().map(|(m, n)| (vec![m], n)).collect();
        vec![
            RawChart { spec: &CHARTS[0], rows: age_sex },
            RawChart { spec: &CHARTS[1], rows: prefecture },
            RawChart { spec: &CHARTS[2], rows: self.diagnoses.top(TOP) },
            RawChart { spec: &CHARTS[3], rows: self.drugs.top(TOP) },
            RawChart { spec: &CHARTS[4], rows: months },
        ]
    }
}

/// Julian day of 1970-01-01 (Arrow's `Date32` counts days from it).
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

fn age_band(band: u8) -> String {
    match band {
        u8::MAX => UNKNOWN.to_string(),
        9 => "90+".to_string(),
        b => format!("{}-{}", b as u32 * 10, b as u32 * 10 + 9),
    }
}

fn column<'b, T: Array + 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b T, DashboardError> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<T>()).ok_or(DashboardError::Internal)
}

fn value_str(a: &StringArray, row: usize) -> Option<&str> {
    (!a.is_null(row)).then(|| a.value(row))
}

fn text(a: Option<&StringArray>, row: usize) -> Option<&str> {
    a.and_then(|a| value_str(a, row))
}

fn value_i32(a: &Int32Array, row: usize) -> Option<i32> {
    (!a.is_null(row)).then(|| a.value(row))
}

fn sex_index(a: &StringArray, row: usize) -> Option<u8> {
    value_str(a, row).and_then(|s| SEXES.iter().position(|x| *x == s)).filter(|&i| i < 3).map(|i| i as u8)
}

fn plausible_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && m[..4].parse::<u16>().is_ok_and(|y| (1900..=2100).contains(&y))
        && m[5..].parse::<u8>().is_ok_and(|mo| (1..=12).contains(&mo))
}

/// The ICD-10 three-character category of a condition row: its code when the system is
/// ICD-10, else its first ICD-10 alternative coding (`Icd10:E119`).
pub fn icd10_category(system: Option<&str>, code: Option<&str>, alt_codes: Option<&str>) -> Option<String> {
    let primary = (system == Some("Icd10")).then_some(code).flatten();
    let alt = || alt_codes.into_iter().flat_map(|a| a.split(';')).find_map(|c| c.strip_prefix("Icd10:"));
    let code = primary.or_else(alt)?;
    let c: Vec<char> = code.trim().chars().take(3).collect();
    let ok = c.len() == 3 && c[0].is_ascii_alphabetic() && c[1].is_ascii_digit() && c[2].is_ascii_alphanumeric();
    ok.then(|| c.iter().collect::<String>().to_ascii_uppercase())
}

/// A drug's key `System:code`: the coding itself when its system is a standard drug code,
/// else the first standard alternative coding.
pub fn drug_code(system: Option<&str>, code: Option<&str>, alt_codes: Option<&str>) -> Option<String> {
    let valid = |c: &str| !c.is_empty() && c.len() <= 32 && c.bytes().all(|b| b.is_ascii_alphanumeric());
    if let (Some(s), Some(c)) = (system, code) {
        if DRUG_SYSTEMS.contains(&s) && valid(c) {
            return Some(format!("{s}:{c}"));
        }
    }
    alt_codes.into_iter().flat_map(|a| a.split(';')).find_map(|coding| {
        let (s, c) = coding.split_once(':')?;
        (DRUG_SYSTEMS.contains(&s) && valid(c)).then(|| format!("{s}:{c}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Date32Builder, FixedSizeBinaryBuilder, Int32Builder, StringBuilder};
    use arrow_array::ArrayRef;
    use std::sync::Arc;

    fn key(n: u32) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        k
    }

    /// A batch of `table` with the lake's schema: every column null but those given.
    fn batch(table: &str, persons: &[u32], set: &[(&str, Vec<Option<String>>)]) -> RecordBatch {
        let schema = niji_lake::table_schema(table).unwrap();
        let n = persons.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                let given = set.iter().find(|(name, _)| name == f.name()).map(|(_, v)| v.clone()).unwrap_or_else(|| vec![None; n]);
                match f.data_type() {
                    arrow_schema::DataType::FixedSizeBinary(32) => {
                        let mut b = FixedSizeBinaryBuilder::new(32);
                        persons.iter().for_each(|p| b.append_value(key(*p)).unwrap());
                        Arc::new(b.finish())
                    }
                    arrow_schema::DataType::Utf8 => {
                        let mut b = StringBuilder::new();
                        given.iter().for_each(|v| b.append_option(v.as_deref()));
                        Arc::new(b.finish())
                    }
                    arrow_schema::DataType::Int32 => {
                        let mut b = Int32Builder::new();
                        given.iter().for_each(|v| b.append_option(v.as_deref().map(|s| s.parse().unwrap())));
                        Arc::new(b.finish())
                    }
                    arrow_schema::DataType::Date32 => {
                        let mut b = Date32Builder::new();
                        given.iter().for_each(|v| {
                            b.append_option(v.as_deref().map(|s| {
                                let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).unwrap();
                                d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY
                            }))
                        });
                        Arc::new(b.finish())
                    }
                    other => arrow_array::new_null_array(other, n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn rows(chart: &RawChart) -> Vec<(Vec<&str>, u64)> {
        chart.rows.iter().map(|(k, n)| (k.iter().map(String::as_str).collect(), *n)).collect()
    }

    #[test]
    fn counts_distinct_persons_and_skips_excluded_ones() {
        let excluded: HashSet<[u8; 32]> = [key(4)].into_iter().collect();
        let mut c = Counter::new(&excluded);
        // Persons 1–4: 1 and 2 male in Tokyo, 3 female without prefecture, 4 excluded.
        c.add(
            "patients",
            &batch(
                "patients",
                &[1, 2, 3, 4],
                &[("sex", vec![s("male"), s("male"), s("female"), s("male")]), ("prefecture", vec![s("13"), s("13"), None, s("13")])],
            ),
        )
        .unwrap();
        // Person 1 has the same diagnosis three times (once as an alternative coding), person 2
        // once; person 4 (excluded) twice.
        c.add(
            "conditions",
            &batch(
                "conditions",
                &[1, 1, 1, 2, 4, 4, 3],
                &[
                    ("code_system", vec![s("Icd10"), s("Icd10"), s("ReceiptDisease"), s("Icd10"), s("Icd10"), s("Icd10"), s("Icd10")]),
                    ("code", vec![s("E119"), s("E11.9"), s("8842341"), s("E110"), s("E119"), s("I10"), s("I10")]),
                    ("alt_codes", vec![None, None, s("Icd10:E11"), None, None, None, None]),
                    ("recorded", vec![s("2024-03-02"), s("2024-03-20"), None, s("2024-04-01"), s("2024-03-05"), None, None]),
                    ("age", vec![s("44"), s("45"), None, s("71"), s("30"), None, s("8")]),
                ],
            ),
        )
        .unwrap();
        // Claims: person 5 only here (sex from the claim), two claims in March; person 4 again.
        c.add(
            "claims",
            &batch(
                "claims",
                &[5, 5, 4],
                &[
                    ("sex", vec![s("female"), s("female"), s("male")]),
                    ("month", vec![s("2024-03"), s("2024-03"), s("2024-05")]),
                    ("age", vec![s("95"), s("96"), s("50")]),
                ],
            ),
        )
        .unwrap();
        c.add(
            "medications",
            &batch(
                "medications",
                &[1, 2, 2],
                &[
                    ("code_system", vec![s("Yj"), s("LocalDrug"), s("Yj")]),
                    ("code", vec![s("3969007F1024"), s("X1"), s("3969007F1024")]),
                    ("alt_codes", vec![None, s("Hot:1234567890123"), None]),
                ],
            ),
        )
        .unwrap();
        c.add(
            "claim_lines",
            &batch(
                "claim_lines",
                &[5, 5],
                &[
                    ("kind", vec![s("drug"), s("procedure")]),
                    ("code_system", vec![s("ReceiptDrug"), s("ReceiptProcedure")]),
                    ("code", vec![s("620000001"), s("111000110")]),
                ],
            ),
        )
        .unwrap();
        assert_eq!(c.persons(), 4);
        let charts = c.finish();
        assert_eq!(charts.iter().map(|c| c.spec.id).collect::<Vec<_>>(), ["age-sex", "prefecture", "diagnoses", "drugs", "monthly"]);
        assert_eq!(
            rows(&charts[0]),
            [(vec!["0-9", "female"], 1), (vec!["40-49", "male"], 1), (vec!["70-79", "male"], 1), (vec!["90+", "female"], 1)]
        );
        assert_eq!(rows(&charts[1]), [(vec!["13"], 2), (vec![UNKNOWN], 2)]);
        assert_eq!(rows(&charts[2]), [(vec!["E11"], 2), (vec!["I10"], 1)]);
        assert_eq!(rows(&charts[3]), [(vec!["Yj:3969007F1024"], 2), (vec!["Hot:1234567890123"], 1), (vec!["ReceiptDrug:620000001"], 1)]);
        assert_eq!(rows(&charts[4]), [(vec!["2024-03"], 2), (vec!["2024-04"], 1)]);
    }

    /// A registry's values feed the charts their types name: sex and prefecture per person,
    /// ICD-10 and drug codes, months from dates and year-months. Numbers and municipalities
    /// feed none.
    #[test]
    fn registry_values_feed_the_charts_their_types_name() {
        let excluded: HashSet<[u8; 32]> = [key(9)].into_iter().collect();
        let mut c = Counter::new(&excluded);
        let entries: [(u32, &str, Option<&str>, Option<&str>, Option<&str>); 12] = [
            (1, "sex", None, Some("female"), None),
            (1, "prefecture", None, Some("27"), None),
            (1, "code", Some("Icd10"), Some("C509"), None),
            (1, "date", None, None, Some("2023-06-14")),
            (2, "sex", None, Some("male"), None),
            (2, "prefecture", None, Some("99"), None),
            (2, "code", Some("Yj"), Some("4291003F1025"), None),
            (2, "year_month", None, Some("2023-06"), None),
            (2, "number", None, None, None),
            (3, "municipality", None, Some("27100"), None),
            (9, "sex", None, Some("male"), None),
            (9, "code", Some("Icd10"), Some("C509"), None),
        ];
        type Entry = (u32, &'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>);
        let column = |f: fn(&Entry) -> Option<&'static str>| entries.iter().map(|r| f(r).map(String::from)).collect::<Vec<_>>();
        c.add(
            "registry_values",
            &batch(
                "registry_values",
                &entries.iter().map(|r| r.0).collect::<Vec<_>>(),
                &[
                    ("value_type", column(|r| Some(r.1))),
                    ("code_system", column(|r| r.2)),
                    ("value_text", column(|r| r.3)),
                    ("value_date", column(|r| r.4)),
                ],
            ),
        )
        .unwrap();
        assert_eq!(c.persons(), 3);
        let charts = c.finish();
        assert_eq!(rows(&charts[0]), [(vec![UNKNOWN, "male"], 1), (vec![UNKNOWN, "female"], 1), (vec![UNKNOWN, UNKNOWN], 1)]);
        assert_eq!(rows(&charts[1]), [(vec!["27"], 1), (vec![UNKNOWN], 2)]);
        assert_eq!(rows(&charts[2]), [(vec!["C50"], 1)]);
        assert_eq!(rows(&charts[3]), [(vec!["Yj:4291003F1025"], 1)]);
        assert_eq!(rows(&charts[4]), [(vec!["2023-06"], 2)]);
    }

    #[test]
    fn release_leaves_out_small_counts_and_suppresses_their_complement() {
        let raw = RawChart {
            spec: &CHARTS[1],
            rows: vec![(vec!["01".into()], 120), (vec!["13".into()], 4), (vec!["27".into()], 35), (vec![UNKNOWN.into()], 11)],
        };
        let chart = release(raw).unwrap();
        let shown: Vec<_> = chart.rows.iter().map(|(k, v)| (k[0].as_str(), v[0])).collect();
        // 13 is below 10: left out, key and all; the smallest other row (unknown, 11) is
        // suppressed with it so that it cannot be recomputed from the total.
        assert_eq!(shown, [("01", Shown::Value(120.0)), ("27", Shown::Value(40.0)), (UNKNOWN, Shown::Suppressed)]);
        assert_eq!(chart.suppressed, 1);
    }

    #[test]
    fn codes_are_read_leniently_and_only_when_plausible() {
        assert_eq!(icd10_category(Some("Icd10"), Some("e11.9"), None).as_deref(), Some("E11"));
        assert_eq!(icd10_category(Some("Icd10"), Some("1"), None), None);
        assert_eq!(icd10_category(Some("ReceiptDisease"), Some("8842341"), Some("DiseaseExchangeCode:ABCD;Icd10:C349")).as_deref(), Some("C34"));
        assert_eq!(drug_code(Some("NoStandardDrugCode"), Some("x"), None), None);
        assert_eq!(drug_code(Some("Yj"), Some("bad code"), None), None);
        assert!(plausible_month("2024-12") && !plausible_month("2024-13") && !plausible_month("24-01") && !plausible_month("1800-01"));
    }
}
