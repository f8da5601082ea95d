//! A 学会 (medical society) disease registry as it exports to spreadsheets: UTF-8 CSV with a
//! header, `csv/persons.csv` (one row per enrolled patient, with the identifying fields the
//! participating hospital's staff typed in) and `csv/events.csv` (diagnosis, lab results,
//! drug starts, admissions, death). Each facility's staff have their own habits for names
//! and dates (和暦 or 西暦, half-width kana), so registry rows differ from the same
//! person's hospital records.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::calendar::{push_iso, push_slashed, push_wareki_kanji, push_wareki_short};
use crate::clinical::ClinicalCourse;
use crate::noise::{source_address, source_name, source_phone};
use crate::output::ChunkOutput;
use crate::person::{Person, Sex};
use crate::text::{push_csv_field, push_decimal, push_padded};
use crate::world::{RegistryDate, World};

pub(crate) const PERSONS_HEADER: &str =
    "registry_id,facility_code,name,name_kana,sex,birth_date,postal_code,address,phone,disease_icd10,diagnosed_on,enrolled_on\n";
pub(crate) const EVENTS_HEADER: &str = "registry_id,event_date,event,code_system,code,name,value,unit\n";

/// Share of eligible patients a participating hospital enrols.
const ENROLMENT_SHARE: f64 = 0.7;

/// Enrols the person if a registry disease of theirs is treated at one of the world's
/// hospitals, and writes their row and events.
pub(crate) fn push_registry(world: &World<'_>, person: &Person<'_>, course: &ClinicalCourse, rng: &mut ChaCha8Rng, out: &mut ChunkOutput) {
    let t = world.tables;
    let Some((d, diagnosis)) =
        course.diagnoses.iter().enumerate().find(|(_, d)| d.hospital.is_some() && world.registry_diseases.contains(&d.disease))
    else {
        return;
    };
    let h = diagnosis.hospital.expect("treated at a hospital");
    let Some(first_visit) = course.visits_at(h).iter().find(|v| v.diagnoses.contains(&(d as u16))) else {
        return;
    };
    if !rng.gen_bool(ENROLMENT_SHARE) {
        return;
    }
    let hospital = &world.hospitals[h];
    let style = &hospital.registry_style;
    let registry_id = {
        let mut id = b"REG".to_vec();
        push_padded(&mut id, world.registry_number(person.index), 10);
        String::from_utf8(id).expect("ascii")
    };
    let enrolled = first_visit.day;
    let name = source_name(person, enrolled, style, rng);
    let address = source_address(world, person, style);
    let phone = source_phone(person, style, rng);
    let disease = &t.diseases[diagnosis.disease];

    let row = &mut out.registry_persons;
    push_csv_field(row, &registry_id);
    row.push(b',');
    row.extend_from_slice(hospital.code.as_bytes());
    row.push(b',');
    push_csv_field(row, &name.kanji());
    row.push(b',');
    push_csv_field(row, &name.kana());
    row.push(b',');
    row.extend_from_slice(match (person.identity.sex, style.registry_date) {
        (Sex::Male, RegistryDate::WarekiKanji | RegistryDate::WarekiShort) => "男".as_bytes(),
        (Sex::Female, RegistryDate::WarekiKanji | RegistryDate::WarekiShort) => "女".as_bytes(),
        (Sex::Male, _) => b"M",
        (Sex::Female, _) => b"F",
    });
    row.push(b',');
    match style.registry_date {
        RegistryDate::Iso => push_iso(row, person.identity.birth),
        RegistryDate::Slashed => push_slashed(row, person.identity.birth),
        RegistryDate::WarekiKanji => push_wareki_kanji(row, person.identity.birth),
        RegistryDate::WarekiShort => push_wareki_short(row, person.identity.birth),
    }
    row.push(b',');
    row.extend_from_slice(address.postal_code.as_bytes());
    row.push(b',');
    push_csv_field(row, &address.text);
    row.push(b',');
    if let Some(p) = &phone {
        push_csv_field(row, p);
    }
    row.push(b',');
    push_csv_field(row, &disease.icd10);
    row.push(b',');
    push_iso(row, diagnosis.onset);
    row.push(b',');
    push_iso(row, enrolled);
    row.push(b'\n');
    out.registry_ids.push((person.index, registry_id.clone()));

    // Events: the diagnosis, then what happened at the facility, then death.
    let mut events = 0u64;
    let ev = &mut out.registry_events;
    let mut event = |ev: &mut Vec<u8>, date: time::Date, kind: &str, system: &str, code: &str, name: &str, value: Option<(f64, u32)>, unit: &str| {
        push_csv_field(ev, &registry_id);
        ev.push(b',');
        push_iso(ev, date);
        ev.push(b',');
        ev.extend_from_slice(kind.as_bytes());
        ev.push(b',');
        ev.extend_from_slice(system.as_bytes());
        ev.push(b',');
        push_csv_field(ev, code);
        ev.push(b',');
        push_csv_field(ev, name);
        ev.push(b',');
        if let Some((v, decimals)) = value {
            push_decimal(ev, v, decimals);
        }
        ev.push(b',');
        push_csv_field(ev, unit);
        ev.push(b'\n');
        events += 1;
    };
    event(ev, diagnosis.onset, "diagnosis", "ICD10", &disease.icd10, &disease.name_ja, None, "");
    let mut started: Vec<usize> = Vec::new();
    for v in course.visits_at(h).iter().filter(|v| v.day >= enrolled) {
        if let Some(discharge) = v.discharge {
            event(ev, v.day, "admission", "", "", "", Some((crate::calendar::days_between(v.day, discharge) as f64, 0)), "日");
        }
        for lab in &v.labs {
            let l = &t.labs[lab.lab];
            event(ev, v.day, "lab", "JLAC10", &l.jlac10, &l.name_ja, Some((lab.value, crate::clinical::lab_decimals(l.sd[0].min(l.sd[1])))), &l.unit);
        }
        for p in &v.prescriptions {
            if !started.contains(&p.drug) {
                started.push(p.drug);
                let drug = &t.drugs[p.drug];
                event(ev, v.day, "drug_start", "YJ", &drug.yj_code, &drug.name_ja, None, "");
            }
        }
    }
    if let Some(death) = person.death.filter(|&d| d <= world.period.end) {
        event(ev, death, "death", "", "", "", None, "");
    }
    out.counts.registry_events += events;
}
