//! Deterministic synthetic Japanese health data in the formats data holders hand in, with
//! the ground truth a linkage or de-identification step is measured against.
//!
//! [`generate`] draws a population like Japan's (sex and birth dates after the census age
//! pyramid, names in kanji and katakana, addresses with JIS X 0401/0402 codes, towns and
//! postal codes, phones; health insurance with valid 保険者番号 and 記号・番号・枝番 that change
//! as people change jobs or turn 75; public aid; marriages; deaths), gives its people the
//! diseases of their age and sex, follows their care at a set of hospitals through one or
//! more calendar years, and writes what the hospitals and a 学会 registry would hold:
//!
//! | format | files | module |
//! |---|---|---|
//! | CLINS FHIR `Bundle` (collection) per patient and hospital | `fhir/<医療機関コード>/<uuid>.json` | `fhir` |
//! | FHIR Bulk Data NDJSON, one file per resource type | `ndjson/<医療機関コード>/<Type>.ndjson` | `fhir` |
//! | レセプト電算 (UKE), Shift_JIS + CRLF, per hospital and month of care | `uke/<医療機関コード>/<YYYYMM>.UKE` | `uke` |
//! | registry CSV (UTF-8) | `csv/persons.csv`, `csv/events.csv` | `registry` |
//!
//! and the ground truth in `truth/`:
//! - `records.csv` (`source,file,record_id,line,person`): one row per source record that
//!   identifies a person: each Bundle file (record_id = Patient id), each NDJSON Patient
//!   line, each UKE claim (record_id = レセプト番号, line = its RE line) and each registry
//!   row (line = CSV line), with the index of the true person;
//! - `insurance_history.csv` (`person,from_date,insurer_number,kigo,bango,edaban`);
//! - `persons.csv`: each person's own identity (name as registered, 異体字 included;
//!   married surname and date; address with codes; phones; death), and whether they are
//!   the twin or the namesake of another person.
//!
//! Every source record passes through the `noise` module: each holder's system has its
//! habits (separator between surname and given name, half-width kana, whether 異体字 are
//! kept, 和暦 birth dates, full-width digits) and single records have slips (kana typos),
//! so the same person differs across holders; twins and namesakes (same name, birth date
//! and sex) make different people look alike.
//!
//! Invariants:
//! - Deterministic: a person is a pure function of (seed, index): ChaCha8 generators keyed
//!   by both, one stream per aspect (`random` module). Chunks of people are rendered on
//!   worker threads and written in chunk order, so a configuration gives byte-identical
//!   files whatever the number of threads.
//! - Streaming: people are generated chunk by chunk and dropped once written; the many
//!   per-hospital files go through bounded buffers and a bounded set of open files, so
//!   memory does not grow with the number of people (under 200 MB with 2 workers, as
//!   measured for 400,000 people).
//! - Reference data (names, places, diseases, drugs, labs, procedures) comes from the
//!   tables in `data/`, compiled in and parsed once ([`Tables`]).
//!
//! Cost: each person yields about 18 KB in the bulk formats for the default one-year
//! period (most of it FHIR NDJSON); the per-patient Bundle files add one file per patient
//! and hospital, and file creation then dominates. [`Formats::BULK`] leaves them out.

mod calendar;
mod clinical;
mod fhir;
mod kana;
mod noise;
mod output;
mod person;
mod random;
mod registry;
mod sjis;
pub mod tables;
mod text;
mod uke;
mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use tables::{TableError, TableSources, Tables};

use output::{ChunkOutput, Sink};
use person::{IdentityKind, Person};
use random::{person_rng, Aspect};
use world::{Period, World};

/// Which formats to write. The ground truth is always written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// One CLINS `Bundle` file per patient and hospital (many small files: the slowest).
    pub fhir_bundles: bool,
    /// FHIR Bulk Data NDJSON, one file per resource type and hospital.
    pub fhir_ndjson: bool,
    /// レセプト電算 claims, one file per hospital and month.
    pub uke: bool,
    /// The 学会 registry's `persons.csv` and `events.csv`.
    pub registry_csv: bool,
}

impl Formats {
    pub const ALL: Formats = Formats { fhir_bundles: true, fhir_ndjson: true, uke: true, registry_csv: true };
    /// Everything but the per-patient Bundle files: the choice for large runs.
    pub const BULK: Formats = Formats { fhir_bundles: false, fhir_ndjson: true, uke: true, registry_csv: true };
}

