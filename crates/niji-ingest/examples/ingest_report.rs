//! Prints the report of each file given: `cargo run -p niji-ingest --example ingest_report --
//! [--mapping MAP.toml] [--lenient] FILE...` (`--lenient` turns CLINS-only rules off).

use std::path::PathBuf;

use niji_ingest::{ingest_path, CsvMapping, Date, IngestConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mapping = None;
    let mut files = Vec::new();
    let mut config = IngestConfig::new(Date::new(2026, 11, 21).unwrap());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mapping" => mapping = Some(CsvMapping::from_toml(&std::fs::read_to_string(args.next().expect("mapping file")).unwrap()).unwrap()),
            "--lenient" => config.clins_strict = false,
            _ => files.push(PathBuf::from(a)),
        }
    }
    for f in files {
        let mut identity_items = 0usize;
        match ingest_path(&f, &config, mapping.as_ref(), &mut |r| identity_items += r.identity.items.len()) {
            Ok(report) => {
                let accepted: Vec<String> = report.accepted.iter().map(|(k, n)| format!("{k}={n}")).collect();
                println!(
                    "{}: accepted {} skipped {} rejected {} identity items {identity_items}",
                    report.file,
                    accepted.join(" "),
                    report.skipped,
                    report.rejected_records
                );
                for l in report.rejected_lines() {
                    println!("  reject  {l}");
                }
                for l in report.warning_lines() {
                    println!("  warning {l}");
                }
            }
            Err(e) => println!("{}: {e}", f.display()),
        }
    }
}
