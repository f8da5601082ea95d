//! Pass 1: parse and validate every file of a submission, collect the linkage units and decide,
//! for every other record, which unit it belongs to. Nothing is written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use niji_ingest::{
    ingest_path, ContentBody, CsvMapping, FileReport, Format, IdentifierKind, Identity, IngestConfig, Location, Problem, Reason, RecordKind,
    SplitRecord,
};
use niji_privacy::{LinkRecord, LinkUnit, UnitSet};
use sha2::{Digest, Sha256};

use crate::{display_name, IntakeError, Phase, Progress};

/// Where pass 1 keeps what does not stay in memory.
pub(crate) struct Scratch {
    /// The instance folder: unnamed files there.
    pub folder: PathBuf,
    /// Bytes of units kept in memory before they go to a sealed file.
    pub units_held_bytes: usize,
}

/// One file of a submission.
#[derive(Debug, Clone)]
pub(crate) struct SubmittedFile {
    pub path: PathBuf,
    /// Path relative to the common folder of the submission's files: the name in reports and
    /// record references.
    pub name: String,
    pub format: Format,
    pub bytes: u64,
    /// When the file was last modified as listed (pass 2 refuses a file whose size or time
    /// differs: it changed after it was validated).
    pub modified: Option<std::time::SystemTime>,
    /// Index of the file's folder among the submission's folders: relative references
    /// (`Patient/<id>`) resolve within one folder, the unit of one export.
    pub folder: u32,
}

impl SubmittedFile {
    pub fn scope(&self, index: usize) -> Scope {
        Scope { file: index as u32, folder: self.folder }
    }
}

/// Where a reference is resolved: `urn:` references within their file, `Patient/<id>` within
/// the file's folder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope {
    pub file: u32,
    pub folder: u32,
}

impl SubmittedFile {
    pub fn list(paths: &[PathBuf]) -> Result<Vec<Self>, IntakeError> {
        let mut absolute = Vec::with_capacity(paths.len());
        for p in paths {
            let a = std::fs::canonicalize(p).map_err(|e| IntakeError::File { file: p.display().to_string(), source: e.into() })?;
            absolute.push(a);
        }
        let base = common_folder(&absolute);
        let mut out = Vec::with_capacity(paths.len());
        let mut seen = HashSet::new();
        let mut folders: HashMap<PathBuf, u32> = HashMap::new();
        for (given, path) in paths.iter().zip(absolute) {
            let name = display_name(&path, &base);
            let file_error = |source| IntakeError::File { file: given.display().to_string(), source };
            let format = Format::from_path(&path).ok_or_else(|| file_error(niji_ingest::IngestError::UnknownFormat))?;
            let metadata = std::fs::metadata(&path).map_err(|e| file_error(e.into()))?;
            let (bytes, modified) = (metadata.len(), metadata.modified().ok());
            if !seen.insert(name.clone()) {
                return Err(IntakeError::DuplicateFile(name));
            }
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let next = folders.len() as u32;
            let folder = *folders.entry(parent).or_insert(next);
            out.push(Self { path, name, format, bytes, modified, folder });
        }
        Ok(out)
    }
}

fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let mut base: PathBuf = paths.first().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default();
    for p in paths {
        while !p.starts_with(&base) {
            if !base.pop() {
                return PathBuf::new();
            }
        }
    }
    base
}

