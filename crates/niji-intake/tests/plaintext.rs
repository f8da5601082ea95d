//! No byte of an input's names, kana names, phone numbers, addresses, insurance numbers or
//! free-text comments appears in plaintext anywhere in the instance folder — lake, metadata
//! database, vault, transparency log, keys — scanned over the raw bytes of every file, in UTF-8
//! and Shift_JIS, after ingesting synthetic data (FHIR Bundles, NDJSON, UKE, the registry CSV),
//! every CLINS example and the UKE sample.

use std::path::{Path, PathBuf};

use niji_ingest::{ingest_path, CsvMapping, IdentifierKind, IngestConfig};
use niji_intake::OnReject;
use niji_testkit::plaintext::{scan_folder, truth_needles, Patterns};

mod common;
use common::*;

/// Identity items whose values must not appear in the clear. Left out on purpose: `BirthDate`
/// and `Sex` (dates and codes are not names: a birth date is a plain date that also appears as
/// content, e.g. as a claim's or a diagnosis's date, and would match by chance), and
/// `RecordIdentifier` and `SubjectReference` (the holder's resource ids and references such as
/// `Patient/…` or `urn:uuid:…` are references, not names; the lake keeps the record's location).
/// `BranchNumber` (枝番, two digits) is below the patterns' 6 bytes anyway.
const SECRET_KINDS: &[IdentifierKind] = &[
    IdentifierKind::NameKanji,
    IdentifierKind::NameKana,
    IdentifierKind::InsurerNumber,
    IdentifierKind::InsuredSymbol,
    IdentifierKind::InsuredNumber,
    IdentifierKind::PatientId,
    IdentifierKind::MyNumber,
    IdentifierKind::Phone,
    IdentifierKind::Address,
    IdentifierKind::PostalCode,
    IdentifierKind::FreeText,
    IdentifierKind::Narrative,
    IdentifierKind::MemberId,
    IdentifierKind::PublicExpenseRecipient,
    IdentifierKind::OtherPartyIdentifier,
];