impl Default for Formats {
    fn default() -> Self {
        Formats::ALL
    }
}

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Number of people (1,000 to 10,000,000 are the sizes the generator is built for).
    pub persons: u64,
    /// The same seed and configuration give byte-identical output.
    pub seed: u64,
    /// Output folder; its `fhir`, `ndjson`, `uke`, `csv` and `truth` subfolders must be
    /// absent or empty.
    pub out_dir: PathBuf,
    /// Which formats to write ([`Formats::BULK`] leaves out the per-patient Bundle files).
    pub formats: Formats,
    /// Number of hospitals holding data.
    pub hospitals: u32,
    /// Number of employers' insurers (健保組合 and 共済); 協会けんぽ, 国保 and 後期高齢者
    /// insurers exist in every world.
    pub insurers: u32,
    /// First and last calendar year of the observation period (inclusive).
    pub start_year: i32,
    pub end_year: i32,
    /// Share of people's care that happens at the world's hospitals (the rest at clinics
    /// that hand in nothing).
    pub hospital_share: f64,
    /// Disease keys (`diseases.tsv`) whose patients the 学会 registry enrols.
    pub registry_diseases: Vec<String>,
    /// Worker threads rendering records; 0 means one per available core.
    pub threads: usize,
    /// Call the progress callback after about this many people (people are written in
    /// chunks of 1,024, so reports come at chunk boundaries).
    pub progress_every: u64,
}

impl SynthConfig {
    /// Defaults for `persons` people written to `out_dir`: seed 1, all formats, 20
    /// hospitals, 200 employers' insurers, observation period 2024, a quarter of care at
    /// the world's hospitals (about the hospitals' share of outpatient visits in Japan),
    /// a diabetes registry.
    pub fn new(out_dir: impl Into<PathBuf>, persons: u64) -> Self {
        Self {
            persons,
            seed: 1,
            out_dir: out_dir.into(),
            formats: Formats::ALL,
            hospitals: 20,
            insurers: 200,
            start_year: 2024,
            end_year: 2024,
            hospital_share: 0.25,
            registry_diseases: vec!["t2dm".to_string()],
            threads: 0,
            progress_every: 10_000,
        }
    }

    fn validate(&self, tables: &Tables) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Config(m));
        if self.hospitals == 0 || self.hospitals > 10_000 {
            return bad(format!("hospitals must be 1-10000, found {}", self.hospitals));
        }
        if self.insurers > 20_000 {
            return bad(format!("insurers must be at most 20000, found {}", self.insurers));
        }
        if !(1950..=2100).contains(&self.start_year) || self.end_year < self.start_year || self.end_year - self.start_year >= 30 {
            return bad(format!("observation period {}-{} must be 1-30 years from 1950", self.start_year, self.end_year));
        }
        if !(0.0..=1.0).contains(&self.hospital_share) {
            return bad(format!("hospital_share must be between 0 and 1, found {}", self.hospital_share));
        }
        if let Some(k) = self.registry_diseases.iter().find(|k| tables.disease(k).is_none()) {
            return bad(format!("registry disease {k:?} is not in diseases.tsv"));
        }
        Ok(())
    }
}

/// Reported during a run, after each chunk of people that crosses a multiple of
/// [`SynthConfig::progress_every`], and at the end.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub persons_done: u64,
    pub persons_total: u64,
    /// Bytes handed to files so far (some may still sit in buffers).
    pub bytes_written: u64,
    pub elapsed: Duration,
}

/// Records written, by format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Patients, counted once per hospital they attended.
    pub patients: u64,
    /// Bundle files (one per patient and hospital).
    pub fhir_bundles: u64,
    /// Resources inside the Bundles, the hospital's Organization included.
    pub fhir_bundle_resources: u64,
    /// NDJSON lines, one Organization per hospital included.
    pub ndjson_resources: u64,
    /// UKE claims (RE records).
    pub uke_claims: u64,
    /// Rows of the registry's `persons.csv`.
    pub registry_persons: u64,
    /// Rows of the registry's `events.csv`.
    pub registry_events: u64,
    /// Rows of `truth/records.csv`.
    pub truth_records: u64,
    /// Rows of `truth/insurance_history.csv`.
    pub insurance_periods: u64,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct SynthSummary {
    pub persons: u64,
    /// Deaths during the observation period.
    pub deaths: u64,
    /// Changes of insurer during the observation period (jobs, 75th birthdays, marriages).
    pub insurance_changes: u64,
    /// People who are the second of a pair of twins.
    pub twins: u64,
    /// People who share name, birth date and sex with an earlier person by coincidence.
    pub namesakes: u64,
    pub records: RecordCounts,
    /// Files written, ground truth included.
    pub files: u64,
    /// Bytes written, ground truth included.
    pub bytes: u64,
    pub elapsed: Duration,
}

