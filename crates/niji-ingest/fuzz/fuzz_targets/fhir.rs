#![no_main]
use libfuzzer_sys::fuzz_target;
use niji_ingest::{fhir, Date, IngestConfig};

fuzz_target!(|data: &[u8]| {
    let config = IngestConfig::new(Date::new(2026, 1, 1).unwrap());
    let _ = fhir::ingest_json("f.json", data, &config, &mut |_| {});
    let _ = fhir::ingest_ndjson("f.ndjson", data, &config, &mut |_| {});
});