/// What pass 1 learned.
///
/// Records that carry a person (a FHIR Patient, a UKE claim with its payers, a CSV row with
/// identifiers, a resource whose subject is given by identifier only) are kept as linkage reads
/// them ([`niji_privacy::LinkUnit`], made once the next one of its file is read), each distinct
/// identity once ([`UnitSet`]); pass 2 meets them in the same order and finds each one's unit by
/// counting.
pub(crate) struct Scan {
    pub reports: Vec<FileReport>,
    /// The units, each distinct identity once.
    pub units: UnitSet,
    /// Per record that carries a person, in file order: its unit in `units`.
    pub unit_of: UnitNumbers,
    /// Per unit of `units`, its number in the linkage run's set (filled when the run takes them;
    /// pass 2 reads `unit_of` through it).
    pub unit_in_run: niji_privacy::Appended,
    /// Per file: the records the parser handed over and where its records in `unit_of` end,
    /// for pass 2 to check file by file (a file changed in between must not shift records
    /// onto other persons' units).
    pub per_file: Vec<(u64, usize)>,
    /// Patients by reference (`Patient/<id>` within its folder, `urn:…` within its file): the
    /// unit of the first Patient that carries it.
    pub patient_refs: HashMap<RefKey, u32>,
    /// Records moved to the rejects by the intake itself (their subject is not in the submission).
    pub quarantined: HashSet<(u32, Location)>,
    /// Records the parsers handed over (accepted by them), for pass 2 to compare.
    pub parsed: u64,
    formats: Vec<Format>,
}

impl Scan {
    pub fn accepted(&self) -> u64 {
        self.reports.iter().map(|r| r.accepted_total()).sum()
    }

    /// The dataset kind its formats suggest.
    pub fn kind(&self) -> &'static str {
        let all = |f: fn(&Format) -> bool| self.formats.iter().all(f);
        if all(|f| matches!(f, Format::FhirJson | Format::FhirNdjson)) {
            "ehr"
        } else if all(|f| *f == Format::Uke) {
            "claims"
        } else if all(|f| *f == Format::Csv) {
            "registry"
        } else {
            "mixed"
        }
    }
}

/// A hashed reference (in memory only).
pub(crate) type RefKey = [u8; 16];

/// The identity kinds person linkage reads; everything else (narrative, free text, references)
/// stays out of linkage state.
const LINKAGE_KINDS: [IdentifierKind; 15] = [
    IdentifierKind::NameKanji,
    IdentifierKind::NameKana,
    IdentifierKind::BirthDate,
    IdentifierKind::Sex,
    IdentifierKind::InsurerNumber,
    IdentifierKind::InsuredSymbol,
    IdentifierKind::InsuredNumber,
    IdentifierKind::BranchNumber,
    IdentifierKind::PatientId,
    IdentifierKind::MyNumber,
    IdentifierKind::Phone,
    IdentifierKind::Address,
    IdentifierKind::PostalCode,
    IdentifierKind::MemberId,
    IdentifierKind::PublicExpenseRecipient,
];

/// The part of an identity that linkage reads.
pub(crate) fn linkage_identity(mut identity: Identity) -> Identity {
    identity.items.retain(|i| LINKAGE_KINDS.contains(&i.kind));
    identity
}

fn has_linkage_items(identity: &Identity) -> bool {
    identity.items.iter().any(|i| LINKAGE_KINDS.contains(&i.kind) && i.kind != IdentifierKind::Sex && i.kind != IdentifierKind::BirthDate)
}

/// How a record reaches its person.
pub(crate) enum Role {
    /// It is a linkage unit itself (with the date its insurance numbers were valid).
    Unit { observed: Option<niji_ingest::Date> },
    /// A UKE payer (HO/KO/SN): part of its claim's unit.
    Payer { claim: u64 },
    /// A UKE line of a claim.
    OfClaim { claim: u64 },
    /// A FHIR resource naming its Patient by reference.
    Subject(RefKey),
    /// Facility, totals, organizations, practitioners: no person.
    NoPerson,
    /// Cannot reach a person.
    Unresolved,
}

