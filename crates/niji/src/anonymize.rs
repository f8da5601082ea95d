//! `niji anonymize --config CONFIG.toml INPUT.csv -o OUTPUT.csv --report REPORT.json`: glue
//! between files and the anonymization engine (`niji-anon`, its PPC 第34条 pipeline).
//!
//! The configuration is TOML. Paths in it (hierarchy files, the date-shift key file) are
//! relative to the configuration's folder. Example (Adult, k = 5): `examples/adult/config.toml`.
//!
//! ```toml
//! separator = ";"            # of the input and output CSV (default ",")
//! hierarchy_separator = ";"  # of hierarchy files (default ";")
//! suppression_limit = 0.0    # share of records that may be suppressed
//! metric = "loss"            # loss | precision | discernibility | aecs | entropy
//! strategy = "optimal"       # optimal | exhaustive
//! suppressed_rows = "remove" # remove | mask (quasi-identifiers set to *)
//! risk_threshold = 0.2       # record risk counted as "at risk"
//!
//! [privacy]
//! k = 5
//! l_diversity = [{ attribute = "diagnosis", variant = "distinct", l = 2 }]   # or entropy, recursive (c = …)
//! t_closeness = [{ attribute = "diagnosis", t = 0.3, distance = "equal" }]   # or hierarchical (hierarchy = "…")
//!
//! [[attributes]]
//! column = "age"
//! role = "quasi-identifier"  # direct-identifier | identification-code | linking-code | free-text
//!                            # | quasi-identifier | sensitive | insensitive
//! hierarchy = "hierarchies/age.csv"   # or { builtin = "age-bands", min = 0, max = 120, widths = [5, 10, 20], top_code = 90 }
//!                                     # or { builtin = "dates", levels = ["month", "year"] }
//!                                     # or { builtin = "municipalities" } or { builtin = "icd10" }
//!
//! [date_shift]               # optional: shift each person's dates by the same keyed offset
//! person_column = "patient_id"
//! date_columns = ["admission", "discharge"]
//! max_days = 30
//! key_env = "NIJI_DATE_SHIFT_KEY"     # or key_file = "secret.key"
//!
//! [[outliers]]               # optional: top/bottom coding
//! column = "age"
//! upper_value = 90           # or upper_percentile / lower_percentile / lower_value
//!
//! [[rare_values]]            # optional
//! column = "drug"
//! min_count = 10
//! replacement = "その他"
//! ```
//!
//! The JSON report's shape is defined here ([`Report`]), not in the engine. Besides the
//! search's figures it holds `check`: k, l and t of the written table measured from the table
//! alone ([`niji_anon::check_release`]), what an independent checker such as pycanon finds.

