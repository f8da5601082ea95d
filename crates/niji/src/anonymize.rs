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
//! population = "population.csv"  # optional: the identification table the journalist and
//!                            # marketer risks are measured against (else the data is its own)
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

use anyhow::{Context, Result};
use niji_anon::ppc;
use niji_anon::{check_release, GroundDistance, LDiversityVariant, SensitiveSpec, Table};
use niji_anon_config::{single_byte, CheckReport, FileConfig, FileSource, Report};
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
    let file: FileConfig = niji_anon_config::parse(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let base = args.config.parent().map(Path::to_path_buf).unwrap_or_default();
    let separator = single_byte(&file.separator, "separator")?;
    let table = read_csv(&args.input, separator)?;
    let (config, key) = file.resolve(&Files { base }).with_context(|| format!("in {}", args.config.display()))?;

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
    let report = Report::new(args.input.display().to_string(), args.output.display().to_string(), &file, &outcome.report, elapsed_ms, check);
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

/// Hierarchy files relative to the configuration's folder; the date-shift key from the
/// environment or a file.
struct Files {
    base: PathBuf,
}

impl FileSource for Files {
    fn hierarchy(&self, path: &Path) -> Result<String, String> {
        let full = self.base.join(path);
        std::fs::read_to_string(&full).map_err(|e| format!("reading hierarchy {}: {e}", full.display()))
    }

    fn date_shift_key(&self, env: Option<&str>, file: Option<&Path>) -> Result<Vec<u8>, String> {
        match (env, file) {
            (Some(var), None) => {
                std::env::var(var).map(String::into_bytes).map_err(|_| format!("date-shift key: environment variable {var} is not set"))
            }
            (None, Some(path)) => {
                let full = self.base.join(path);
                std::fs::read(&full).map(|b| b.trim_ascii().to_vec()).map_err(|e| format!("reading date-shift key {}: {e}", full.display()))
            }
            _ => Err("date_shift needs exactly one of key_env and key_file".into()),
        }
    }

    fn population(&self, path: &Path) -> Result<Vec<u8>, String> {
        let full = self.base.join(path);
        std::fs::read(&full).map_err(|e| format!("reading population table {}: {e}", full.display()))
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
    fn a_population_table_lowers_the_journalist_risk_below_the_prosecutor_risk() {
        let data = adult_dir().expect("shared/datasets/adult beside the repository");
        let dir = std::env::temp_dir().join(format!("niji-anonymize-population-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The population: every Adult record three times (as if the sample were a third of it).
        let text = std::fs::read_to_string(data.join("adult.csv")).unwrap();
        let mut lines = text.lines();
        let mut population = format!("{}\n", lines.next().unwrap());
        for line in lines {
            for _ in 0..3 {
                population.push_str(line);
                population.push('\n');
            }
        }
        std::fs::write(dir.join("population.csv"), population).unwrap();
        let config = std::fs::read_to_string(examples_dir().join("config.toml")).unwrap();
        let config = config.replace("../../../shared/datasets/adult/", &format!("{}/", data.display()));
        let config = config.replacen("[privacy]", &format!("population = \"{}\"\n[privacy]", dir.join("population.csv").display()), 1);
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let args = AnonymizeArgs {
            config: dir.join("config.toml"),
            input: data.join("adult.csv"),
            output: dir.join("out.csv"),
            report: dir.join("report.json"),
        };
        run(args).unwrap();
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
        let (p, j) = (&report["risk_after"]["prosecutor"]["highest"], &report["risk_after"]["journalist"]["highest"]);
        assert!((j.as_f64().unwrap() - p.as_f64().unwrap() / 3.0).abs() < 1e-9, "{p} {j}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn configuration_errors_are_explained() {
        let check = |toml_text: &str, expected: &str| {
            let err = niji_anon_config::parse(toml_text)
                .map_err(anyhow::Error::from)
                .and_then(|f| f.resolve(&Files { base: PathBuf::from(".") }).map(|_| ()).map_err(anyhow::Error::from));
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