pub(crate) fn role(scope: Scope, record: &SplitRecord) -> Role {
    match &record.content.body {
        ContentBody::Patient(_) => Role::Unit { observed: None },
        ContentBody::Claim(c) => Role::Unit { observed: c.month.and_then(|m| niji_ingest::Date::new(m.year, m.month, 1).ok()) },
        ContentBody::ClaimPayer(p) => p.claim.map_or(Role::Unresolved, |claim| Role::Payer { claim }),
        ContentBody::ClaimDisease(d) => d.claim.map_or(Role::Unresolved, |claim| Role::OfClaim { claim }),
        ContentBody::ClaimLine(l) => l.claim.map_or(Role::Unresolved, |claim| Role::OfClaim { claim }),
        ContentBody::ClaimFacility(_) | ContentBody::ClaimTotal { .. } | ContentBody::Organization(_) | ContentBody::Practitioner => Role::NoPerson,
        ContentBody::Row(_) => {
            if has_linkage_items(&record.identity) {
                Role::Unit { observed: None }
            } else {
                Role::Unresolved
            }
        }
        ContentBody::Condition(_)
        | ContentBody::Observation(_)
        | ContentBody::Allergy(_)
        | ContentBody::Medication(_)
        | ContentBody::Encounter(_) => match record.identity.values(IdentifierKind::SubjectReference).next() {
            Some(reference) => ref_key(scope, reference).map_or(Role::Unresolved, Role::Subject),
            None if has_linkage_items(&record.identity) => Role::Unit { observed: None },
            None => Role::Unresolved,
        },
    }
}

/// The key of a reference to a Patient: `urn:uuid:…` within its file, `Patient/<id>` (also as
/// the tail of an absolute URL, without `/_history/…`) within the file's folder. Other targets:
/// none.
pub(crate) fn ref_key(scope: Scope, reference: &str) -> Option<RefKey> {
    let r = reference.trim();
    let mut h = Sha256::new();
    if r.starts_with("urn:") {
        h.update(b"file\0");
        h.update(scope.file.to_le_bytes());
        h.update(r.as_bytes());
    } else {
        let at = r.rfind("Patient/")?;
        let id = r[at + "Patient/".len()..].split('/').next()?;
        if id.is_empty() {
            return None;
        }
        h.update(b"patient\0");
        h.update(scope.folder.to_le_bytes());
        h.update(id.as_bytes());
    }
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    Some(out)
}

/// The references under which a Patient record can be named.
pub(crate) fn patient_keys(scope: Scope, identity: &Identity) -> Vec<RefKey> {
    let mut out = Vec::new();
    for item in &identity.items {
        if item.kind != IdentifierKind::RecordIdentifier {
            continue;
        }
        let key = match item.field.as_str() {
            "Bundle.entry.fullUrl" => ref_key(scope, &item.value),
            "Patient.id" => ref_key(scope, &format!("Patient/{}", item.value)),
            _ => None,
        };
        out.extend(key);
    }
    out
}

pub(crate) fn record_kind(body: &ContentBody) -> Option<RecordKind> {
    Some(match body {
        ContentBody::Patient(_) => RecordKind::Patient,
        ContentBody::Condition(_) => RecordKind::Condition,
        ContentBody::Observation(_) => RecordKind::Observation,
        ContentBody::Allergy(_) => RecordKind::AllergyIntolerance,
        ContentBody::Medication(_) => RecordKind::MedicationRequest,
        ContentBody::Encounter(_) => RecordKind::Encounter,
        ContentBody::Row(_) => RecordKind::CsvRow,
        _ => return None,
    })
}

/// Per record that carries a person, in file order, its unit: 4 bytes a record in an unnamed
/// temporary file in the instance folder (on the disk the lake is written to, not a `/tmp`
/// that may be memory; the system removes it when it is closed, whatever ends the process), written
/// by pass 1 and read once, in order, by pass 2. Held in memory it grew with the records, not
/// the persons (at 3 million persons the link phase's peak went from 369 to 340 MB, the validate
/// phase's from 272 to 240 MB, once they waited on disk). Unit numbers only: no
/// identity, nothing a reader could tie to a person without the units.
pub(crate) struct UnitNumbers {
    file: std::io::BufWriter<std::fs::File>,
    len: usize,
}