impl SynthSummary {
    pub fn persons_per_second(&self) -> f64 {
        self.persons as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("reference table {0}")]
    Table(#[from] TableError),
    #[error("output folder {0} is not empty; remove it or choose another out_dir")]
    OutputNotEmpty(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a worker thread panicked")]
    Worker,
}

/// People per chunk: the unit of parallel work and of ordered writing.
const CHUNK: u64 = 1024;

/// Generates `config.persons` people and writes their records; see the crate docs.
pub fn generate(config: &SynthConfig, progress: &mut dyn FnMut(Progress)) -> Result<SynthSummary, SynthError> {
    let started = Instant::now();
    let tables = Tables::embedded()?;
    config.validate(tables)?;
    let period = Period::new(config.start_year, config.end_year);
    let registry_diseases = config.registry_diseases.iter().filter_map(|k| tables.disease(k)).collect();
    let world = World::new(tables, config.seed, period, config.hospitals, config.insurers, config.hospital_share, registry_diseases);
    let mut sink = Sink::create(&config.out_dir, config.formats, &world)?;

    let chunks = config.persons.div_ceil(CHUNK);
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .clamp(1, 64);
    // Workers take chunks in order but may run at most `window` chunks ahead of the writer.
    let window = threads as u64 * 2;
    let next = AtomicU64::new(0);
    let written = (Mutex::new(0u64), Condvar::new());
    let stop = AtomicBool::new(false);
    let renderer = Renderer::new(&world, config);
    let (tx, rx) = mpsc::sync_channel::<(u64, Result<ChunkOutput, SynthError>)>(threads * 2);

    let every = config.progress_every.max(1);
    let result = std::thread::scope(|scope| -> Result<(), SynthError> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, written, stop, renderer) = (&next, &written, &stop, &renderer);
            scope.spawn(move || loop {
                let chunk = next.fetch_add(1, Ordering::SeqCst);
                if chunk >= chunks || stop.load(Ordering::SeqCst) {
                    break;
                }
                {
                    let (lock, cvar) = written;
                    let mut done = lock.lock().expect("lock");
                    while chunk >= *done + window && !stop.load(Ordering::SeqCst) {
                        done = cvar.wait(done).expect("lock");
                    }
                }
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| renderer.chunk(chunk))).unwrap_or(Err(SynthError::Worker));
                if tx.send((chunk, out)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut expected = 0u64;
        let mut last_report = 0u64;
        let abort = |e: SynthError| {
            stop.store(true, Ordering::SeqCst);
            written.1.notify_all();
            Err(e)
        };
        // Owning the receiver here means an early return drops it, which stops the workers.
        for (chunk, out) in rx {
            match out {
                Ok(out) => {
                    pending.insert(chunk, out);
                }
                Err(e) => return abort(e),
            }
            while let Some(out) = pending.remove(&expected) {
                if let Err(e) = sink.append(&out, &world) {
                    return abort(e);
                }
                renderer.spare.lock().expect("lock").push(out);
                expected += 1;
                {
                    let (lock, cvar) = &written;
                    *lock.lock().expect("lock") = expected;
                    cvar.notify_all();
                }
                let done = (expected * CHUNK).min(config.persons);
                if done / every > last_report / every || done == config.persons {
                    last_report = done;
                    progress(Progress { persons_done: done, persons_total: config.persons, bytes_written: sink.bytes(), elapsed: started.elapsed() });
                }
            }
        }
        if expected < chunks {
            return Err(SynthError::Worker);
        }
        Ok(())
    });
    result?;

    let counts = sink.counts;
    let uke_claims = sink.uke_claims;
    let truth_records = sink.truth_records;
    let (files, bytes, registry_persons) = sink.finish()?;
    Ok(SynthSummary {
        persons: config.persons,
        deaths: counts.deaths,
        insurance_changes: counts.insurance_changes,
        twins: counts.twins,
        namesakes: counts.namesakes,
        records: RecordCounts {
            patients: counts.patients,
            fhir_bundles: counts.bundle_files,
            fhir_bundle_resources: counts.bundle_resources,
            ndjson_resources: counts.ndjson_resources,
            uke_claims,
            registry_persons,
            registry_events: counts.registry_events,
            truth_records,
            insurance_periods: counts.insurance_periods,
        },
        files,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Renders chunks of people; shared by the worker threads.
struct Renderer<'w, 't> {
    world: &'w World<'t>,
    formats: Formats,
    persons: u64,
    out_dir: PathBuf,
    procedures: uke::Procedures,
    /// Written chunks handed back for reuse.
    spare: Mutex<Vec<ChunkOutput>>,
}

impl<'w, 't> Renderer<'w, 't> {
    fn new(world: &'w World<'t>, config: &SynthConfig) -> Self {
        Self {
            world,
            formats: config.formats,
            persons: config.persons,
            out_dir: config.out_dir.clone(),
            procedures: uke::Procedures::new(world.tables),
            spare: Mutex::new(Vec::new()),
        }
    }

    fn chunk(&self, chunk: u64) -> Result<ChunkOutput, SynthError> {
        let world = self.world;
        let mut out = match self.spare.lock().expect("lock").pop() {
            Some(mut out) => {
                out.clear();
                out
            }
            None => ChunkOutput::new(world.hospitals.len(), world.period.months as usize),
        };
        let mut scratch = Vec::with_capacity(16 << 10);
        let first = chunk * CHUNK;
        let last = (first + CHUNK).min(self.persons);
        out.persons = last - first;
        for index in first..last {
            let person = Person::draw(world, index);
            let course = clinical::draw_course(world, &person);
            self.person(&person, &course, &mut out, &mut scratch)?;
        }
        Ok(out)
    }

    fn person(&self, person: &Person<'t>, course: &clinical::ClinicalCourse, out: &mut ChunkOutput, scratch: &mut Vec<u8>) -> Result<(), SynthError> {
        let world = self.world;
        let c = &mut out.counts;
        c.deaths += person.death.is_some_and(|d| d <= world.period.end) as u64;
        c.insurance_changes += person.insurance_changes as u64;
        match person.identity.kind {
            IdentityKind::TwinOf(_) => c.twins += 1,
            IdentityKind::NamesakeOf(_) => c.namesakes += 1,
            IdentityKind::Ordinary => {}
        }
        c.insurance_periods += person.coverages.len() as u64;
        output::push_person_truth(world, person, &mut out.persons_truth);
        output::push_insurance_history(world, person, &mut out.insurance_history);

        let mut fhir_rng = person_rng(world.seed, person.index, Aspect::Fhir);
        let mut uke_rng = person_rng(world.seed, person.index, Aspect::Uke);
        for &h in &course.hospitals {
            let visits = course.visits_at(h);
            out.counts.patients += 1;
            if self.formats.fhir_ndjson || self.formats.fhir_bundles {
                let record = fhir::PatientRecord::new(world, h, person, course, visits, &mut fhir_rng);
                if self.formats.fhir_ndjson {
                    out.counts.ndjson_resources += fhir::push_ndjson(&record, world, h, &mut out.ndjson);
                    out.ndjson_patients[h].push((person.index, record.patient_id));
                }
                if self.formats.fhir_bundles {
                    record.bundle(world, scratch);
                    let rel = format!("fhir/{}/{}.json", world.hospitals[h].code, record.bundle_id.as_str());
                    let path = self.out_dir.join(&rel);
                    std::fs::write(&path, &scratch[..]).map_err(|source| SynthError::Io { path, source })?;
                    out.counts.bundle_files += 1;
                    out.counts.bundle_bytes += scratch.len() as u64;
                    out.counts.bundle_resources += record.resource_count() + 1;
                    let row = &mut out.bundle_truth;
                    row.extend_from_slice(b"fhir_bundle,");
                    row.extend_from_slice(rel.as_bytes());
                    row.push(b',');
                    row.extend_from_slice(record.patient_id.as_bytes());
                    row.extend_from_slice(b",,");
                    text::push_u64(row, person.index);
                    row.push(b'\n');
                }
            }
            if self.formats.uke {
                uke::push_claims(world, &self.procedures, h, person, course, visits, &mut uke_rng, &mut out.uke, scratch);
            }
        }
        if self.formats.registry_csv {
            let mut rng = person_rng(world.seed, person.index, Aspect::Registry);
            registry::push_registry(world, person, course, &mut rng, out);
        }
        Ok(())
    }
}
