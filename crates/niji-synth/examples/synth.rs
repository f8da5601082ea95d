//! Generates a synthetic population and prints the summary:
//! `cargo run --release -p niji-synth --example synth -- <out_dir> [persons] [formats]`
//! where formats is `all` (default), `bulk`, or a comma list of `bundles,ndjson,uke,csv`.

use niji_synth::{generate, Formats, SynthConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: synth <out_dir> [persons] [all|bulk|bundles,ndjson,uke,csv]")?;
    let persons = args.next().map(|p| p.parse()).transpose()?.unwrap_or(10_000);
    let mut config = SynthConfig::new(out, persons);
    config.formats = match args.next().as_deref() {
        None | Some("all") => Formats::ALL,
        Some("bulk") => Formats::BULK,
        Some(list) => Formats {
            fhir_bundles: list.contains("bundles"),
            fhir_ndjson: list.contains("ndjson"),
            uke: list.contains("uke"),
            registry_csv: list.contains("csv"),
        },
    };
    if let Ok(threads) = std::env::var("NIJI_SYNTH_THREADS") {
        config.threads = threads.parse()?;
    }
    let summary = generate(&config, &mut |p| {
        eprintln!("{} / {} persons, {} MB", p.persons_done, p.persons_total, p.bytes_written >> 20);
    })?;
    println!("{summary:#?}");
    println!("{:.0} persons/s", summary.persons_per_second());
    Ok(())
}