impl UnitNumbers {
    pub(crate) fn new(folder: &Path) -> std::io::Result<UnitNumbers> {
        Ok(UnitNumbers { file: std::io::BufWriter::with_capacity(1 << 16, tempfile::tempfile_in(folder)?), len: 0 })
    }

    pub(crate) fn extend(&mut self, units: impl Iterator<Item = u32>) -> std::io::Result<()> {
        use std::io::Write;
        for u in units {
            self.file.write_all(&u.to_le_bytes())?;
            self.len += 1;
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes what is buffered: no more numbers come.
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.file.flush()
    }

    /// The numbers from the first, each mapped through `onto` (a number past its end is an
    /// error, as is a failed read: [`UnitReader::error`]). After [`UnitNumbers::finish`].
    pub(crate) fn read<'a>(&self, onto: &'a niji_privacy::Appended) -> std::io::Result<UnitReader<'a>> {
        use std::io::Seek;
        debug_assert!(self.file.buffer().is_empty(), "finished before reading");
        let mut file = self.file.get_ref().try_clone()?;
        file.seek(std::io::SeekFrom::Start(0))?;
        Ok(UnitReader { file: std::io::BufReader::with_capacity(1 << 16, file), onto, left: 0, error: None })
    }
}

/// The unit numbers of [`UnitNumbers::read`], in order, a file's share at a time.
pub(crate) struct UnitReader<'a> {
    file: std::io::BufReader<std::fs::File>,
    onto: &'a niji_privacy::Appended,
    /// Numbers left in the current file's share.
    left: usize,
    error: Option<std::io::Error>,
}

impl UnitReader<'_> {
    /// The next `count` numbers are the next file's: the iterator ends after them.
    pub(crate) fn begin_file(&mut self, count: usize) {
        self.left = count;
    }

    /// What stopped the numbers early, if anything did.
    pub(crate) fn error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }
}

