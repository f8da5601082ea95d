//! The PPC processing standard (個人情報保護法施行規則 第34条) as a pipeline, and its report.
//!
//! Steps, in order, each recorded in the report with the item of 第34条 it serves:
//! 1. Dates shifted per person (第1号, 第5号): every date of a person moves by the same number
//!    of days, `HMAC-SHA256(key, person id)` mapped into `[-max_days, +max_days]`, so intervals
//!    between a person's events survive while calendar dates no longer match the source. The
//!    key comes in as an argument and is never stored in the configuration or the report.
//! 2. Direct identifiers and free text removed (第1号), 個人識別符号 such as insurance numbers
//!    or My Number removed (第2号), codes linking back to the source removed (第3号).
//! 3. 特異な記述 (第4号): numeric outliers top/bottom coded at chosen percentiles or values (a
//!    value at or above the top threshold `T` becomes `"{T}+"`, one at or below the bottom
//!    threshold `B` becomes `"≤{B}"`), and categories rarer than a threshold replaced by a
//!    placeholder.
//! 4. The privacy model (第5号): the optimal generalization and suppression of the
//!    quasi-identifiers under k-anonymity (and l-diversity, t-closeness when asked).
//!
//! Hierarchies of quasi-identifiers may be given or built in; built-in ones are built from the
//! values after steps 1–3 (an age top-coded at `T` gets age bands top-coded at `T`).
//!
//! Invariants: no column without a role passes; identifying, 個人識別符号, linking and free-text
//! columns never reach the output; the report names columns, counts and thresholds, never a
//! rare value or an identifier; the same input, configuration and key give the same output.

use crate::builtin::{self, AgeBands, DateLevel};
use crate::engine::{self, AnonError, AnonymizationConfig, Attribute, AttributeRole, ModelSettings, QiLevel};
use crate::hierarchy::Hierarchy;
use crate::metric::InfoLoss;
use crate::privacy::PrivacyModel;
use crate::risk::{self, RiskMeasures};
use crate::search::SearchStats;
use crate::table::{Column, Table};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The pipeline's configuration (without the date-shift key, which is passed to [`run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PpcConfig {
    /// A role for every column.
    pub columns: Vec<PpcColumn>,
    pub date_shift: Option<DateShiftRule>,
    pub outliers: Vec<OutlierRule>,
    pub rare_values: Vec<RareValueRule>,
    /// The privacy model (step 4) and how it is applied.
    pub model: ModelSettings,
}

/// A column and its role in the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PpcColumn {
    pub column: String,
    pub role: PpcRole,
}

/// What a column is under 第34条.
#[derive(Debug, Clone, PartialEq)]
pub enum PpcRole {
    /// Name, address, phone, … (第1号): removed.
    DirectIdentifier,
    /// 個人識別符号: insurance numbers, My Number, … (第2号): removed.
    IdentificationCode,
    /// A code linking to the source, e.g. a patient or record id (第3号): removed.
    LinkingCode,
    /// Free text, which may hold anything (第1号): removed.
    FreeText,
    /// Generalized by the privacy model.
    QuasiIdentifier(QiHierarchy),
    /// Released, protected by l-diversity / t-closeness when configured.
    Sensitive,
    /// Released.
    Insensitive,
}

/// Where a quasi-identifier's hierarchy comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum QiHierarchy {
    /// Given (e.g. parsed from a file).
    Given(Hierarchy),
    /// [`builtin::age_bands`]; its top code is replaced by the column's top-coding threshold
    /// when an outlier rule top-codes the column.
    AgeBands(AgeBands),
    /// [`builtin::dates`] over the (shifted) values.
    Dates(Vec<DateLevel>),
    /// [`builtin::municipalities`] over the values.
    Municipalities,
    /// [`builtin::icd10`] over the values.
    Icd10,
}

