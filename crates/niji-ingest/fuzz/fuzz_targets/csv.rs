#![no_main]
//! CSV rows under a mapping with a free-text column: quoted cells spanning lines, open quotes,
//! the line limit (kept small so that fuzzing reaches it), UTF-8 and Shift_JIS.
use libfuzzer_sys::fuzz_target;
use niji_ingest::{csv_map, CsvMapping, Date, IngestConfig};

const MAPPING: &str = include_str!("../../tests/fixtures/note-mapping.toml");

fuzz_target!(|data: &[u8]| {
    let mut config = IngestConfig::new(Date::new(2026, 1, 1).unwrap());
    config.max_line_bytes = 256;
    for encoding in ["", "encoding = \"shift_jis\"\n"] {
        let mapping = CsvMapping::from_toml(&format!("{encoding}{MAPPING}")).unwrap();
        let _ = csv_map::ingest_csv("f.csv", data, &mapping, &config, &mut |_| {});
    }
});