impl Iterator for UnitReader<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        use std::io::Read;
        if self.error.is_some() || self.left == 0 {
            return None;
        }
        let mut bytes = [0u8; 4];
        match self.file.read_exact(&mut bytes) {
            Ok(()) => match self.onto.get(u32::from_le_bytes(bytes) as usize) {
                Some(u) => {
                    self.left -= 1;
                    Some(u as usize)
                }
                None => {
                    self.error = Some(std::io::Error::new(std::io::ErrorKind::InvalidData, "a unit number past the units"));
                    None
                }
            },
            // Fewer numbers than pass 1 wrote (`UnexpectedEof`) is a failed read too.
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// What pass 1 learned from one file, before the files are put together.
struct FileScan {
    report: FileReport,
    /// The file's units, and per record that carries a person (in file order) its unit there.
    units: UnitSet,
    unit_of: Vec<u32>,
    /// References naming each Patient, with the Patient's unit.
    patient_refs: Vec<(RefKey, u32)>,
    /// The Patients records name by reference (checked once all files are in).
    subjects: HashSet<RefKey>,
    /// Records that cannot reach a person whatever the other files hold.
    unresolved: Vec<(Location, RecordKind)>,
    parsed: u64,
}

/// Units of one file kept in memory before they go to the file's own scratch file (a large file
/// is not held whole until it is put together with the others).
const FILE_UNITS_HELD_BYTES: usize = 1 << 20;

/// Pass 1 of one file.
fn scan_file(
    i: usize,
    file: &SubmittedFile,
    holder: &str,
    config: &IngestConfig,
    mapping: Option<&CsvMapping>,
    scratch: &Scratch,
) -> Result<FileScan, IntakeError> {
    let scope = file.scope(i);
    let mut out = FileScan {
        report: FileReport::default(),
        units: UnitSet::default(),
        unit_of: Vec::new(),
        patient_refs: Vec::new(),
        subjects: HashSet::new(),
        unresolved: Vec::new(),
        parsed: 0,
    };
    // The last unit read, as a record: a UKE claim's payers (HO, KO) follow its RE, before the
    // next RE. Earlier units are reduced to linkage's form at once, so a large file does not
    // hold its identities until it ends.
    let mut pending: Option<(Location, LinkRecord, Vec<RefKey>)> = None;
    let mut units = crate::scratch::unit_set(&scratch.folder, FILE_UNITS_HELD_BYTES.min(scratch.units_held_bytes))?;
    let mut unit_of = Vec::new();
    let mut patient_refs = Vec::new();
    let mut keep = |(_, record, keys): (Location, LinkRecord, Vec<RefKey>)| {
        let unit = units.push(LinkUnit::new(&record));
        unit_of.push(unit);
        patient_refs.extend(keys.into_iter().map(|k| (k, unit)));
    };
    let mut sink = |r: SplitRecord| {
        out.parsed += 1;
        let loc = r.content.record.location;
        match role(scope, &r) {
            Role::Unit { observed } => {
                let keys = if matches!(r.content.body, ContentBody::Patient(_)) { patient_keys(scope, &r.identity) } else { Vec::new() };
                let record = LinkRecord { holder: holder.to_string(), observed, identity: linkage_identity(r.identity) };
                if let Some(done) = pending.replace((loc, record, keys)) {
                    keep(done);
                }
            }
            Role::Payer { claim } => {
                // A payer names the claim it follows: the pending unit.
                if let Some((Location::Line(line), record, _)) = pending.as_mut() {
                    if *line == claim {
                        record.identity.items.extend(linkage_identity(r.identity).items);
                    }
                }
            }
            Role::Subject(key) => {
                out.subjects.insert(key);
            }
            Role::OfClaim { .. } | Role::NoPerson => {}
            Role::Unresolved => {
                if let Some(kind) = record_kind(&r.content.body) {
                    out.unresolved.push((loc, kind));
                }
            }
        }
    };
    out.report = ingest_path(&file.path, config, mapping, &mut sink).map_err(|source| IntakeError::File { file: file.name.clone(), source })?;
    out.report.file = file.name.clone();
    if !out.report.file_refused {
        if let Some(done) = pending {
            keep(done);
        }
        (out.units, out.unit_of, out.patient_refs) = (units, unit_of, patient_refs);
    } else {
        // Nothing of a refused file links or is written (write skips it too).
        out.subjects.clear();
        out.unresolved.clear();
        out.parsed = 0;
    }
    Ok(out)
}

/// The records of one file whose subject is among `missing`, in file order.
fn subjects_missing(
    i: usize,
    file: &SubmittedFile,
    config: &IngestConfig,
    mapping: Option<&CsvMapping>,
    missing: &HashSet<RefKey>,
) -> Result<Vec<(Location, RecordKind)>, IntakeError> {
    let scope = file.scope(i);
    let mut out = Vec::new();
    let mut sink = |r: SplitRecord| {
        if let Role::Subject(key) = role(scope, &r) {
            if missing.contains(&key) {
                out.push((r.content.record.location, record_kind(&r.content.body).expect("subject records have a kind")));
            }
        }
    };
    ingest_path(&file.path, config, mapping, &mut sink).map_err(|source| IntakeError::File { file: file.name.clone(), source })?;
    Ok(out)
}

/// Files scanned but not yet put together, and what is put together so far: files finish in
/// any order and are added in file order as soon as every earlier one is in, so that no more
/// than a few files' units wait at once and the result does not depend on timing.
struct Gather {
    scan: Scan,
    subjects: Vec<HashSet<RefKey>>,
    unresolved: Vec<Vec<(Location, RecordKind)>>,
    waiting: std::collections::BTreeMap<usize, Result<FileScan, IntakeError>>,
    next: usize,
    error: Option<IntakeError>,
}

impl Gather {
    fn add(&mut self, i: usize, result: Result<FileScan, IntakeError>) {
        self.waiting.insert(i, result);
        while let Some(result) = self.waiting.remove(&self.next) {
            self.next += 1;
            match result {
                Ok(f) if self.error.is_none() => {
                    let moved = self.scan.units.append(f.units);
                    // A scratch file that failed stops the scan here, not after every file.
                    if let Some(e) = self.scan.units.store_error() {
                        self.error.get_or_insert(e.into());
                    }
                    if let Err(e) = self.scan.unit_of.extend(f.unit_of.iter().map(|&u| moved.of(u as usize))) {
                        self.error.get_or_insert(e.into());
                    }
                    self.scan.per_file.push((f.parsed, self.scan.unit_of.len()));
                    for (key, u) in f.patient_refs {
                        self.scan.patient_refs.entry(key).or_insert(moved.of(u as usize));
                    }
                    self.scan.parsed += f.parsed;
                    self.scan.reports.push(f.report);
                    self.subjects.push(f.subjects);
                    self.unresolved.push(f.unresolved);
                }
                Ok(_) => {}
                // The first failing file in file order is the one reported.
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
    }
}

/// Pass 1 over every file: files are parsed on as many threads as there are cores (each file
/// on its own), then put together in file order, so the result does not depend on timing.
pub(crate) fn scan(
    files: &[SubmittedFile],
    holder: &str,
    config: &IngestConfig,
    mapping: Option<&CsvMapping>,
    progress: &dyn Progress,
    scratch: &Scratch,
) -> Result<Scan, IntakeError> {
    progress.start(Phase::Validate, Some(files.iter().map(|f| f.bytes).sum()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let gather = std::sync::Mutex::new(Gather {
        scan: Scan {
            reports: Vec::with_capacity(files.len()),
            units: crate::scratch::unit_set(&scratch.folder, scratch.units_held_bytes)?,
            unit_of: UnitNumbers::new(&scratch.folder)?,
            unit_in_run: niji_privacy::Appended::default(),
            per_file: Vec::with_capacity(files.len()),
            patient_refs: HashMap::new(),
            quarantined: HashSet::new(),
            parsed: 0,
            formats: files.iter().map(|f| f.format).collect(),
        },
        subjects: Vec::with_capacity(files.len()),
        unresolved: Vec::with_capacity(files.len()),
        waiting: Default::default(),
        next: 0,
        error: None,
    });
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let result = scan_file(i, file, holder, config, mapping, scratch);
                let failed = result.is_err();
                gather.lock().expect("no panics while holding the lock").add(i, result);
                progress.advance(file.bytes);
                if failed {
                    // Stop early: files after this one are not needed.
                    next.store(files.len(), std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            });
        }
    });
    let gather = gather.into_inner().expect("no panics while holding the lock");
    // A failing file stops the files after it from starting, never those before it; a failure
    // left waiting behind a file that did not start is still reported.
    if let Some(e) = gather.error.or_else(|| gather.waiting.into_values().find_map(Result::err)) {
        return Err(e);
    }
    let (mut scan, subjects, unresolved) = (gather.scan, gather.subjects, gather.unresolved);
    scan.unit_of.finish()?;
    // What names no Patient of the submission is left out, with its location: the files that
    // name one are read again for where (only when a reference is missing).
    let mut pending: Vec<(u32, Location, RecordKind)> = Vec::new();
    for (i, (keys, unresolved)) in subjects.into_iter().zip(unresolved).enumerate() {
        let missing: HashSet<RefKey> = keys.into_iter().filter(|k| !scan.patient_refs.contains_key(k)).collect();
        if !missing.is_empty() {
            let records = subjects_missing(i, &files[i], config, mapping, &missing)?;
            pending.extend(records.into_iter().map(|(loc, kind)| (i as u32, loc, kind)));
        }
        pending.extend(unresolved.into_iter().map(|(loc, kind)| (i as u32, loc, kind)));
    }
    pending.sort();
    for (i, loc, kind) in pending {
        let report = &mut scan.reports[i as usize];
        if let Some(n) = report.accepted.get_mut(&kind) {
            *n -= 1;
        }
        let field = if kind == RecordKind::CsvRow { String::new() } else { format!("{kind}.subject") };
        report.reject(vec![Problem::new(loc, field, Reason::UnresolvedSubject)]);
        scan.quarantined.insert((i, loc));
    }
    progress.finish(Phase::Validate);
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: (Scope, &str), b: (Scope, &str), same: bool) {
        let (ka, kb) = (ref_key(a.0, a.1), ref_key(b.0, b.1));
        assert!(ka.is_some() && kb.is_some());
        assert_eq!(ka == kb, same, "{} vs {}", a.1, b.1);
    }

    #[test]
    fn references_resolve_within_their_file_or_folder() {
        let f = |file, folder| Scope { file, folder };
        // `Patient/<id>`: the same in every file of a folder, in any URL form.
        check((f(0, 0), "Patient/7"), (f(1, 0), "Patient/7"), true);
        check((f(0, 0), "Patient/7"), (f(1, 0), "https://ehr.example.jp/fhir/Patient/7/_history/2"), true);
        // Two exports (folders) may reuse an id for different patients.
        check((f(0, 0), "Patient/7"), (f(1, 1), "Patient/7"), false);
        check((f(0, 0), "Patient/7"), (f(0, 0), "Patient/8"), false);
        // `urn:uuid:` only within its Bundle file.
        check((f(0, 0), "urn:uuid:1"), (f(0, 0), "urn:uuid:1"), true);
        check((f(0, 0), "urn:uuid:1"), (f(1, 0), "urn:uuid:1"), false);
        // Other targets are not Patients.
        assert_eq!(ref_key(f(0, 0), "Group/1"), None);
        assert_eq!(ref_key(f(0, 0), "Patient/"), None);
    }
}

#[cfg(test)]
mod unit_numbers_tests {
    use super::*;

    #[test]
    fn unit_numbers_read_back_in_order_file_by_file_through_the_run_s_numbers() {
        let mut numbers = UnitNumbers::new(&std::env::temp_dir()).unwrap();
        // Two files: three records, then (in two appends) 70,000 records, across buffer sizes.
        numbers.extend([2u32, 0, 1].into_iter()).unwrap();
        numbers.extend((0..40_000u32).map(|i| i % 3)).unwrap();
        numbers.extend((0..30_000u32).map(|i| (i + 1) % 3)).unwrap();
        numbers.finish().unwrap();
        assert_eq!(numbers.len(), 70_003);
        let onto = niji_privacy::Appended::Moved(vec![10u32, 20, 30]);
        let mut reader = numbers.read(&onto).unwrap();
        reader.begin_file(3);
        assert_eq!(reader.by_ref().collect::<Vec<_>>(), [30, 10, 20]);
        assert_eq!(reader.next(), None, "a file's share ends");
        reader.begin_file(70_000);
        let second: Vec<usize> = reader.by_ref().collect();
        assert_eq!(second.len(), 70_000);
        assert_eq!((second[0], second[39_999], second[40_000]), (10, 10, 20));
        assert!(reader.error().is_none());
        // Past what was written: a failed read, not an end.
        reader.begin_file(1);
        assert_eq!(reader.next(), None);
        assert!(reader.error().is_some());
    }

    #[test]
    fn a_number_past_the_run_s_units_is_an_error() {
        let mut numbers = UnitNumbers::new(&std::env::temp_dir()).unwrap();
        numbers.extend([0u32, 5].into_iter()).unwrap();
        numbers.finish().unwrap();
        for (onto, first) in [(niji_privacy::Appended::Moved(vec![7, 8]), 7), (niji_privacy::Appended::AsItWas(2), 0)] {
            let mut reader = numbers.read(&onto).unwrap();
            reader.begin_file(2);
            assert_eq!(reader.next(), Some(first));
            assert_eq!(reader.next(), None);
            assert_eq!(reader.error().map(|e| e.kind()), Some(std::io::ErrorKind::InvalidData));
        }
    }
}