/// Shift dates per person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateShiftRule {
    /// The column identifying the person (any role; usually a linking code, then removed).
    pub person_column: String,
    /// The date columns to shift (`YYYY-MM-DD`, `YYYYMMDD` or `YYYY/MM/DD`; empty = missing).
    pub date_columns: Vec<String>,
    /// Largest shift in days, either way.
    pub max_days: u32,
}

/// Top/bottom coding of a numeric column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierRule {
    pub column: String,
    pub lower: Option<Threshold>,
    pub upper: Option<Threshold>,
}

/// A coding threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// The value at this percentile (nearest rank, 0–100) of the column.
    Percentile(f64),
    /// A fixed value.
    Value(f64),
}

/// Replace categories with fewer than `min_count` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RareValueRule {
    pub column: String,
    pub min_count: u32,
    /// The placeholder (for a quasi-identifier with a given hierarchy it must be a value of
    /// the hierarchy).
    pub replacement: String,
}

/// Why the pipeline failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PpcError {
    #[error(transparent)]
    Engine(#[from] AnonError),
    #[error("column {0:?} has no role")]
    UnassignedColumn(String),
    #[error("no column named {0:?}")]
    UnknownColumn(String),
    #[error("date shifting needs a non-empty key")]
    MissingKey,
    /// Errors name the column and data row, never the cell's value.
    #[error("column {column:?}, data row {row}: not a date")]
    NotADate { column: String, row: usize },
    #[error("column {column:?}, data row {row}: not a number")]
    NotANumber { column: String, row: usize },
    #[error("column {column:?}: {message}")]
    Hierarchy { column: String, message: String },
    #[error("invalid rule: {0}")]
    Rule(String),
}

/// The input's risk against a population table, classes keyed by the raw values of the
/// quasi-identifiers (before any rule of the pipeline).
fn raw_population_risk(table: &Table, qis: &[&str], population: &Table, threshold: f64) -> Result<RiskMeasures, PpcError> {
    let columns = |t: &Table| -> Result<Vec<usize>, PpcError> {
        qis.iter().map(|n| t.column_index(n).map_err(|_| PpcError::UnknownColumn((*n).to_owned()))).collect()
    };
    let (sample_columns, population_columns) = (columns(table)?, columns(population)?);
    let mut sample: std::collections::HashMap<Vec<&str>, u32> = std::collections::HashMap::new();
    for r in 0..table.num_rows() {
        *sample.entry(sample_columns.iter().map(|&c| table.column_at(c).value(r)).collect()).or_default() += 1;
    }
    let mut counts: std::collections::HashMap<Vec<&str>, u32> = std::collections::HashMap::new();
    for r in 0..population.num_rows() {
        let key: Vec<&str> = population_columns.iter().map(|&c| population.column_at(c).value(r)).collect();
        if sample.contains_key(&key) {
            *counts.entry(key).or_default() += 1;
        }
    }
    let (f, big_f): (Vec<u32>, Vec<u32>) = sample.iter().map(|(k, &n)| (n, counts.get(k).copied().unwrap_or(0))).unzip();
    Ok(risk::measure(&f, Some(&big_f), threshold))
}

/// A rule the pipeline applied, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedRule {
    /// Short stable name: `date_shift`, `remove_direct_identifier`, `remove_identification_code`,
    /// `remove_linking_code`, `remove_free_text`, `top_coding`, `bottom_coding`, `rare_values`,
    /// `privacy_model`.
    pub rule: &'static str,
    /// The column, or empty for the privacy model.
    pub column: String,
    /// The item of 第34条 and the reason, in Japanese.
    pub reason: String,
    /// What was done (thresholds, counts, levels), without data values.
    pub detail: String,
    /// Rows (records) changed.
    pub rows_affected: u64,
}

/// What the pipeline did.
#[derive(Debug, Clone, PartialEq)]
pub struct PpcReport {
    pub records_in: u64,
    pub records_out: u64,
    pub rules: Vec<AppliedRule>,
    /// Chosen level of each quasi-identifier.
    pub generalization: Vec<QiLevel>,
    pub loss: InfoLoss,
    pub suppressed_records: u64,
    pub released_classes: u64,
    /// Risk of the input's quasi-identifiers as they came in.
    pub risk_before: RiskMeasures,
    /// Risk of the released table.
    pub risk_after: RiskMeasures,
    pub search: SearchStats,
}