use anyhow::{anyhow, bail, Context, Result};
use niji_anon::builtin::{AgeBands, DateLevel};
use niji_anon::ppc::{self, DateShiftRule, OutlierRule, PpcColumn, PpcConfig, PpcRole, QiHierarchy, RareValueRule, Threshold};
use niji_anon::{
    check_release, AttackerRisk, GroundDistance, Hierarchy, LDiversity, LDiversityVariant, Metric, ModelSettings, PrivacyModel, ReleaseProperties,
    RiskMeasures, SearchStrategy, SensitiveSpec, SuppressedRows, TCloseness, Table,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `niji anonymize`.
#[derive(clap::Args, Debug, Clone)]
pub struct AnonymizeArgs {
    /// The anonymization configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// The input table (CSV with a header line).
    #[arg(value_name = "INPUT.csv")]
    pub input: PathBuf,
    /// Where to write the anonymized table (CSV).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Where to write the report (JSON).
    #[arg(long)]
    pub report: PathBuf,
}

/// Reads the configuration and the input, anonymizes, writes the output and the report.
pub fn run(args: AnonymizeArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let file: FileConfig = toml::from_str(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let base = args.config.parent().map(Path::to_path_buf).unwrap_or_default();
    let separator = single_byte(&file.separator, "separator")?;
    let table = read_csv(&args.input, separator)?;
    let (config, key) = file.resolve(&base).with_context(|| format!("in {}", args.config.display()))?;

    let started = Instant::now();
    let outcome = ppc::run(&table, &config, key.as_deref()).context("anonymizing")?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;

    // What the released table achieves, measured from the table alone (as a recipient or
    // pycanon would), beside the search's own accounting.
    let started = Instant::now();
    let qis: Vec<&str> = outcome.report.generalization.iter().map(|g| g.column.as_str()).collect();
    let specs: Vec<SensitiveSpec> = file
        .attributes
        .iter()
        .filter(|a| a.role == "sensitive")
        .map(|a| SensitiveSpec {
            column: a.column.clone(),
            recursive_l: config.model.privacy.l_diversity.iter().find_map(|l| match l.variant {
                LDiversityVariant::Recursive { l: value, .. } if l.attribute == a.column => Some(value),
                _ => None,
            }),
            hierarchy: config.model.privacy.t_closeness.iter().find_map(|t| match &t.distance {
                GroundDistance::Hierarchical(h) if t.attribute == a.column => Some(h.clone()),
                _ => None,
            }),
        })
        .collect();
    let properties = check_release(&outcome.table, &qis, &specs).context("checking the released table")?;
    let check = CheckReport::new(&properties, started.elapsed().as_secs_f64() * 1e3);

    write_csv(&args.output, &outcome.table, separator)?;
    let report = Report::new(&args, &file, &outcome.report, elapsed_ms, check);
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.report, json + "\n").with_context(|| format!("writing {}", args.report.display()))?;
    eprintln!(
        "anonymized {} → {} records ({} suppressed), levels {}, {} {:.4}; report in {}",
        outcome.report.records_in,
        outcome.report.records_out,
        outcome.report.suppressed_records,
        report.generalization.iter().map(|g| format!("{}={}", g.column, g.level)).collect::<Vec<_>>().join(","),
        report.information_loss.metric,
        report.information_loss.value,
        args.report.display()
    );
    Ok(())
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
    fn new(p: &ReleaseProperties, elapsed_ms: f64) -> Self {
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
    fn new(args: &AnonymizeArgs, file: &FileConfig, r: &ppc::PpcReport, elapsed_ms: f64, check: CheckReport) -> Self {
        let risk = |m: &RiskMeasures| RiskReport {
            records: m.records,
            classes: m.classes,
            prosecutor: attacker(&m.prosecutor),
            journalist: attacker(&m.journalist),
            marketer: m.marketer,
        };
        let per_attribute = r.generalization.iter().zip(&r.loss.per_attribute).map(|(g, v)| (g.column.clone(), serde_json::json!(v))).collect();
        Report {
            input: args.input.display().to_string(),
            output: args.output.display().to_string(),
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
struct FileConfig {
    #[serde(default = "comma")]
    separator: String,
    #[serde(default = "semicolon")]
    hierarchy_separator: String,
    #[serde(default)]
    suppression_limit: f64,
    #[serde(default = "loss")]
    metric: String,
    #[serde(default = "optimal")]
    strategy: String,
    #[serde(default = "remove")]
    suppressed_rows: String,
    #[serde(default = "threshold")]
    risk_threshold: f64,
    privacy: PrivacyFile,
    attributes: Vec<AttributeFile>,
    #[serde(default)]
    date_shift: Option<DateShiftFile>,
    #[serde(default)]
    outliers: Vec<OutlierFile>,
    #[serde(default)]
    rare_values: Vec<RareValueFile>,
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
struct PrivacyFile {
    k: u32,
    #[serde(default)]
    l_diversity: Vec<LDiversityFile>,
    #[serde(default)]
    t_closeness: Vec<TClosenessFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LDiversityFile {
    attribute: String,
    variant: String,
    l: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TClosenessFile {
    attribute: String,
    t: f64,
    distance: String,
    #[serde(default)]
    hierarchy: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributeFile {
    column: String,
    role: String,
    #[serde(default)]
    hierarchy: Option<HierarchyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum HierarchyFile {
    Path(PathBuf),
    Builtin(BuiltinFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
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
struct DateShiftFile {
    person_column: String,
    date_columns: Vec<String>,
    max_days: u32,
    #[serde(default)]
    key_env: Option<String>,
    #[serde(default)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutlierFile {
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
struct RareValueFile {
    column: String,
    min_count: u32,
    replacement: String,
}

impl FileConfig {
    /// The engine's configuration and the date-shift key, reading files relative to `base`.
    fn resolve(&self, base: &Path) -> Result<(PpcConfig, Option<Vec<u8>>)> {
        let hsep = single_byte(&self.hierarchy_separator, "hierarchy_separator")? as char;
        let read_hierarchy = |path: &Path| -> Result<Hierarchy> {
            let full = base.join(path);
            let text = std::fs::read_to_string(&full).with_context(|| format!("reading hierarchy {}", full.display()))?;
            Hierarchy::parse(&text, hsep).with_context(|| format!("in hierarchy {}", full.display()))
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
                key = Some(match (&d.key_env, &d.key_file) {
                    (Some(var), None) => {
                        std::env::var(var).with_context(|| format!("date-shift key: environment variable {var} is not set"))?.into_bytes()
                    }
                    (None, Some(path)) => {
                        let full = base.join(path);
                        let bytes = std::fs::read(&full).with_context(|| format!("reading date-shift key {}", full.display()))?;
                        bytes.trim_ascii().to_vec()
                    }
                    _ => bail!("date_shift needs exactly one of key_env and key_file"),
                });
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

fn single_byte(s: &str, name: &str) -> Result<u8> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("{name} must be one ASCII character, got {s:?}"),
    }
}

fn read_csv(path: &Path, separator: u8) -> Result<Table> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(separator).has_headers(true).from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let header: Vec<String> =
        reader.headers().with_context(|| format!("reading the header of {}", path.display()))?.iter().map(str::to_owned).collect();
    let mut builder = niji_anon::TableBuilder::new(&header).with_context(|| format!("header of {}", path.display()))?;
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: record {}", path.display(), i + 1))?;
        let values: Vec<&str> = record.iter().collect();
        builder.push_row(&values).with_context(|| format!("{}: record {}", path.display(), i + 1))?;
    }
    Ok(builder.finish())
}

fn write_csv(path: &Path, table: &Table, separator: u8) -> Result<()> {
    let mut writer = csv::WriterBuilder::new().delimiter(separator).from_path(path).with_context(|| format!("creating {}", path.display()))?;
    writer.write_record(table.header())?;
    for r in 0..table.num_rows() {
        writer.write_record(table.row(r))?;
    }
    writer.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adult_dir() -> Option<PathBuf> {
        Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(|d| d.join("shared/datasets/adult")).find(|d| d.join("adult.csv").is_file())
    }

    fn examples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(|d| d.join("examples/adult")).find(|d| d.join("config.toml").is_file()).unwrap()
    }

    #[test]
    fn adult_example_configs_reproduce_arx() {
        let data = adult_dir().expect("shared/datasets/adult beside the repository");
        let dir = std::env::temp_dir().join(format!("niji-anonymize-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (config, levels, loss, out_rows) in [
            ("config.toml", [4, 3, 2, 2, 1, 0, 0, 0], "0.542", 30162),
            ("config-suppression-5.toml", [3, 2, 0, 1, 0, 0, 0, 1], "0.170", 30162 - 1346),
        ] {
            let args = AnonymizeArgs {
                config: examples_dir().join(config),
                input: data.join("adult.csv"),
                output: dir.join("out.csv"),
                report: dir.join("report.json"),
            };
            run(args).unwrap();
            let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
            let got: Vec<u64> = report["generalization"].as_array().unwrap().iter().map(|g| g["level"].as_u64().unwrap()).collect();
            assert_eq!(got, levels);
            assert_eq!(format!("{:.3}", report["information_loss"]["value"].as_f64().unwrap()), loss);
            assert_eq!(report["records_out"], out_rows);
            assert_eq!(report["search"]["nodes"], 4320);
            assert!(report["risk_after"]["prosecutor"]["highest"].as_f64().unwrap() <= 0.2);
            assert_eq!(report["check"]["k"], 5);
            let out = read_csv(&dir.join("out.csv"), b';').unwrap();
            assert_eq!(out.num_rows(), out_rows);
            assert_eq!(
                out.header(),
                ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation", "salary-class"]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn configuration_errors_are_explained() {
        let check = |toml_text: &str, expected: &str| {
            let err = toml::from_str::<FileConfig>(toml_text).map_err(anyhow::Error::from).and_then(|f| f.resolve(Path::new(".")).map(|_| ()));
            let message = format!("{:#}", err.unwrap_err());
            assert!(message.contains(expected), "{message} should contain {expected}");
        };
        check("[privacy]\nk = 2\n[[attributes]]\ncolumn = \"a\"\nrole = \"quasi-identifier\"\n", "needs a hierarchy");
        check("[privacy]\nk = 2\n[[attributes]]\ncolumn = \"a\"\nrole = \"boss\"\n", "unknown role");
        check("metric = \"size\"\nattributes = []\n[privacy]\nk = 2\n", "unknown metric");
        check("attributes = []\n[privacy]\nk = 2\nl_diversity = [{ attribute = \"s\", variant = \"recursive\", l = 2 }]\n", "needs c");
        check("colour = 1\nattributes = []\n[privacy]\nk = 2\n", "unknown field");
    }
}
