//! The anonymization configuration (TOML) and report (JSON) shared by `niji anonymize` and the
//! platform's anonymized extracts (issue 7): the configuration's file format, its translation
//! into `niji-anon`'s `PpcConfig`, the JSON report of a run, and the table as CSV.
//!
//! File access goes through a [`FileSource`] the caller provides: the command line reads
//! hierarchy files relative to the configuration and the date-shift key from the environment or
//! a file; the platform refuses files (builtin hierarchies only) and supplies a per-permit key.
//! Errors are [`ConfigError`]s whose text names the configuration's fields, never table values.

use anyhow::{anyhow, bail, Context, Result};
use niji_anon::builtin::{AgeBands, DateLevel};
use niji_anon::ppc::{self, DateShiftRule, OutlierRule, PpcColumn, PpcConfig, PpcRole, QiHierarchy, RareValueRule, Threshold};
use niji_anon::{
    AttackerRisk, GroundDistance, Hierarchy, LDiversity, LDiversityVariant, Metric, ModelSettings, PrivacyModel, ReleaseProperties, RiskMeasures,
    SearchStrategy, SuppressedRows, TCloseness, Table,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, or a table that cannot be read; the text names fields.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where hierarchy files and the date-shift key come from.
pub trait FileSource {
    /// The text of a hierarchy file named in the configuration.
    fn hierarchy(&self, path: &Path) -> Result<String, String>;
    /// The date-shift key, given the configuration's `key_env` and `key_file`.
    fn date_shift_key(&self, env: Option<&str>, file: Option<&Path>) -> Result<Vec<u8>, String>;
    /// The bytes of the population table (CSV, the input's separator) named in the
    /// configuration; by default none is available.
    fn population(&self, path: &Path) -> Result<Vec<u8>, String> {
        Err(format!("a population table ({}) cannot be read here", path.display()))
    }
}

/// Parses a configuration's text.
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError(format!("{e}")))
}

/// A table from CSV bytes with a header line.
pub fn table_from_csv(bytes: &[u8], separator: u8) -> Result<Table, ConfigError> {
    let mut reader = csv::ReaderBuilder::new().delimiter(separator).has_headers(true).from_reader(bytes);
    let header: Vec<String> = reader.headers().map_err(|_| ConfigError("the header line cannot be read".into()))?.iter().map(str::to_owned).collect();
    let mut builder = niji_anon::TableBuilder::new(&header).map_err(|e| ConfigError(format!("header: {e}")))?;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|_| ConfigError(format!("record {}: not a CSV record of the header's width", i + 1)))?;
        let values: Vec<&str> = record.iter().collect();
        builder.push_row(&values).map_err(|_| ConfigError(format!("record {}: cannot be added", i + 1)))?;
    }
    Ok(builder.finish())
}

/// A table as CSV bytes (header line first).
pub fn table_to_csv(table: &Table, separator: u8) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().delimiter(separator).from_writer(Vec::new());
    writer.write_record(table.header()).expect("writing to memory");
    for r in 0..table.num_rows() {
        writer.write_record(table.row(r)).expect("writing to memory");
    }
    writer.into_inner().expect("writing to memory")
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub input: String,
    pub output: String,
    pub records_in: u64,
    pub records_out: u64,
    pub suppressed_records: u64,
    pub released_classes: u64,
    pub privacy: PrivacyReport,
    pub generalization: Vec<GeneralizationReport>,
    pub information_loss: LossReport,
    pub risk_before: RiskReport,
    pub risk_after: RiskReport,
    pub rules: Vec<RuleReport>,
    pub search: SearchReport,
    /// k, l and t of the released table, measured from it alone.
    pub check: CheckReport,
}