/// Every identity value of a secret kind that the parsers extract from `file`, with the
/// intake's configuration and with the CLINS rules relaxed (so that records the strict rules
/// reject still give their values).
fn extracted_needles(file: &Path, mapping: Option<&CsvMapping>, out: &mut Vec<String>) {
    let strict = options().ingest;
    let mut lenient: IngestConfig = options().ingest;
    lenient.clins_strict = false;
    for config in [&strict, &lenient] {
        ingest_path(file, config, mapping, &mut |r| {
            out.extend(r.identity.items.into_iter().filter(|i| SECRET_KINDS.contains(&i.kind)).map(|i| i.value));
        })
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identifying_value_in_the_clear_anywhere_in_the_instance_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("instance");
    let instance = instance(&root).await;
    instance.store.create_organization("registry", "registry", 0).await.unwrap();
    let (a, b) = hospitals();
    let shared = PathBuf::from(SHARED);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../niji-ingest/tests/fixtures");
    let persons_map = CsvMapping::from_toml(&std::fs::read_to_string(fixtures.join("synth_persons.toml")).unwrap()).unwrap();

    let clins: Vec<PathBuf> = files_under(&shared.join("clins")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    let uke_sample: Vec<PathBuf> =
        files_under(&shared.join("uke")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "UKE" || e == "uke")).collect();
    assert!(clins.len() >= 60 && uke_sample.len() == 1, "{} CLINS files, {} UKE samples", clins.len(), uke_sample.len());
    let synthetic = [
        ("hospital-a", "hospital-a-ehr", files_under(&synth().join("fhir").join(&a)), None),
        ("hospital-b", "hospital-b-ehr", files_under(&synth().join("ndjson").join(&b)), None),
        ("insurer", "insurer-claims", files_under(&synth().join("uke")), None),
        ("registry", "registry-persons", vec![synth().join("csv/persons.csv")], Some(&persons_map)),
    ];

    // Needles: the ground truth's values and every secret value the parsers extract from the
    // submitted files.
    let mut needles = truth_needles(synth());
    let truth_count = needles.len();
    for (_, _, files, mapping) in &synthetic {
        for f in files {
            extracted_needles(f, *mapping, &mut needles);
        }
    }
    for f in clins.iter().chain(&uke_sample) {
        extracted_needles(f, None, &mut needles);
    }
    needles.retain(|s| !s.trim().is_empty());
    needles.sort();
    needles.dedup();
    let pats = Patterns::new(&needles);
    assert!(needles.len() > truth_count, "the parsers add values to the ground truth's");

    // Control: the needles are in the raw input files, so that a leak would be found.
    let count = |files: &[PathBuf]| {
        let (mut all, mut sjis) = (0usize, 0usize);
        for f in files {
            let hits = pats.find_hits(&std::fs::read(f).unwrap());
            all += hits.len();
            sjis += hits.iter().filter(|h| h.shift_jis).count();
        }
        (all, sjis)
    };
    let synthetic_files: Vec<PathBuf> = synthetic.iter().flat_map(|s| s.2.iter().cloned()).collect();
    let (synth_hits, synth_sjis) = count(&synthetic_files);
    let (clins_hits, _) = count(&clins);
    let (uke_hits, uke_sjis) = count(&uke_sample);
    println!(
        "control: {synth_hits} hits in {} synthetic files ({synth_sjis} Shift_JIS), {clins_hits} in {} CLINS files, {uke_hits} in the UKE sample ({uke_sjis} Shift_JIS)",
        synthetic_files.len(),
        clins.len()
    );
    assert!(synth_hits > 10_000, "{synth_hits} hits in the synthetic input");
    assert!(synth_sjis > 1_000, "{synth_sjis} Shift_JIS hits in the synthetic UKE files");
    assert!(clins_hits > 100, "{clins_hits} hits in the CLINS examples");
    assert!(uke_sjis >= 1, "{uke_sjis} Shift_JIS hits in the UKE sample");

    // Ingest everything into one instance.
    for (holder, dataset, files, mapping) in &synthetic {
        let mut s = submission(holder, dataset, files.clone(), OnReject::RefuseSubmission);
        s.csv_mapping = mapping.cloned();
        let report = committed(&instance, s).await;
        assert!(report.records_accepted > 0 && report.records_quarantined == 0, "{dataset}: {}", report.records_accepted);
    }
    let clins_report = committed(&instance, submission("hospital-a", "clins-examples", clins.clone(), OnReject::Quarantine)).await;
    let uke_report = committed(&instance, submission("insurer", "uke-sample", uke_sample.clone(), OnReject::Quarantine)).await;
    assert!(clins_report.records_accepted > 0 && uke_report.records_accepted > 0);
    println!(
        "CLINS: {} records accepted, {} quarantined; UKE sample: {} accepted, {} quarantined",
        clins_report.records_accepted, clins_report.records_quarantined, uke_report.records_accepted, uke_report.records_quarantined
    );

    // The folder holds every part of the instance.
    let files = files_under(&root);
    let has = |p: &Path| files.iter().any(|f| f.starts_with(p));
    assert!(has(&instance.paths.lake()) && has(&instance.paths.vault()) && has(&instance.paths.log()) && has(&instance.paths.keys()));
    assert!(files.contains(&instance.paths.metadata_db()));
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")), "no Parquet file in the lake");
    // The metadata store's WAL normally exists while it is open (its content is scanned with
    // the rest); SQLite may remove it when a pool closes its last connection, so it is noted,
    // not required.
    let wal = files.iter().any(|f| f.to_string_lossy().ends_with("-wal"));
    println!("a -wal file is among the scanned files: {wal}");

    // While open (the SQLite files' last writes in their WAL), then closed.
    let open = scan_folder(&root, &pats);
    instance.store.close().await;
    drop(instance);
    let closed = scan_folder(&root, &pats);
    assert!(open.files >= 10 && closed.files >= 10, "{open:?} {closed:?}");
    println!(
        "plaintext scan: {} files, {} bytes while open; {} files, {} bytes closed; {} needles ({} byte patterns, {} of them Shift_JIS); control hits {} (UKE sample Shift_JIS {uke_sjis})",
        open.files,
        open.bytes,
        closed.files,
        closed.bytes,
        needles.len(),
        pats.len(),
        pats.shift_jis_len(),
        synth_hits + clins_hits + uke_hits,
    );
}
