#![no_main]
use libfuzzer_sys::fuzz_target;
use niji_ingest::{uke, Date, IngestConfig};

fuzz_target!(|data: &[u8]| {
    let config = IngestConfig::new(Date::new(2026, 1, 1).unwrap());
    let _ = uke::ingest_uke("f.UKE", data, &config, &mut |_| {});
});