/// What the released table achieves ([`niji_anon::check_release`]): the smallest class, and
/// per sensitive column the fewest distinct values in a class, the smallest exp(entropy), the
/// largest recursive-(c,l) ratio (when recursive l-diversity is configured) and the largest
/// t (equal distance; hierarchical when configured) against the released table's own
/// distribution.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub k: u32,
    pub classes: u64,
    pub sensitive: Vec<SensitiveCheckReport>,
    pub elapsed_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct SensitiveCheckReport {
    pub column: String,
    pub distinct_l: u32,
    pub entropy_l: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursive_c: Option<RecursiveCheck>,
    pub t_equal: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_hierarchical: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct RecursiveCheck {
    pub l: u32,
    /// The table is recursive-(c,l)-diverse for every c above this (null: infinite).
    pub c_above: f64,
}

impl CheckReport {
    pub fn new(p: &ReleaseProperties, elapsed_ms: f64) -> Self {
        CheckReport {
            k: p.k,
            classes: p.classes,
            sensitive: p
                .sensitive
                .iter()
                .map(|s| SensitiveCheckReport {
                    column: s.column.clone(),
                    distinct_l: s.distinct_l,
                    entropy_l: s.entropy_l,
                    recursive_c: s.recursive_c.map(|(l, c)| RecursiveCheck { l, c_above: c }),
                    t_equal: s.t_equal,
                    t_hierarchical: s.t_hierarchical,
                })
                .collect(),
            elapsed_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PrivacyReport {
    pub k: u32,
    pub l_diversity: Vec<LDiversityFile>,
    pub t_closeness: Vec<serde_json::Value>,
    pub suppression_limit: f64,
}

#[derive(Debug, Serialize)]
pub struct GeneralizationReport {
    pub column: String,
    pub level: u32,
    pub max_level: u32,
}

#[derive(Debug, Serialize)]
pub struct LossReport {
    pub metric: &'static str,
    pub value: f64,
    pub per_attribute: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct RiskReport {
    pub records: u64,
    pub classes: u64,
    pub prosecutor: AttackerReport,
    pub journalist: AttackerReport,
    pub marketer: f64,
}

#[derive(Debug, Serialize)]
pub struct AttackerReport {
    pub highest: f64,
    pub average: f64,
    pub records_at_highest: f64,
    pub records_above_threshold: f64,
    pub threshold: f64,
}

#[derive(Debug, Serialize)]
pub struct RuleReport {
    pub rule: &'static str,
    pub column: String,
    pub reason: String,
    pub detail: String,
    pub rows_affected: u64,
}

#[derive(Debug, Serialize)]
pub struct SearchReport {
    pub nodes: u64,
    pub classes_computed: u64,
    pub anonymous_found: u64,
    pub elapsed_ms: f64,
}

impl Report {
    /// The report of one run: `input`/`output` name the tables (paths, or an extract's name).
    pub fn new(input: String, output: String, file: &FileConfig, r: &ppc::PpcReport, elapsed_ms: f64, check: CheckReport) -> Self {
        let risk = |m: &RiskMeasures| RiskReport {
            records: m.records,
            classes: m.classes,
            prosecutor: attacker(&m.prosecutor),
            journalist: attacker(&m.journalist),
            marketer: m.marketer,
        };
        let per_attribute = r.generalization.iter().zip(&r.loss.per_attribute).map(|(g, v)| (g.column.clone(), serde_json::json!(v))).collect();
        Report {
            input,
            output,
            records_in: r.records_in,
            records_out: r.records_out,
            suppressed_records: r.suppressed_records,
            released_classes: r.released_classes,
            privacy: PrivacyReport {
                k: file.privacy.k,
                l_diversity: file.privacy.l_diversity.clone(),
                t_closeness: file
                    .privacy
                    .t_closeness
                    .iter()
                    .map(|t| serde_json::json!({"attribute": t.attribute, "t": t.t, "distance": t.distance}))
                    .collect(),
                suppression_limit: file.suppression_limit,
            },
            generalization: r
                .generalization
                .iter()
                .map(|g| GeneralizationReport { column: g.column.clone(), level: g.level, max_level: g.levels - 1 })
                .collect(),
            information_loss: LossReport { metric: r.loss.metric.name(), value: r.loss.value, per_attribute },
            risk_before: risk(&r.risk_before),
            risk_after: risk(&r.risk_after),
            rules: r
                .rules
                .iter()
                .map(|x| RuleReport {
                    rule: x.rule,
                    column: x.column.clone(),
                    reason: x.reason.clone(),
                    detail: x.detail.clone(),
                    rows_affected: x.rows_affected,
                })
                .collect(),
            search: SearchReport {
                nodes: r.search.nodes,
                classes_computed: r.search.classes_computed,
                anonymous_found: r.search.anonymous_found,
                elapsed_ms,
            },
            check,
        }
    }
}

fn attacker(a: &AttackerRisk) -> AttackerReport {
    AttackerReport {
        highest: a.highest,
        average: a.average,
        records_at_highest: a.records_at_highest,
        records_above_threshold: a.records_above_threshold,
        threshold: a.threshold,
    }
}

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default = "comma")]
    pub separator: String,
    #[serde(default = "semicolon")]
    pub hierarchy_separator: String,
    #[serde(default)]
    pub suppression_limit: f64,
    #[serde(default = "loss")]
    pub metric: String,
    #[serde(default = "optimal")]
    pub strategy: String,
    #[serde(default = "remove")]
    pub suppressed_rows: String,
    #[serde(default = "threshold")]
    pub risk_threshold: f64,
    pub privacy: PrivacyFile,
    pub attributes: Vec<AttributeFile>,
    #[serde(default)]
    pub date_shift: Option<DateShiftFile>,
    #[serde(default)]
    pub outliers: Vec<OutlierFile>,
    #[serde(default)]
    pub rare_values: Vec<RareValueFile>,
    /// A population (identification) table for the journalist and marketer risks: CSV with the
    /// quasi-identifiers' columns, raw values.
    #[serde(default)]
    pub population: Option<PathBuf>,
}

fn comma() -> String {
    ",".into()
}
fn semicolon() -> String {
    ";".into()
}
fn loss() -> String {
    "loss".into()
}
fn optimal() -> String {
    "optimal".into()
}
fn remove() -> String {
    "remove".into()
}
fn threshold() -> f64 {
    0.2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyFile {
    pub k: u32,
    #[serde(default)]
    pub l_diversity: Vec<LDiversityFile>,
    #[serde(default)]
    pub t_closeness: Vec<TClosenessFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LDiversityFile {
    pub attribute: String,
    pub variant: String,
    pub l: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TClosenessFile {
    pub attribute: String,
    pub t: f64,
    pub distance: String,
    #[serde(default)]
    pub hierarchy: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeFile {
    pub column: String,
    pub role: String,
    #[serde(default)]
    pub hierarchy: Option<HierarchyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum HierarchyFile {
    Path(PathBuf),
    Builtin(BuiltinFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinFile {
    builtin: String,
    #[serde(default)]
    min: Option<u32>,
    #[serde(default)]
    max: Option<u32>,
    #[serde(default)]
    widths: Option<Vec<u32>>,
    #[serde(default)]
    top_code: Option<u32>,
    #[serde(default)]
    levels: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateShiftFile {
    pub person_column: String,
    pub date_columns: Vec<String>,
    pub max_days: u32,
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    column: String,
    #[serde(default)]
    lower_percentile: Option<f64>,
    #[serde(default)]
    lower_value: Option<f64>,
    #[serde(default)]
    upper_percentile: Option<f64>,
    #[serde(default)]
    upper_value: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RareValueFile {
    column: String,
    min_count: u32,
    replacement: String,
}

impl FileConfig {
    /// The engine's configuration and the date-shift key; hierarchy files and the key come
    /// through `files`.
    pub fn resolve(&self, files: &dyn FileSource) -> Result<(PpcConfig, Option<Vec<u8>>), ConfigError> {
        self.resolve_inner(files).map_err(|e| ConfigError(format!("{e:#}")))
    }

    fn resolve_inner(&self, files: &dyn FileSource) -> Result<(PpcConfig, Option<Vec<u8>>)> {
        let hsep = single_byte_inner(&self.hierarchy_separator, "hierarchy_separator")? as char;
        let read_hierarchy = |path: &Path| -> Result<Hierarchy> {
            let text = files.hierarchy(path).map_err(|e| anyhow!(e))?;
            Hierarchy::parse(&text, hsep).with_context(|| format!("in hierarchy {}", path.display()))
        };
        let mut columns = Vec::new();
        for a in &self.attributes {
            let role = match a.role.as_str() {
                "direct-identifier" => PpcRole::DirectIdentifier,
                "identification-code" => PpcRole::IdentificationCode,
                "linking-code" => PpcRole::LinkingCode,
                "free-text" => PpcRole::FreeText,
                "sensitive" => PpcRole::Sensitive,
                "insensitive" => PpcRole::Insensitive,
                "quasi-identifier" => {
                    let h = a.hierarchy.as_ref().ok_or_else(|| anyhow!("quasi-identifier {:?} needs a hierarchy", a.column))?;
                    PpcRole::QuasiIdentifier(match h {
                        HierarchyFile::Path(path) => QiHierarchy::Given(read_hierarchy(path)?),
                        HierarchyFile::Builtin(b) => builtin(b).with_context(|| format!("hierarchy of {:?}", a.column))?,
                    })
                }
                other => bail!("column {:?}: unknown role {other:?}", a.column),
            };
            if !matches!(role, PpcRole::QuasiIdentifier(_)) && a.hierarchy.is_some() {
                bail!("column {:?}: only a quasi-identifier takes a hierarchy", a.column);
            }
            columns.push(PpcColumn { column: a.column.clone(), role });
        }
        let mut privacy = PrivacyModel::k_anonymity(self.privacy.k);
        for l in &self.privacy.l_diversity {
            let variant = match (l.variant.as_str(), l.c) {
                ("distinct", None) => LDiversityVariant::Distinct { l: whole(l.l, "l")? },
                ("entropy", None) => LDiversityVariant::Entropy { l: l.l },
                ("recursive", Some(c)) => LDiversityVariant::Recursive { c, l: whole(l.l, "l")? },
                ("recursive", None) => bail!("recursive l-diversity of {:?} needs c", l.attribute),
                (other, _) => {
                    bail!("l-diversity of {:?}: unknown variant {other:?} (distinct, entropy, recursive; c only for recursive)", l.attribute)
                }
            };
            privacy.l_diversity.push(LDiversity { attribute: l.attribute.clone(), variant });
        }
        for t in &self.privacy.t_closeness {
            let distance = match (t.distance.as_str(), &t.hierarchy) {
                ("equal", None) => GroundDistance::Equal,
                ("hierarchical", Some(path)) => GroundDistance::Hierarchical(read_hierarchy(path)?),
                ("hierarchical", None) => bail!("hierarchical t-closeness of {:?} needs a hierarchy file", t.attribute),
                (other, _) => bail!("t-closeness of {:?}: unknown distance {other:?} (equal, hierarchical)", t.attribute),
            };
            privacy.t_closeness.push(TCloseness { attribute: t.attribute.clone(), t: t.t, distance });
        }
        let mut key = None;
        let date_shift = match &self.date_shift {
            None => None,
            Some(d) => {
                key = Some(files.date_shift_key(d.key_env.as_deref(), d.key_file.as_deref()).map_err(|e| anyhow!(e))?);
                Some(DateShiftRule { person_column: d.person_column.clone(), date_columns: d.date_columns.clone(), max_days: d.max_days })
            }
        };
        let outliers = self
            .outliers
            .iter()
            .map(|o| {
                let pick = |percentile: Option<f64>, value: Option<f64>, side: &str| match (percentile, value) {
                    (Some(p), None) => Ok(Some(Threshold::Percentile(p))),
                    (None, Some(v)) => Ok(Some(Threshold::Value(v))),
                    (None, None) => Ok(None),
                    _ => Err(anyhow!("outliers of {:?}: give {side}_percentile or {side}_value, not both", o.column)),
                };
                Ok(OutlierRule {
                    column: o.column.clone(),
                    lower: pick(o.lower_percentile, o.lower_value, "lower")?,
                    upper: pick(o.upper_percentile, o.upper_value, "upper")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let config = PpcConfig {
            columns,
            date_shift,
            outliers,
            rare_values: self
                .rare_values
                .iter()
                .map(|r| RareValueRule { column: r.column.clone(), min_count: r.min_count, replacement: r.replacement.clone() })
                .collect(),
            model: ModelSettings {
                privacy,
                suppression_limit: self.suppression_limit,
                metric: Metric::from_name(&self.metric)
                    .ok_or_else(|| anyhow!("unknown metric {:?} (loss, precision, discernibility, aecs, entropy)", self.metric))?,
                strategy: match self.strategy.as_str() {
                    "optimal" => SearchStrategy::Optimal,
                    "exhaustive" => SearchStrategy::Exhaustive,
                    other => bail!("unknown strategy {other:?} (optimal, exhaustive)"),
                },
                suppressed_rows: match self.suppressed_rows.as_str() {
                    "remove" => SuppressedRows::Remove,
                    "mask" => SuppressedRows::Mask,
                    other => bail!("unknown suppressed_rows {other:?} (remove, mask)"),
                },
                risk_threshold: self.risk_threshold,
                population: match &self.population {
                    None => None,
                    Some(path) => {
                        let bytes = files.population(path).map_err(|e| anyhow!(e))?;
                        let separator = single_byte_inner(&self.separator, "separator")?;
                        Some(table_from_csv(&bytes, separator).map_err(|e| anyhow!("population table {}: {e}", path.display()))?)
                    }
                },
            },
        };
        Ok((config, key))
    }
}

fn builtin(b: &BuiltinFile) -> Result<QiHierarchy> {
    Ok(match b.builtin.as_str() {
        "age-bands" => QiHierarchy::AgeBands(AgeBands {
            min: b.min.unwrap_or(0),
            max: b.max.unwrap_or(120),
            widths: b.widths.clone().unwrap_or_else(|| vec![5, 10, 20]),
            top_code: b.top_code,
        }),
        "dates" => QiHierarchy::Dates(
            b.levels
                .clone()
                .unwrap_or_else(|| vec!["month".into(), "quarter".into(), "year".into()])
                .iter()
                .map(|l| match l.as_str() {
                    "month" => Ok(DateLevel::Month),
                    "quarter" => Ok(DateLevel::Quarter),
                    "year" => Ok(DateLevel::Year),
                    other => Err(anyhow!("unknown date level {other:?} (month, quarter, year)")),
                })
                .collect::<Result<_>>()?,
        ),
        "municipalities" => QiHierarchy::Municipalities,
        "icd10" => QiHierarchy::Icd10,
        other => bail!("unknown builtin hierarchy {other:?} (age-bands, dates, municipalities, icd10)"),
    })
}

fn whole(x: f64, name: &str) -> Result<u32> {
    if x.fract() != 0.0 || x < 1.0 {
        bail!("{name} must be a whole number of at least 1, got {x}");
    }
    Ok(x as u32)
}

pub fn single_byte(s: &str, name: &str) -> Result<u8, ConfigError> {
    single_byte_inner(s, name).map_err(|e| ConfigError(format!("{e:#}")))
}

fn single_byte_inner(s: &str, name: &str) -> Result<u8> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("{name} must be one ASCII character, got {s:?}"),
    }
}
