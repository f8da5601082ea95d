//! A synthetic population ingested into identity records with a record reference and their true
//! person, through niji-testkit (the same loader niji-privacy's evaluation uses).

#![allow(dead_code)]

use std::path::Path;

use niji_privacy::LinkRecord;

pub struct Rec {
    pub record_ref: String,
    pub link: LinkRecord,
    pub person: u64,
}

pub fn generate(dir: &Path, persons: u64) {
    niji_testkit::generate(dir, persons, niji_synth::Formats::ALL, 1);
}

/// Patients of FHIR Bundles and NDJSON, UKE claims with their payer records, registry persons.
pub fn ingest(dir: &Path) -> Vec<Rec> {
    let data = niji_testkit::ingest(dir, 0, niji_testkit::HolderScope::Hospital);
    data.records.into_iter().zip(data.record_refs).zip(data.truth).map(|((link, record_ref), person)| Rec { record_ref, link, person }).collect()
}

pub use niji_testkit::all_files;
