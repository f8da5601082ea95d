//! Where rendered records go. Workers render a chunk of people into a [`ChunkOutput`]
//! (bytes per destination file, in person order); the [`Sink`] on the main thread appends
//! chunks in chunk order, numbers what only the file knows (UKE レセプト番号 and line
//! numbers, NDJSON line numbers, CSV rows) and writes the ground truth beside them.
//!
//! Memory stays bounded whatever the number of people: the many per-hospital files
//! (NDJSON per resource type, UKE per month) are [`FilePool`] buffers of bounded size that
//! are appended to their file and cleared when full, so no more than a few files are open
//! at once; single files (CSV, truth) go through `BufWriter`s.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::calendar::{add_days, month_start, push_yyyymm};
use crate::random::Uuid;
use crate::text::push_u64;
use crate::uke;
use crate::world::World;
use crate::{Formats, SynthError};

/// FHIR resource types written to NDJSON, one file each per hospital.
pub(crate) const RESOURCE_TYPES: [&str; 7] =
    ["Patient", "Organization", "Encounter", "Condition", "Observation", "MedicationRequest", "AllergyIntolerance"];
pub(crate) const PATIENT: usize = 0;
pub(crate) const ORGANIZATION: usize = 1;
pub(crate) const ENCOUNTER: usize = 2;
pub(crate) const CONDITION: usize = 3;
pub(crate) const OBSERVATION: usize = 4;
pub(crate) const MEDICATION_REQUEST: usize = 5;
pub(crate) const ALLERGY: usize = 6;

/// Total bytes the pool may hold before it must write; split over its files.
const POOL_BUDGET: usize = 32 << 20;
/// Files kept open at once (well under the usual limit of 1,024 descriptors).
const MAX_OPEN: usize = 512;

/// UKE claims of one hospital and month within a chunk.
#[derive(Debug, Default)]
pub(crate) struct UkeBatch {
    /// Shift_JIS bytes of the claims, each starting right after `RE,<レセプト番号>,`.
    pub bytes: Vec<u8>,
    pub claims: Vec<ClaimMeta>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimMeta {
    pub len: usize,
    pub lines: u32,
    pub points: u64,
    pub person: u64,
}

/// Counts a chunk adds to the summary.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ChunkCounts {
    pub deaths: u64,
    pub insurance_changes: u64,
    pub twins: u64,
    pub namesakes: u64,
    pub patients: u64,
    pub ndjson_resources: u64,
    pub bundle_files: u64,
    pub bundle_resources: u64,
    pub bundle_bytes: u64,
    pub registry_events: u64,
    pub insurance_periods: u64,
}

/// What the workers produce for a chunk of consecutive people.
#[derive(Debug, Default)]
pub(crate) struct ChunkOutput {
    pub persons: u64,
    /// NDJSON lines by `hospital * RESOURCE_TYPES.len() + type`.
    pub ndjson: Vec<Vec<u8>>,
    /// (person, Patient id) of each Patient line, by hospital, in line order.
    pub ndjson_patients: Vec<Vec<(u64, Uuid)>>,
    /// By `hospital * months + month`.
    pub uke: Vec<UkeBatch>,
    /// Complete truth rows for the Bundle files the worker wrote itself.
    pub bundle_truth: Vec<u8>,
    pub registry_persons: Vec<u8>,
    /// (person, registry id) of each registry row, in row order.
    pub registry_ids: Vec<(u64, String)>,
    pub registry_events: Vec<u8>,
    pub insurance_history: Vec<u8>,
    pub persons_truth: Vec<u8>,
    pub counts: ChunkCounts,
}

impl ChunkOutput {
    pub(crate) fn new(hospitals: usize, months: usize) -> Self {
        Self {
            ndjson: (0..hospitals * RESOURCE_TYPES.len()).map(|_| Vec::new()).collect(),
            ndjson_patients: (0..hospitals).map(|_| Vec::new()).collect(),
            uke: (0..hospitals * months).map(|_| UkeBatch::default()).collect(),
            ..Self::default()
        }
    }

