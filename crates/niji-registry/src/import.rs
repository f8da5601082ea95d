//! A holder's bulk import of the choices its patients made on paper: notices delivered and
//! opt-outs. All or nothing: every line is parsed, every patient found and every choice
//! validated before anything is written, and then all entries are appended in one vault
//! transaction.
//!
//! The file is CSV in UTF-8 with a header `patient_id,choice,scope,date`:
//! - `opt_out` with `scope` `all`, `purpose:<category>` or `recipient:<kind>` (the codes of
//!   `niji-review`), `date` empty or the date on the paper form (kept for the holder's records:
//!   the opt-out applies from the time of import, 将来効);
//! - `notice` with `date` the day the notice (丁寧なオプトアウト) was delivered, `scope` empty.

use std::collections::HashMap;

use niji_consent::{Actor, Choice, Entry, OptOutScope};
use niji_instance::Instance;
use niji_privacy::{Domain, PersonKey};
use niji_vault::NewRegistryEntry;
use time::OffsetDateTime;

use crate::{body_of, entries_of, is_decisive, log, nanos, parse_date, HolderActor, RegistryError};

/// One problem of an import: line (1 = header), field and a fixed reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportProblem {
    pub line: u64,
    pub field: &'static str,
    pub reason: &'static str,
}

const HEADER: [&str; 4] = ["patient_id", "choice", "scope", "date"];

/// Imports `csv` for `holder`; returns the number of entries appended. On any problem nothing is
/// written and [`RegistryError::Import`] lists every problem found (at most 100).
pub async fn import_choices(instance: &Instance, holder: &HolderActor, csv: &[u8], now: OffsetDateTime) -> Result<usize, RegistryError> {
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(csv);
    match reader.headers() {
        Ok(h) if h.iter().map(|c| c.trim_start_matches('\u{feff}').trim()).eq(HEADER) => {}
        _ => {
            return Err(RegistryError::Import(vec![ImportProblem {
                line: 1,
                field: "header",
                reason: "the header must be patient_id,choice,scope,date",
            }]))
        }
    }
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(_) => {
                problems.push(ImportProblem { line, field: "line", reason: "not a CSV line of four fields in UTF-8" });
                continue;
            }
        };
        let patient = record[0].trim().to_string();
        if patient.is_empty() {
            problems.push(ImportProblem { line, field: "patient_id", reason: "empty" });
            continue;
        }
        match parse_choice(record[1].trim(), record[2].trim(), record[3].trim(), &holder.holder) {
            Ok(choice) => rows.push((line, patient, choice)),
            Err(p) => problems.push(ImportProblem { line, ..p }),
        }
        if problems.len() >= 100 {
            break;
        }
    }
    if !problems.is_empty() {
        return Err(RegistryError::Import(problems));
    }
    if rows.is_empty() {
        return Err(RegistryError::Import(vec![ImportProblem { line: 1, field: "line", reason: "the file has no choices" }]));
    }

    let (vault, pseudonymizer) = niji_intake::open_vault(instance, &holder.audit).await?;
    let result = async {
        let version = vault.registry_version().await?;
        let actor = Actor::Holder { holder: holder.holder.clone() };
        // Entries so far per person, with the ones of this file added as they are validated.
        let mut known: HashMap<[u8; 32], Vec<Entry>> = HashMap::new();
        let mut new = Vec::with_capacity(rows.len());
        for (line, patient, choice) in &rows {
            let number = niji_privacy::normalize::insured_number(patient);
            let anchor = pseudonymizer.keyed(Domain::Anchor, &["local", &holder.holder, &number]);
            let Some(person) = vault.person_by_anchor(&anchor).await? else {
                problems.push(ImportProblem { line: *line, field: "patient_id", reason: "no patient with that number at this holder" });
                continue;
            };
            let entries = match known.entry(person.0) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(entries_of(&vault, &person, version).await?),
            };
            if niji_consent::validate(entries, &actor, choice, now).is_err() {
                problems.push(ImportProblem { line: *line, field: "choice", reason: "the choice cannot be recorded" });
                continue;
            }
            // Later lines of the same person see this one (ids beyond the stored ones).
            let id = version as u64 + new.len() as u64 + 1;
            entries.push(Entry { id, recorded_at: now, actor: actor.clone(), choice: choice.clone() });
            new.push((person, is_decisive(choice), body_of(&actor, choice)));
        }
        if !problems.is_empty() {
            return Err(RegistryError::Import(std::mem::take(&mut problems)));
        }
        let at = nanos(now);
        let entries: Vec<NewRegistryEntry<'_>> = new
            .iter()
            .map(|(person, decisive, body): &(PersonKey, bool, Vec<u8>)| NewRegistryEntry {
                person: *person,
                recorded_at: at,
                decisive: *decisive,
                body,
            })
            .collect();
        let ids = vault.append_registry_entries(&entries).await?;
        Ok(ids)
    }
    .await;
    vault.close().await;
    let ids = result?;
    log(
        instance,
        &holder.audit,
        now,
        "registry.imported",
        format!("holder:{}", holder.holder),
        serde_json::json!({"entries": ids.len(), "first": ids.first(), "last": ids.last()}),
    )?;
    Ok(ids.len())
}

fn parse_choice(choice: &str, scope: &str, date: &str, holder: &str) -> Result<Choice, ImportProblem> {
    let problem = |field, reason| ImportProblem { line: 0, field, reason };
    match choice {
        "opt_out" => {
            if !date.is_empty() && parse_date(date).is_none() {
                return Err(problem("date", "not a date (YYYY-MM-DD)"));
            }
            let scope = OptOutScope::parse(scope).ok_or_else(|| match scope.split_once(':') {
                Some(("purpose", _)) => problem("scope", "unknown purpose category"),
                Some(("recipient", _)) => problem("scope", "unknown recipient kind"),
                _ => problem("scope", "must be all, purpose:<category> or recipient:<kind>"),
            })?;
            Ok(Choice::OptOut { scope })
        }
        "notice" => {
            if !scope.is_empty() {
                return Err(problem("scope", "must be empty for a notice"));
            }
            let delivered_on = parse_date(date).ok_or(problem("date", "not a date (YYYY-MM-DD)"))?;
            Ok(Choice::NoticeDelivered { holder: holder.to_string(), delivered_on })
        }
        _ => Err(problem("choice", "must be opt_out or notice")),
    }
}
