//! Pass 2: parse the files again and write each accepted record — identity to the vault (through
//! a channel into the caller's transaction), content to the lake's staging folder — under the
//! person key linkage gave its unit.

use std::path::Path;

use niji_ingest::{ingest_path, ContentBody, CsvMapping, IdentifierKind, Identity, IngestConfig, Location, SplitRecord};
use niji_lake::{LakeKey, LakeOptions, LakeSummary, LakeWriter};
use niji_privacy::PersonKey;
use niji_vault::{LinkMeta, NewIdentity, SealedIdentity, Sealer};
use tokio::sync::mpsc::Sender;

use crate::per_unit::{PersonKeys, UnitFacts};
use crate::scan::{role, Role, Scan, SubmittedFile};
use crate::{IntakeError, Phase, Progress};

/// One identity record on its way to the vault (sealed as soon as it is complete).
pub(crate) struct VaultRow {
    pub record_ref: String,
    pub identity: Identity,
    pub person: PersonKey,
    pub link: Option<LinkMeta>,
}

pub(crate) struct Written {
    pub summary: LakeSummary,
}

/// Rows per message to the vault task.
const CHUNK: usize = 2_048;
/// Key pushed with records that belong to no person (facility, totals); the lake keeps none of
/// them as rows.
const NO_PERSON: PersonKey = PersonKey([0; 32]);

#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    scan: &Scan,
    files: &[SubmittedFile],
    persons: &mut PersonKeys,
    config: &IngestConfig,
    mapping: Option<&CsvMapping>,
    staging: &Path,
    lake_key: &LakeKey,
    lake_options: LakeOptions,
    progress: &dyn Progress,
    sealer: Sealer,
    vault: Sender<Vec<SealedIdentity>>,
) -> Result<Written, IntakeError> {
    debug_assert!(persons.units_sealed(), "pass 2 reads the units' dates from their sealed pages");
    progress.start(Phase::Write, Some(scan.parsed));
    let mut lake = LakeWriter::create(staging, lake_key, lake_options)?;
    let mut out = Out { rows: Vec::with_capacity(CHUNK), sealer, vault, failed: None };
    let mut parsed = 0u64;
    // Records that carry a person come in the order pass 1 met them: the next one's unit is
    // the next entry of `unit_of`, within the file's own share of it.
    let mut units_from = 0usize;
    // Whether a unit's first record was met: only it is stored as linkable, with the unit's
    // earliest observation date (a bit a unit).
    let mut linkable_stored = vec![0u64; persons.len().div_ceil(64)];
    let mut unit_numbers = scan.unit_of.read(&scan.unit_in_run)?;
    for (i, file) in files.iter().enumerate() {
        let fi = i as u32;
        if scan.reports[i].file_refused {
            continue;
        }
        // A file written to after it was listed is not the file pass 1 validated.
        let now = std::fs::metadata(&file.path).map_err(|e| IntakeError::File { file: file.name.clone(), source: e.into() })?;
        if now.len() != file.bytes || now.modified().ok() != file.modified {
            return Err(IntakeError::FileChanged { file: file.name.clone() });
        }
        let scope = file.scope(i);
        lake.set_file(i as i32);
        // The claim (RE) being assembled: its vault row collects the HO/KO/SN identities.
        let mut claim: Option<(u64, VaultRow)> = None;
        // The line of the last unit read and its unit: a claim's payers and lines follow it.
        let mut current: Option<(u64, usize)> = None;
        let mut since_progress = 0u64;
        let (file_parsed, units_to) = scan.per_file[i];
        unit_numbers.begin_file(units_to - units_from);
        let units = &mut unit_numbers;
        units_from = units_to;
        let parsed_before = parsed;
        let mut sink = |r: SplitRecord| {
            if out.failed.is_some() {
                return;
            }
            parsed += 1;
            since_progress += 1;
            if since_progress == 1024 {
                progress.advance(since_progress);
                since_progress = 0;
            }
            let loc = r.content.record.location;
            if scan.quarantined.contains(&(fi, loc)) {
                return;
            }
            let of_claim = |line: u64| current.filter(|&(at, _)| at == line).map(|(_, u)| u);
            let record_ref = || format!("{}:{}", file.name, loc);
            let unit = match role(scope, &r) {
                Role::Unit { .. } => {
                    let Some(unit) = units.next() else { return out.fail(&file.name) };
                    current = match loc {
                        Location::Line(line) => Some((line, unit)),
                        _ => None,
                    };
                    let Some(facts) = out.facts_of(persons, unit) else { return };
                    let (word, bit) = (unit / 64, 1u64 << (unit % 64));
                    let first = linkable_stored[word] & bit == 0;
                    linkable_stored[word] |= bit;
                    let link = first.then_some(LinkMeta { observed: facts.observed });
                    let row = VaultRow { record_ref: record_ref(), identity: r.identity, person: facts.key, link };
                    if matches!(r.content.body, ContentBody::Claim(_)) {
                        if let Some((_, done)) = claim.replace((line_of(loc), row)) {
                            out.push(done);
                        }
                    } else {
                        out.push(row);
                    }
                    Some(unit)
                }
                Role::Payer { claim: line } => {
                    let Some(unit) = of_claim(line) else { return out.fail(&file.name) };
                    match &mut claim {
                        Some((at, row)) if *at == line => row.identity.items.extend(r.identity.items),
                        _ => return out.fail(&file.name),
                    }
                    Some(unit)
                }
                Role::OfClaim { claim: line } => {
                    let Some(unit) = of_claim(line) else { return out.fail(&file.name) };
                    if let Some(identity) = worth_keeping(r.identity) {
                        let Some(facts) = out.facts_of(persons, unit) else { return };
                        out.push(VaultRow { record_ref: record_ref(), identity, person: facts.key, link: None });
                    }
                    Some(unit)
                }
                Role::Subject(key) => {
                    let Some(unit) = scan.patient_refs.get(&key).map(|&u| u as usize) else { return out.fail(&file.name) };
                    if let Some(identity) = worth_keeping(r.identity) {
                        let Some(facts) = out.facts_of(persons, unit) else { return };
                        out.push(VaultRow { record_ref: record_ref(), identity, person: facts.key, link: None });
                    }
                    Some(unit)
                }
                Role::NoPerson => None,
                Role::Unresolved => return out.fail(&file.name),
            };
            let pushed = match unit {
                Some(u) => {
                    let Some(facts) = out.facts_of(persons, u) else { return };
                    lake.push_numbered(&facts.key, facts.number, facts.birth, &r.content)
                }
                None => lake.push_with_birth(&NO_PERSON, None, &r.content),
            };
            if let Err(e) = pushed {
                out.failed = Some(e.into());
            }
        };
        let report = ingest_path(&file.path, config, mapping, &mut sink).map_err(|source| IntakeError::File { file: file.name.clone(), source })?;
        progress.advance(since_progress);
        // The unit numbers could not be read back: that, not the file, is what failed.
        if let Some(e) = unit_numbers.error() {
            return Err(e.into());
        }
        // Pass 1 accepted the file; if it is refused now, it changed in between (and what this
        // pass pushed is in staging, which the failure removes).
        if report.file_refused {
            return Err(IntakeError::FileChanged { file: file.name.clone() });
        }
        // A failure while writing comes first (it stopped the counting below).
        if let Some(e) = out.failed.take() {
            return Err(e);
        }
        // The same records as pass 1 read, unit for unit, or the file changed in between (a
        // number left over that cannot be read is a failed read, not a match).
        let left_over = unit_numbers.next().is_some();
        if let Some(e) = unit_numbers.error() {
            return Err(e.into());
        }
        if parsed - parsed_before != file_parsed || left_over {
            return Err(IntakeError::FileChanged { file: file.name.clone() });
        }
        if let Some((_, row)) = claim.take() {
            out.push(row);
        }
        if let Some(e) = out.failed.take() {
            return Err(e);
        }
        fail::fail_point!("intake-writing");
    }
    out.flush();
    if let Some(e) = out.failed.take() {
        return Err(e);
    }
    Ok(Written { summary: lake.finish()? })
}