    /// Empties every buffer but keeps its memory, so that a recycled chunk costs no
    /// allocation.
    pub(crate) fn clear(&mut self) {
        self.persons = 0;
        self.ndjson.iter_mut().for_each(Vec::clear);
        self.ndjson_patients.iter_mut().for_each(Vec::clear);
        for b in &mut self.uke {
            b.bytes.clear();
            b.claims.clear();
        }
        self.bundle_truth.clear();
        self.registry_persons.clear();
        self.registry_ids.clear();
        self.registry_events.clear();
        self.insurance_history.clear();
        self.persons_truth.clear();
        self.counts = ChunkCounts::default();
    }
}

/// Many files written by appending: small appends gather in a bounded buffer per file,
/// large ones go straight to the file. Files are created (and truncated) on first write;
/// at most [`MAX_OPEN`] stay open, the least recently used being closed first.
struct FilePool {
    slots: Vec<Slot>,
    threshold: usize,
    open: Vec<(usize, File, u64)>,
    clock: u64,
}

struct Slot {
    path: PathBuf,
    buf: Vec<u8>,
    created: bool,
}

impl FilePool {
    fn new(paths: Vec<PathBuf>) -> Self {
        let threshold = (POOL_BUDGET / paths.len().max(1)).clamp(8 << 10, 256 << 10);
        Self {
            slots: paths.into_iter().map(|path| Slot { path, buf: Vec::new(), created: false }).collect(),
            threshold,
            open: Vec::with_capacity(MAX_OPEN),
            clock: 0,
        }
    }

    fn is_created(&self, slot: usize) -> bool {
        self.slots[slot].created || !self.slots[slot].buf.is_empty()
    }

    fn append(&mut self, slot: usize, data: &[u8]) -> Result<(), SynthError> {
        let s = &mut self.slots[slot];
        if s.buf.len() + data.len() < self.threshold {
            s.buf.extend_from_slice(data);
            return Ok(());
        }
        let buffered = std::mem::take(&mut self.slots[slot].buf);
        if !buffered.is_empty() {
            self.write(slot, &buffered)?;
        }
        self.slots[slot].buf = buffered;
        self.slots[slot].buf.clear();
        self.write(slot, data)
    }

    fn write(&mut self, slot: usize, data: &[u8]) -> Result<(), SynthError> {
        self.clock += 1;
        let clock = self.clock;
        let i = match self.open.iter().position(|(s, _, _)| *s == slot) {
            Some(i) => i,
            None => {
                if self.open.len() >= MAX_OPEN {
                    let lru = (0..self.open.len()).min_by_key(|&i| self.open[i].2).expect("open files");
                    self.open.swap_remove(lru);
                }
                let s = &mut self.slots[slot];
                let io = |source| SynthError::Io { path: s.path.clone(), source };
                let file = if s.created { OpenOptions::new().append(true).open(&s.path).map_err(io)? } else { File::create(&s.path).map_err(io)? };
                s.created = true;
                self.open.push((slot, file, clock));
                self.open.len() - 1
            }
        };
        let (_, file, used) = &mut self.open[i];
        *used = clock;
        file.write_all(data).map_err(|source| SynthError::Io { path: self.slots[slot].path.clone(), source })
    }

    fn flush_all(&mut self) -> Result<(), SynthError> {
        for slot in 0..self.slots.len() {
            if !self.slots[slot].buf.is_empty() {
                let buffered = std::mem::take(&mut self.slots[slot].buf);
                self.write(slot, &buffered)?;
            }
        }
        self.open.clear();
        Ok(())
    }

    fn files(&self) -> u64 {
        self.slots.iter().filter(|s| s.created).count() as u64
    }
}

/// A single output file through a `BufWriter`, counting its bytes.
pub(crate) struct CountedFile {
    path: PathBuf,
    writer: BufWriter<File>,
    pub bytes: u64,
}