/// The released table and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct PpcOutcome {
    pub table: Table,
    pub report: PpcReport,
}

impl Default for PpcConfig {
    fn default() -> Self {
        PpcConfig {
            columns: Vec::new(),
            date_shift: None,
            outliers: Vec::new(),
            rare_values: Vec::new(),
            model: ModelSettings { privacy: PrivacyModel::k_anonymity(5), ..ModelSettings::default() },
        }
    }
}

/// Runs the pipeline; `date_shift_key` is required when the configuration shifts dates.
pub fn run(table: &Table, config: &PpcConfig, date_shift_key: Option<&[u8]>) -> Result<PpcOutcome, PpcError> {
    for c in &config.columns {
        table.column_index(&c.column).map_err(|_| PpcError::UnknownColumn(c.column.clone()))?;
    }
    let role_of = |name: &str| config.columns.iter().find(|c| c.column == name).map(|c| &c.role);
    for name in table.header() {
        if role_of(name).is_none() {
            return Err(PpcError::UnassignedColumn(name.to_owned()));
        }
    }
    let qi_names: Vec<&str> = config.columns.iter().filter(|c| matches!(c.role, PpcRole::QuasiIdentifier(_))).map(|c| c.column.as_str()).collect();
    let qi_indices: Vec<usize> = qi_names.iter().map(|n| table.column_index(n).expect("checked")).collect();
    let risk_before = match &config.model.population {
        None => risk::measure(&engine::class_sizes(table, &qi_indices), None, config.model.risk_threshold),
        Some(population) => raw_population_risk(table, &qi_names, population, config.model.risk_threshold)?,
    };

    let mut columns: Vec<Column> = table.columns().to_vec();
    let index = |name: &str| table.column_index(name).map_err(|_| PpcError::UnknownColumn(name.to_owned()));
    let mut rules = Vec::new();

    // 1. Dates shifted per person.
    if let Some(shift) = &config.date_shift {
        let key = date_shift_key.filter(|k| !k.is_empty()).ok_or(PpcError::MissingKey)?;
        let person = table.column(&shift.person_column).map_err(|_| PpcError::UnknownColumn(shift.person_column.clone()))?;
        let offsets: Vec<i64> = person.dictionary().iter().map(|id| date_offset(key, id, shift.max_days)).collect();
        for name in &shift.date_columns {
            let i = index(name)?;
            let (shifted, changed) = shift_dates(&columns[i], person, &offsets)?;
            columns[i] = shifted;
            rules.push(AppliedRule {
                rule: "date_shift",
                column: name.clone(),
                reason: "第34条第1号・第5号: 日付を個人ごとに同じ日数だけずらし、出来事の間隔を保ったまま元の日付と照合できなくする".into(),
                detail: format!("HMAC-SHA256(鍵, {}) による ±{} 日以内の個人別シフト", shift.person_column, shift.max_days),
                rows_affected: changed,
            });
        }
    }

    // 2. Identifiers, 個人識別符号, linking codes and free text removed.
    for c in &config.columns {
        let (rule, reason) = match c.role {
            PpcRole::DirectIdentifier => ("remove_direct_identifier", "第34条第1号: 特定の個人を識別できる記述の削除"),
            PpcRole::IdentificationCode => ("remove_identification_code", "第34条第2号: 個人識別符号の全部の削除"),
            PpcRole::LinkingCode => ("remove_linking_code", "第34条第3号: 元の情報と連結する符号の削除"),
            PpcRole::FreeText => ("remove_free_text", "第34条第1号: 個人を識別しうる記述を含みうる自由記述の削除"),
            _ => continue,
        };
        rules.push(AppliedRule {
            rule,
            column: c.column.clone(),
            reason: reason.into(),
            detail: "列を削除".into(),
            rows_affected: table.num_rows() as u64,
        });
    }

    // 3. 特異な記述: outliers, then rare categories.
    let mut top_codes: Vec<(String, String)> = Vec::new();
    for rule in &config.outliers {
        let i = index(&rule.column)?;
        let (coded, applied) = code_outliers(&columns[i], rule)?;
        columns[i] = coded;
        for (name, threshold, count) in applied {
            if name == "top_coding" {
                top_codes.push((rule.column.clone(), threshold.clone()));
            }
            rules.push(AppliedRule {
                rule: name,
                column: rule.column.clone(),
                reason: "第34条第4号: 特異な記述（外れ値）の削除".into(),
                detail: if name == "top_coding" {
                    format!("{threshold} 以上を \"{threshold}+\" に置換")
                } else {
                    format!("{threshold} 以下を \"≤{threshold}\" に置換")
                },
                rows_affected: count,
            });
        }
    }
    for rule in &config.rare_values {
        let i = index(&rule.column)?;
        let freq = columns[i].frequencies();
        let rare: Vec<bool> = freq.iter().map(|&f| f < rule.min_count).collect();
        let rows: u64 = freq.iter().zip(&rare).filter(|(_, &r)| r).map(|(&f, _)| f as u64).sum();
        let values = rare.iter().filter(|&&r| r).count();
        let column = &columns[i];
        let dictionary = column.dictionary().to_vec();
        columns[i] = column.map_values(|v| {
            let code = dictionary.iter().position(|d| d == v).expect("value of the column");
            if rare[code] {
                rule.replacement.clone()
            } else {
                v.to_owned()
            }
        });
        rules.push(AppliedRule {
            rule: "rare_values",
            column: rule.column.clone(),
            reason: "第34条第4号: 特異な記述（まれな値）の削除".into(),
            detail: format!("出現数 {} 未満の {} 種類の値を \"{}\" に置換", rule.min_count, values, rule.replacement),
            rows_affected: rows,
        });
    }
    let prepared = Table::from_columns(columns).map_err(AnonError::from)?;

    // 4. The privacy model.
    let mut attributes = Vec::new();
    for c in &config.columns {
        let role = match &c.role {
            PpcRole::DirectIdentifier | PpcRole::IdentificationCode | PpcRole::LinkingCode | PpcRole::FreeText => AttributeRole::Identifying,
            PpcRole::Sensitive => AttributeRole::Sensitive,
            PpcRole::Insensitive => AttributeRole::Insensitive,
            PpcRole::QuasiIdentifier(h) => {
                let column = prepared.column(&c.column).expect("checked");
                let top = top_codes.iter().find(|(name, _)| name == &c.column).map(|(_, t)| t.as_str());
                AttributeRole::QuasiIdentifying(build_hierarchy(&c.column, h, column, top)?)
            }
        };
        attributes.push(Attribute { column: c.column.clone(), role });
    }
    let anon = AnonymizationConfig { attributes, model: config.model.clone() };
    let (release, outcome) = engine::anonymize(&prepared, &anon)?;
    let mut model = format!("k={}", config.model.privacy.k);
    for l in &config.model.privacy.l_diversity {
        model.push_str(&format!(", {:?} l-diversity of {}", l.variant, l.attribute));
    }
    for t in &config.model.privacy.t_closeness {
        model.push_str(&format!(", t-closeness of {} (t={})", t.attribute, t.t));
    }
    let levels: Vec<String> = release.generalization.iter().map(|g| format!("{}={}/{}", g.column, g.level, g.levels - 1)).collect();
    rules.push(AppliedRule {
        rule: "privacy_model",
        column: String::new(),
        reason: "第34条第5号: データベースの性質を踏まえた措置（一般化と抑制による匿名化）".into(),
        detail: format!(
            "{model}; 抑制上限 {:.1}%; 一般化レベル {}; 指標 {} = {:.6}",
            config.model.suppression_limit * 100.0,
            levels.join(", "),
            config.model.metric.name(),
            release.evaluation.loss.value
        ),
        rows_affected: release.evaluation.suppressed_records,
    });
    let report = PpcReport {
        records_in: table.num_rows() as u64,
        records_out: release.table.num_rows() as u64,
        rules,
        generalization: release.generalization.clone(),
        loss: release.evaluation.loss.clone(),
        suppressed_records: release.evaluation.suppressed_records,
        released_classes: release.evaluation.released_classes,
        risk_before,
        risk_after: release.risk_after.clone(),
        search: outcome.stats,
    };
    Ok(PpcOutcome { table: release.table, report })
}