/// The identity of a record that is not a linkage unit, if it holds more than references: its
/// subject reference has become the person key and its own ids (`Resource.id`, `fullUrl`,
/// business identifiers) and its literal references to other records stay with the holder, so a
/// record with nothing else (most resources) gets no vault row; narrative, free text and other
/// parties' names and identifiers are kept, sealed.
fn worth_keeping(mut identity: Identity) -> Option<Identity> {
    identity.items.retain(|i| match i.kind {
        IdentifierKind::SubjectReference | IdentifierKind::RecordIdentifier => false,
        // A literal reference to another record (`Encounter/…`, `Practitioner/…`) names no one;
        // a display name or an identifier of another party does.
        IdentifierKind::OtherPartyIdentifier => !i.field.ends_with(".reference"),
        _ => true,
    });
    (!identity.items.is_empty()).then_some(identity)
}

fn line_of(loc: Location) -> u64 {
    match loc {
        Location::Line(n) | Location::Entry(n) => n,
        Location::File => 0,
    }
}

/// Identity rows on their way out: sealed here, on the parsing thread, while SQLite inserts
/// the previous chunk on its own.
struct Out {
    rows: Vec<SealedIdentity>,
    sealer: Sealer,
    vault: Sender<Vec<SealedIdentity>>,
    failed: Option<IntakeError>,
}

impl Out {
    fn push(&mut self, row: VaultRow) {
        let new = NewIdentity { record_ref: &row.record_ref, identity: &row.identity, person: row.person, link: row.link };
        match self.sealer.seal(&new) {
            Ok(sealed) => self.rows.push(sealed),
            Err(e) => {
                if self.failed.is_none() {
                    self.failed = Some(e.into());
                }
                return;
            }
        }
        if self.rows.len() >= CHUNK {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.rows.is_empty() || self.failed.is_some() {
            return;
        }
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(CHUNK));
        if self.vault.blocking_send(rows).is_err() {
            // The vault side stopped on an error of its own; it reports that one.
            self.failed = Some(IntakeError::Io(std::io::Error::other("the vault writer stopped")));
        }
    }

    /// `unit`'s person (key and number) and dates; `None` when a scratch page could not be read
    /// back, the failure kept (the record is then not written: the intake fails).
    fn facts_of(&mut self, persons: &mut PersonKeys, unit: usize) -> Option<UnitFacts> {
        match persons.facts(unit) {
            Ok(person) => Some(person),
            Err(e) => {
                if self.failed.is_none() {
                    self.failed = Some(e.into());
                }
                None
            }
        }
    }

    /// Pass 2 met a record pass 1 did not see this way: the file changed in between.
    fn fail(&mut self, file: &str) {
        if self.failed.is_none() {
            self.failed = Some(IntakeError::FileChanged { file: file.to_string() });
        }
    }
}