impl CountedFile {
    fn create(path: PathBuf) -> Result<Self, SynthError> {
        let file = File::create(&path).map_err(|source| SynthError::Io { path: path.clone(), source })?;
        Ok(Self { writer: BufWriter::with_capacity(256 << 10, file), path, bytes: 0 })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), SynthError> {
        self.bytes += data.len() as u64;
        self.writer.write_all(data).map_err(|source| SynthError::Io { path: self.path.clone(), source })
    }

    fn finish(mut self) -> Result<u64, SynthError> {
        self.writer.flush().map_err(|source| SynthError::Io { path: self.path.clone(), source })?;
        Ok(self.bytes)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct UkeFile {
    claims: u64,
    lines: u64,
    points: u64,
}

/// Headers of the CSV files.
pub(crate) const TRUTH_RECORDS_HEADER: &str = "source,file,record_id,line,person\n";
pub(crate) const TRUTH_INSURANCE_HEADER: &str = "person,from_date,insurer_number,kigo,bango,edaban\n";
pub(crate) const TRUTH_PERSONS_HEADER: &str = "person,kind,of_person,sex,birth_date,surname,given_name,surname_kana,given_name_kana,married_on,surname_after_marriage,surname_kana_after_marriage,prefecture_code,municipality_code,postal_code,address,home_phone,mobile_phone,death_date\n";

/// The main thread's end of the output: appends chunks in order.
pub(crate) struct Sink {
    formats: Formats,
    hospitals: Vec<String>,
    months: usize,
    start_year: i32,
    pool: FilePool,
    uke_base: usize,
    patient_lines: Vec<u64>,
    uke_files: Vec<UkeFile>,
    truth: CountedFile,
    insurance: CountedFile,
    persons_truth: CountedFile,
    registry_persons: Option<CountedFile>,
    registry_events: Option<CountedFile>,
    registry_rows: u64,
    pool_bytes: u64,
    scratch: Vec<u8>,
    pub counts: ChunkCounts,
    pub uke_claims: u64,
    pub truth_records: u64,
}

impl Sink {
    pub(crate) fn create(root: &Path, formats: Formats, world: &World<'_>) -> Result<Self, SynthError> {
        for sub in ["fhir", "ndjson", "uke", "csv", "truth"] {
            let dir = root.join(sub);
            if dir.exists() && fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
                return Err(SynthError::OutputNotEmpty(dir));
            }
        }
        let mkdir = |dir: PathBuf| fs::create_dir_all(&dir).map_err(|source| SynthError::Io { path: dir, source });
        mkdir(root.join("truth"))?;
        let codes: Vec<String> = world.hospitals.iter().map(|h| h.code.clone()).collect();
        let months = world.period.months as usize;
        let mut paths = Vec::new();
        for code in &codes {
            if formats.fhir_bundles {
                mkdir(root.join("fhir").join(code))?;
            }
            if formats.fhir_ndjson {
                mkdir(root.join("ndjson").join(code))?;
            }
            if formats.uke {
                mkdir(root.join("uke").join(code))?;
            }
        }
        // Slots: NDJSON (hospital × type), then UKE (hospital × month).
        for code in &codes {
            for t in RESOURCE_TYPES {
                paths.push(root.join("ndjson").join(code).join(format!("{t}.ndjson")));
            }
        }
        let uke_base = paths.len();
        for code in &codes {
            for m in 0..months {
                let mut name = Vec::new();
                push_yyyymm(&mut name, month_start(world.period.start_year, m as u32));
                name.extend_from_slice(b".UKE");
                paths.push(root.join("uke").join(code).join(String::from_utf8(name).expect("ascii")));
            }
        }
        let (registry_persons, registry_events) = if formats.registry_csv {
            mkdir(root.join("csv"))?;
            let mut p = CountedFile::create(root.join("csv").join("persons.csv"))?;
            p.write(crate::registry::PERSONS_HEADER.as_bytes())?;
            let mut e = CountedFile::create(root.join("csv").join("events.csv"))?;
            e.write(crate::registry::EVENTS_HEADER.as_bytes())?;
            (Some(p), Some(e))
        } else {
            (None, None)
        };
        let mut truth = CountedFile::create(root.join("truth").join("records.csv"))?;
        truth.write(TRUTH_RECORDS_HEADER.as_bytes())?;
        let mut insurance = CountedFile::create(root.join("truth").join("insurance_history.csv"))?;
        insurance.write(TRUTH_INSURANCE_HEADER.as_bytes())?;
        let mut persons_truth = CountedFile::create(root.join("truth").join("persons.csv"))?;
        persons_truth.write(TRUTH_PERSONS_HEADER.as_bytes())?;
        let mut sink = Self {
            formats,
            months,
            start_year: world.period.start_year,
            pool: FilePool::new(paths),
            uke_base,
            patient_lines: vec![0; codes.len()],
            uke_files: vec![UkeFile::default(); codes.len() * months],
            hospitals: codes,
            truth,
            insurance,
            persons_truth,
            registry_persons,
            registry_events,
            registry_rows: 0,
            pool_bytes: 0,
            scratch: Vec::with_capacity(4096),
            counts: ChunkCounts::default(),
            uke_claims: 0,
            truth_records: 0,
        };
        if formats.fhir_ndjson {
            // Each hospital's Organization resource opens its Organization.ndjson.
            for (h, hospital) in world.hospitals.iter().enumerate() {
                let mut buf = Vec::new();
                crate::fhir::push_organization(&mut buf, hospital);
                buf.push(b'\n');
                sink.pool_append(h * RESOURCE_TYPES.len() + ORGANIZATION, &buf)?;
                sink.counts.ndjson_resources += 1;
            }
        }
        Ok(sink)
    }

    fn pool_append(&mut self, slot: usize, data: &[u8]) -> Result<(), SynthError> {
        self.pool_bytes += data.len() as u64;
        self.pool.append(slot, data)
    }

    /// Appends one chunk; chunks must come in order.
    pub(crate) fn append(&mut self, chunk: &ChunkOutput, world: &World<'_>) -> Result<(), SynthError> {
        let c = chunk.counts;
        let t = &mut self.counts;
        t.deaths += c.deaths;
        t.insurance_changes += c.insurance_changes;
        t.twins += c.twins;
        t.namesakes += c.namesakes;
        t.patients += c.patients;
        t.ndjson_resources += c.ndjson_resources;
        t.bundle_files += c.bundle_files;
        t.bundle_resources += c.bundle_resources;
        t.bundle_bytes += c.bundle_bytes;
        t.registry_events += c.registry_events;
        t.insurance_periods += c.insurance_periods;

        self.truth.write(&chunk.bundle_truth)?;
        self.truth_records += c.bundle_files;
        self.insurance.write(&chunk.insurance_history)?;
        self.persons_truth.write(&chunk.persons_truth)?;

        if self.formats.fhir_ndjson {
            for (slot, bytes) in chunk.ndjson.iter().enumerate() {
                if !bytes.is_empty() {
                    self.pool_append(slot, bytes)?;
                }
            }
            for (h, patients) in chunk.ndjson_patients.iter().enumerate() {
                for (person, id) in patients {
                    self.patient_lines[h] += 1;
                    let mut row = std::mem::take(&mut self.scratch);
                    row.clear();
                    row.extend_from_slice(b"ndjson,ndjson/");
                    row.extend_from_slice(self.hospitals[h].as_bytes());
                    row.extend_from_slice(b"/Patient.ndjson,");
                    row.extend_from_slice(id.as_bytes());
                    row.push(b',');
                    push_u64(&mut row, self.patient_lines[h]);
                    row.push(b',');
                    push_u64(&mut row, *person);
                    row.push(b'\n');
                    self.truth.write(&row)?;
                    self.scratch = row;
                    self.truth_records += 1;
                }
            }
        }

        if self.formats.uke {
            for (i, batch) in chunk.uke.iter().enumerate() {
                if batch.claims.is_empty() {
                    continue;
                }
                let (h, m) = (i / self.months, i % self.months);
                let slot = self.uke_base + i;
                if !self.pool.is_created(slot) {
                    let mut ir = Vec::new();
                    let month = month_start(self.start_year, m as u32);
                    uke::push_ir(&mut ir, &world.hospitals[h], add_days(month, 40));
                    self.pool_append(slot, &ir)?;
                    self.uke_files[i].lines = 1;
                }
                let mut offset = 0;
                for claim in &batch.claims {
                    let file = &mut self.uke_files[i];
                    file.claims += 1;
                    let re_line = file.lines + 1;
                    file.lines += claim.lines as u64;
                    file.points += claim.points;
                    let number = file.claims;
                    let mut head = Vec::with_capacity(16);
                    head.extend_from_slice(b"RE,");
                    push_u64(&mut head, number);
                    head.push(b',');
                    self.pool_append(slot, &head)?;
                    self.pool_append(slot, &batch.bytes[offset..offset + claim.len])?;
                    offset += claim.len;

                    let mut row = std::mem::take(&mut self.scratch);
                    row.clear();
                    row.extend_from_slice(b"uke,uke/");
                    row.extend_from_slice(self.hospitals[h].as_bytes());
                    row.push(b'/');
                    push_yyyymm(&mut row, month_start(self.start_year, m as u32));
                    row.extend_from_slice(b".UKE,");
                    push_u64(&mut row, number);
                    row.push(b',');
                    push_u64(&mut row, re_line);
                    row.push(b',');
                    push_u64(&mut row, claim.person);
                    row.push(b'\n');
                    self.truth.write(&row)?;
                    self.scratch = row;
                    self.truth_records += 1;
                    self.uke_claims += 1;
                }
            }
        }

        if let (Some(persons), Some(events)) = (&mut self.registry_persons, &mut self.registry_events) {
            persons.write(&chunk.registry_persons)?;
            events.write(&chunk.registry_events)?;
            for (person, id) in &chunk.registry_ids {
                self.registry_rows += 1;
                let mut row = std::mem::take(&mut self.scratch);
                row.clear();
                row.extend_from_slice(b"csv,csv/persons.csv,");
                row.extend_from_slice(id.as_bytes());
                row.push(b',');
                push_u64(&mut row, self.registry_rows + 1);
                row.push(b',');
                push_u64(&mut row, *person);
                row.push(b'\n');
                self.truth.write(&row)?;
                self.scratch = row;
                self.truth_records += 1;
            }
        }
        Ok(())
    }

    /// Bytes written so far (buffered bytes included).
    pub(crate) fn bytes(&self) -> u64 {
        let single = self.truth.bytes
            + self.insurance.bytes
            + self.persons_truth.bytes
            + self.registry_persons.as_ref().map_or(0, |f| f.bytes)
            + self.registry_events.as_ref().map_or(0, |f| f.bytes);
        self.pool_bytes + single + self.counts.bundle_bytes
    }

    /// Writes the UKE trailers (GO) and flushes everything; returns (files, bytes).
    pub(crate) fn finish(mut self) -> Result<(u64, u64, u64), SynthError> {
        for i in 0..self.uke_files.len() {
            let file = self.uke_files[i];
            if file.claims > 0 {
                let mut go = Vec::new();
                uke::push_go(&mut go, file.claims, file.points);
                self.pool_append(self.uke_base + i, &go)?;
            }
        }
        self.pool.flush_all()?;
        let bytes = self.bytes();
        let mut files = self.pool.files() + self.counts.bundle_files + 3;
        self.truth.finish()?;
        self.insurance.finish()?;
        self.persons_truth.finish()?;
        if let Some(f) = self.registry_persons.take() {
            f.finish()?;
            files += 1;
        }
        if let Some(f) = self.registry_events.take() {
            f.finish()?;
            files += 1;
        }
        Ok((files, bytes, self.registry_rows))
    }
}

/// The person as they are: one row of `truth/persons.csv`.
pub(crate) fn push_person_truth(world: &World<'_>, person: &crate::person::Person<'_>, buf: &mut Vec<u8>) {
    use crate::calendar::push_iso;
    use crate::person::IdentityKind;
    use crate::text::push_csv_field;
    let id = &person.identity;
    let t = world.tables;
    push_u64(buf, person.index);
    let (kind, of) = match id.kind {
        IdentityKind::Ordinary => ("ordinary", None),
        IdentityKind::TwinOf(i) => ("twin", Some(i)),
        IdentityKind::NamesakeOf(i) => ("namesake", Some(i)),
    };
    buf.push(b',');
    buf.extend_from_slice(kind.as_bytes());
    buf.push(b',');
    if let Some(i) = of {
        push_u64(buf, i);
    }
    buf.push(b',');
    buf.push(if id.sex == crate::person::Sex::Male { b'M' } else { b'F' });
    buf.push(b',');
    push_iso(buf, id.birth);
    for field in [id.surname_kanji(), &id.given.kanji, &id.surname.katakana, &id.given.katakana] {
        buf.push(b',');
        push_csv_field(buf, field);
    }
    buf.push(b',');
    if let Some(m) = &person.marriage {
        push_iso(buf, m.date);
        buf.push(b',');
        push_csv_field(buf, &m.surname.kanji);
        buf.push(b',');
        push_csv_field(buf, &m.surname.katakana);
    } else {
        buf.extend_from_slice(b",,");
    }
    let a = &id.address;
    let muni = &t.municipalities[a.municipality];
    let town = a.town.map(|i| &t.towns[i]);
    buf.push(b',');
    crate::text::push_2d(buf, a.prefecture);
    buf.push(b',');
    buf.extend_from_slice(muni.jis_code.as_bytes());
    buf.push(b',');
    if let Some(town) = town {
        buf.extend_from_slice(town.postal_code.as_bytes());
    }
    buf.push(b',');
    let block = if a.chome > 0 { format!("{}丁目{}番{}号", a.chome, a.ban, a.go) } else { format!("{}番地{}", a.ban, a.go) };
    let address = format!("{}{}{}{block}", world.prefecture_name(a.prefecture), muni.name, town.map_or("", |t| t.name.as_str()));
    push_csv_field(buf, &address);
    buf.push(b',');
    if let Some(p) = &id.home_phone {
        buf.extend_from_slice(p.as_bytes());
    }
    buf.push(b',');
    if let Some(p) = &id.mobile {
        buf.extend_from_slice(p.as_bytes());
    }
    buf.push(b',');
    if let Some(d) = person.death.filter(|&d| d <= world.period.end) {
        push_iso(buf, d);
    }
    buf.push(b'\n');
}

/// The person's insurance periods: rows of `truth/insurance_history.csv`.
pub(crate) fn push_insurance_history(world: &World<'_>, person: &crate::person::Person<'_>, buf: &mut Vec<u8>) {
    use crate::text::push_csv_field;
    for c in &person.coverages {
        push_u64(buf, person.index);
        buf.push(b',');
        crate::calendar::push_iso(buf, c.from);
        buf.push(b',');
        buf.extend_from_slice(world.insurers.all[c.insurer].number.to_string().as_bytes());
        buf.push(b',');
        push_csv_field(buf, &c.kigo);
        buf.push(b',');
        push_csv_field(buf, &c.bango);
        buf.push(b',');
        if let Some(e) = c.edaban {
            crate::text::push_2d(buf, e);
        }
        buf.push(b'\n');
    }
}