/// The shift in days for a person: the first 8 bytes of `HMAC-SHA256(key, person)` as a
/// big-endian integer, reduced into `[-max_days, +max_days]`.
pub fn date_offset(key: &[u8], person: &str, max_days: u32) -> i64 {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(person.as_bytes());
    let digest = mac.finalize().into_bytes();
    let x = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let span = 2 * max_days as u64 + 1;
    (x % span) as i64 - max_days as i64
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

fn shift_dates(column: &Column, person: &Column, offsets: &[i64]) -> Result<(Column, u64), PpcError> {
    let mut values = Vec::with_capacity(column.len());
    let mut changed = 0;
    for row in 0..column.len() {
        let value = column.value(row);
        if value.trim().is_empty() {
            values.push(String::new());
            continue;
        }
        let (y, m, d) = builtin::parse_date(value).ok_or_else(|| PpcError::NotADate { column: column.name().to_owned(), row: row + 1 })?;
        let days = days_from_civil(y, m, d) + offsets[person.codes()[row] as usize];
        let (y, m, d) = civil_from_days(days);
        let shifted = format!("{y:04}-{m:02}-{d:02}");
        if shifted != value {
            changed += 1;
        }
        values.push(shifted);
    }
    Ok((Column::from_values(column.name(), values), changed))
}

type Applied = Vec<(&'static str, String, u64)>;

fn code_outliers(column: &Column, rule: &OutlierRule) -> Result<(Column, Applied), PpcError> {
    let mut numbers: Vec<f64> = Vec::with_capacity(column.len());
    for row in 0..column.len() {
        let value = column.value(row);
        let x: f64 = value.trim().parse().map_err(|_| PpcError::NotANumber { column: column.name().to_owned(), row: row + 1 })?;
        numbers.push(x);
    }
    let mut sorted = numbers.clone();
    sorted.sort_by(f64::total_cmp);
    let resolve = |t: Threshold| -> Result<f64, PpcError> {
        match t {
            Threshold::Value(v) => Ok(v),
            Threshold::Percentile(p) if (0.0..=100.0).contains(&p) => {
                if sorted.is_empty() {
                    return Ok(0.0);
                }
                let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
                Ok(sorted[rank.min(sorted.len()) - 1])
            }
            Threshold::Percentile(p) => Err(PpcError::Rule(format!("percentile {p} of {:?} is not in [0, 100]", column.name()))),
        }
    };
    let lower = rule.lower.map(resolve).transpose()?;
    let upper = rule.upper.map(resolve).transpose()?;
    if let (Some(lo), Some(hi)) = (lower, upper) {
        if lo >= hi {
            return Err(PpcError::Rule(format!("bottom threshold {lo} is not below top threshold {hi} for {:?}", column.name())));
        }
    }
    let fmt = |x: f64| if x.fract() == 0.0 { format!("{}", x as i64) } else { format!("{x}") };
    let (mut top, mut bottom) = (0u64, 0u64);
    let values: Vec<String> = (0..column.len())
        .map(|row| match (numbers[row], lower, upper) {
            (x, _, Some(hi)) if x >= hi => {
                top += 1;
                format!("{}+", fmt(hi))
            }
            (x, Some(lo), _) if x <= lo => {
                bottom += 1;
                format!("≤{}", fmt(lo))
            }
            _ => column.value(row).to_owned(),
        })
        .collect();
    let mut applied = Vec::new();
    if let Some(hi) = upper {
        applied.push(("top_coding", fmt(hi), top));
    }
    if let Some(lo) = lower {
        applied.push(("bottom_coding", fmt(lo), bottom));
    }
    Ok((Column::from_values(column.name(), values), applied))
}

fn build_hierarchy(name: &str, spec: &QiHierarchy, column: &Column, top: Option<&str>) -> Result<Hierarchy, PpcError> {
    let err = |message: String| PpcError::Hierarchy { column: name.to_owned(), message };
    // The dictionary position of a bad value becomes the first data row holding it.
    let builtin_err = |e: builtin::BuiltinError| match e.value_index() {
        Some(i) => err(format!("data row {}: {e}", column.first_row_of(i))),
        None => err(e.to_string()),
    };
    match spec {
        QiHierarchy::Given(h) => Ok(h.clone()),
        QiHierarchy::AgeBands(bands) => {
            let mut bands = bands.clone();
            if let Some(top) = top {
                bands.top_code = Some(top.parse().map_err(|_| err(format!("top-coding threshold {top} is not a whole number")))?);
            }
            builtin::age_bands(&bands).map_err(|e| err(e.to_string()))
        }
        QiHierarchy::Dates(levels) => builtin::dates(column.dictionary(), levels).map_err(builtin_err),
        QiHierarchy::Municipalities => builtin::municipalities(column.dictionary()).map_err(builtin_err),
        QiHierarchy::Icd10 => builtin::icd10(column.dictionary()).map_err(builtin_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        for z in [-800_000i64, -1, 0, 59, 11016, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 28) + 1), (2024, 2, 29));
    }

    #[test]
    fn hmac_matches_rfc_4231_and_offsets_stay_in_range() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(date_offset(b"Jefe", "what do ya want for nothing?", 1_000_000), 0x5bdcc146bf60754e_u64 as i64 % 2_000_001 - 1_000_000);
        for id in ["p1", "p2", "p3", "患者4"] {
            let o = date_offset(b"secret key", id, 30);
            assert!((-30..=30).contains(&o));
            assert_eq!(o, date_offset(b"secret key", id, 30));
        }
        assert_eq!(date_offset(b"k", "x", 0), 0);
    }

    fn check_outliers(values: &[&str], lower: Option<Threshold>, upper: Option<Threshold>, expected: Result<&[&str], &str>) {
        let column = Column::from_values("x", values);
        let got = code_outliers(&column, &OutlierRule { column: "x".into(), lower, upper });
        match (got, expected) {
            (Ok((c, _)), Ok(want)) => assert_eq!((0..c.len()).map(|r| c.value(r)).collect::<Vec<_>>(), want),
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn top_and_bottom_coding() {
        let ages = ["20", "35", "50", "91", "99", "18"];
        check_outliers(&ages, None, Some(Threshold::Value(90.0)), Ok(&["20", "35", "50", "90+", "90+", "18"]));
        // Nearest rank: the 20th percentile of 6 values is the 2nd smallest (20).
        check_outliers(&ages, Some(Threshold::Percentile(20.0)), None, Ok(&["≤20", "35", "50", "91", "99", "≤20"]));
        check_outliers(&ages, Some(Threshold::Value(20.0)), Some(Threshold::Percentile(80.0)), Ok(&["≤20", "35", "50", "91+", "91+", "≤20"]));
        // The error names the row, not the cell's value.
        check_outliers(&["1", "x"], None, Some(Threshold::Value(1.0)), Err("column \"x\", data row 2: not a number"));
        check_outliers(&ages, Some(Threshold::Value(50.0)), Some(Threshold::Value(40.0)), Err("not below"));
        check_outliers(&ages, None, Some(Threshold::Percentile(120.0)), Err("not in [0, 100]"));
    }
}
