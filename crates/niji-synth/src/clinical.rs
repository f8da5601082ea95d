//! A person's clinical course during the observation period: diseases drawn from
//! `diseases.tsv` by age band and sex, where each is treated (one of the world's hospitals,
//! or a clinic outside it that leaves no records here), the visits and admissions that
//! follow, the drugs prescribed for each disease (`drugs.tsv`), lab results at follow-up
//! (`labs.tsv`, moved by the diseases that move them) and allergies.
//!
//! Chronic diseases are followed at the interval of their prescriptions (28, 56, 90 days);
//! acute ones bring one or two visits and, for some, an admission. Visits stop at death;
//! most deaths of patients happen in their hospital.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::calendar::{add_days, age_on, days_between, ymd};
use crate::person::Person;
use crate::random::{person_rng, standard_normal, Aspect};
use crate::world::{band, World};

#[derive(Debug, Clone)]
pub(crate) struct Diagnosis {
    pub disease: usize,
    pub onset: Date,
    pub resolved: Option<Date>,
    /// The hospital treating it; `None` when it is treated elsewhere (no records here).
    pub hospital: Option<usize>,
    /// The regimen: drugs prescribed for it at every visit.
    pub drugs: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Prescription {
    pub drug: usize,
    pub days: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LabResult {
    pub lab: usize,
    pub value: f64,
}

/// An outpatient visit, or an admission when `discharge` is set.
#[derive(Debug, Clone)]
pub(crate) struct Visit {
    pub hospital: usize,
    pub day: Date,
    pub discharge: Option<Date>,
    /// 初診: the first visit of a new patient.
    pub first_at_hospital: bool,
    /// Indices into [`ClinicalCourse::diagnoses`] seen at this visit.
    pub diagnoses: Vec<u16>,
    pub prescriptions: Vec<Prescription>,
    pub labs: Vec<LabResult>,
    /// The person died at the end of this admission.
    pub died: bool,
    /// Imaging done on the day: 1 plain X-ray, 2 CT.
    pub imaging: u8,
}

impl Visit {
    pub(crate) fn last_day(&self) -> Date {
        self.discharge.unwrap_or(self.day)
    }
}

/// An allergy a hospital has on file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allergy {
    pub allergen: usize,
    pub hospital: usize,
    pub recorded: Date,
}

/// Allergens hospitals record: (category, JFAGY code or empty, display, text).
pub(crate) const ALLERGENS: &[(&str, &str, &str, &str)] = &[
    ("food", "J9FC11310000", "さば", "サバ"),
    ("food", "J9FA32540000", "キウイフルーツ", "キウイ"),
    ("food", "", "", "卵"),
    ("food", "", "", "小麦"),
    ("food", "", "", "えび"),
    ("food", "", "", "そば"),
    ("medication", "GCM2260701F1ZZZ", "ポビドンヨード含嗽用液７％", "ヨードうがい液"),
    ("medication", "", "", "ペニシリン系抗菌薬"),
    ("medication", "", "", "ヨード造影剤"),
    ("environment", "", "", "ラテックス"),
];

#[derive(Debug, Clone, Default)]
pub(crate) struct ClinicalCourse {
    pub diagnoses: Vec<Diagnosis>,
    /// Sorted by hospital, then day.
    pub visits: Vec<Visit>,
    pub allergy: Option<Allergy>,
    /// Hospitals with at least one visit, ascending.
    pub hospitals: Vec<usize>,
}

impl ClinicalCourse {
    /// Visits at one hospital (a contiguous run of `visits`).
    pub(crate) fn visits_at(&self, hospital: usize) -> &[Visit] {
        let lo = self.visits.partition_point(|v| v.hospital < hospital);
        let hi = self.visits.partition_point(|v| v.hospital <= hospital);
        &self.visits[lo..hi]
    }
}

/// Share of people with an allergy on file at their hospital.
const ALLERGY_SHARE: f64 = 0.08;
/// Share of deaths of hospital patients that happen in the hospital.
const DEATH_IN_HOSPITAL: f64 = 0.65;
/// Follow-up interval for a chronic disease without drug therapy.
const FOLLOW_UP_WITHOUT_DRUGS: u32 = 84;
/// Days between follow-up lab panels of a chronic patient.
const LAB_INTERVAL: i64 = 84;

pub(crate) fn draw_course(world: &World<'_>, person: &Person<'_>) -> ClinicalCourse {
    let mut rng = person_rng(world.seed, person.index, Aspect::Clinical);
    let t = world.tables;
    let period = world.period;
    let last = person.last_day(period.end);
    let sex = person.identity.sex.index();
    let birth = person.identity.birth;
    let age0 = age_on(birth, period.start);
    if last < period.start {
        return ClinicalCourse::default();
    }

    let pref = person.identity.address.prefecture;
    let choice = &world.hospital_choice[pref as usize];
    let primary = choice.sample(&mut rng);
    let secondary = choice.sample(&mut rng);
    let share = world.hospital_share;

    // Diseases, by age band and sex.
    let mut diagnoses = Vec::new();
    for (d, disease) in t.diseases.iter().enumerate() {
        if disease.chronic {
            let p = disease.prevalence[sex][band(world, age0)];
            if p <= 0.0 || !rng.gen_bool(p.min(1.0)) {
                continue;
            }
            // Most chronic diseases began before the period; some are new in it.
            let onset = if rng.gen_bool(0.85) {
                let back = rng.gen_range(30..15 * 365) as i64;
                add_days(period.start, -back).max(add_days(birth, 30))
            } else {
                add_days(period.start, rng.gen_range(0..days_between(period.start, period.end).max(1)))
            };
            if onset > last {
                continue;
            }
            let hospital = rng.gen_bool(share).then(|| if rng.gen_bool(0.8) { primary } else { secondary });
            let drugs = regimen(world, d, &mut rng);
            diagnoses.push(Diagnosis { disease: d, onset, resolved: None, hospital, drugs });
        } else {
            for year in period.start.year()..=period.end.year() {
                let year_start = ymd(year, 1, 1);
                let p = disease.prevalence[sex][band(world, age_on(birth, year_start))];
                if p <= 0.0 || !rng.gen_bool(p.min(1.0)) {
                    continue;
                }
                let onset = add_days(year_start, rng.gen_range(0..365));
                if onset > last || onset < birth {
                    continue;
                }
                let resolved = Some(add_days(onset, rng.gen_range(5..40)));
                let hospital = rng.gen_bool(share).then(|| if rng.gen_bool(0.6) { primary } else { choice.sample(&mut rng) });
                let drugs = regimen(world, d, &mut rng).into_iter().take(1).collect();
                diagnoses.push(Diagnosis { disease: d, onset, resolved, hospital, drugs });
            }
        }
    }

    let mut visits = Vec::new();
    let mut hospitals: Vec<usize> = diagnoses.iter().filter_map(|d| d.hospital).collect();
    hospitals.sort_unstable();
    hospitals.dedup();

    for &h in &hospitals {
        // Chronic follow-up: one schedule per hospital at the shortest prescription interval.
        let chronic: Vec<u16> =
            diagnoses.iter().enumerate().filter(|(_, d)| d.hospital == Some(h) && d.resolved.is_none()).map(|(i, _)| i as u16).collect();
        if !chronic.is_empty() {
            let interval = chronic
                .iter()
                .flat_map(|&i| diagnoses[i as usize].drugs.iter().map(|&g| t.drugs[g].days))
                .min()
                .unwrap_or(FOLLOW_UP_WITHOUT_DRUGS)
                .clamp(28, 120) as i64;
            let first_onset = chronic.iter().map(|&i| diagnoses[i as usize].onset).min().expect("non-empty");
            let new_patient = first_onset >= period.start;
            let mut day = if new_patient { first_onset } else { add_days(period.start, rng.gen_range(0..interval)) };
            let mut n = 0;
            let mut last_labs: Option<Date> = None;
            while day <= last {
                let seen: Vec<u16> = chronic.iter().copied().filter(|&i| diagnoses[i as usize].onset <= day).collect();
                let prescriptions = seen
                    .iter()
                    .flat_map(|&i| diagnoses[i as usize].drugs.iter())
                    .map(|&drug| Prescription { drug, days: t.drugs[drug].days })
                    .collect();
                // Follow-up labs about every three months.
                let labs_due = last_labs.is_none_or(|l| days_between(l, day) >= LAB_INTERVAL - 7);
                let labs = if labs_due {
                    last_labs = Some(day);
                    lab_panel(world, person, &diagnoses, &seen, day, &mut rng)
                } else {
                    Vec::new()
                };
                visits.push(Visit {
                    hospital: h,
                    day,
                    discharge: None,
                    first_at_hospital: new_patient && n == 0,
                    diagnoses: seen,
                    prescriptions,
                    labs,
                    died: false,
                    imaging: 0,
                });
                n += 1;
                day = add_days(day, interval + rng.gen_range(-3..=3));
            }
            // Admissions of chronic patients: more often in old age.
            for year in period.start.year()..=period.end.year() {
                let p = if age_on(birth, ymd(year, 1, 1)) >= 65 { 0.05 } else { 0.015 };
                if rng.gen_bool(p) {
                    let day = add_days(ymd(year, 1, 1), rng.gen_range(0..365));
                    if day >= first_onset && day <= last {
                        let stay = rng.gen_range(4..25);
                        visits.push(admission(world, person, &diagnoses, &chronic, h, day, stay, last, &mut rng));
                    }
                }
            }
        }
        // Acute episodes: a visit, sometimes a follow-up, sometimes an admission.
        for (i, d) in diagnoses.iter().enumerate() {
            if d.hospital != Some(h) || d.resolved.is_none() || d.onset < period.start {
                continue;
            }
            let old = age_on(birth, d.onset) >= 65;
            if rng.gen_bool(if old { 0.12 } else { 0.03 }) {
                let stay = rng.gen_range(3..21);
                visits.push(admission(world, person, &diagnoses, &[i as u16], h, d.onset, stay, last, &mut rng));
                continue;
            }
            let prescriptions = d.drugs.iter().map(|&drug| Prescription { drug, days: t.drugs[drug].days }).collect();
            let labs = if rng.gen_bool(0.3) { lab_panel(world, person, &diagnoses, &[i as u16], d.onset, &mut rng) } else { Vec::new() };
            // Injuries and pneumonia are X-rayed.
            let icd = &t.diseases[d.disease].icd10;
            let imaging = (icd.starts_with('S') || icd.starts_with("J18")) as u8;
            visits.push(Visit {
                hospital: h,
                day: d.onset,
                discharge: None,
                first_at_hospital: false,
                diagnoses: vec![i as u16],
                prescriptions,
                labs,
                died: false,
                imaging,
            });
            if rng.gen_bool(0.5) {
                let day = add_days(d.onset, rng.gen_range(5..15));
                if day <= last {
                    visits.push(Visit {
                        hospital: h,
                        day,
                        discharge: None,
                        first_at_hospital: false,
                        diagnoses: vec![i as u16],
                        prescriptions: Vec::new(),
                        labs: Vec::new(),
                        died: false,
                        imaging: 0,
                    });
                }
            }
        }
    }

    // Most patients who die do so in their hospital, after a last admission.
    if let (Some(death), Some(&h)) = (person.death, hospitals.first()) {
        let h = if hospitals.contains(&primary) { primary } else { h };
        if death >= period.start && death <= period.end && rng.gen_bool(DEATH_IN_HOSPITAL) {
            let stay = rng.gen_range(2..30);
            let day = add_days(death, -stay).max(period.start);
            let active: Vec<u16> = diagnoses
                .iter()
                .enumerate()
                .filter(|(_, d)| d.hospital == Some(h) && d.onset <= death && d.resolved.is_none_or(|r| r >= day))
                .map(|(i, _)| i as u16)
                .collect();
            let mut v = admission(world, person, &diagnoses, &active, h, day, days_between(day, death) as u32, death, &mut rng);
            v.discharge = Some(death);
            v.died = true;
            visits.push(v);
        }
    }

    visits.retain(|v| v.day >= period.start && v.day <= last);
    visits.sort_by_key(|v| (v.hospital, v.day));
    // One record per hospital and day: merge same-day visits (an admission absorbs a visit).
    let mut merged: Vec<Visit> = Vec::with_capacity(visits.len());
    for v in visits {
        match merged.last_mut() {
            Some(m) if m.hospital == v.hospital && m.day == v.day => {
                m.first_at_hospital |= v.first_at_hospital;
                m.died |= v.died;
                m.imaging |= v.imaging;
                if v.discharge.is_some() && m.discharge.is_none_or(|d| Some(d) < v.discharge) {
                    m.discharge = v.discharge;
                }
                for d in v.diagnoses {
                    if !m.diagnoses.contains(&d) {
                        m.diagnoses.push(d);
                    }
                }
                for p in v.prescriptions {
                    if !m.prescriptions.iter().any(|q| q.drug == p.drug) {
                        m.prescriptions.push(p);
                    }
                }
                for l in v.labs {
                    if !m.labs.iter().any(|k| k.lab == l.lab) {
                        m.labs.push(l);
                    }
                }
            }
            // An outpatient visit during an admission is part of the stay.
            Some(m) if m.hospital == v.hospital && m.discharge.is_some_and(|d| v.day <= d) => {
                for d in v.diagnoses {
                    if !m.diagnoses.contains(&d) {
                        m.diagnoses.push(d);
                    }
                }
            }
            _ => merged.push(v),
        }
    }
    let visits = merged;
    let mut hospitals: Vec<usize> = visits.iter().map(|v| v.hospital).collect();
    hospitals.dedup();

    let allergy = match hospitals.first() {
        Some(&h) if rng.gen_bool(ALLERGY_SHARE) => {
            let first = visits.iter().find(|v| v.hospital == h).map_or(period.start, |v| v.day);
            Some(Allergy { allergen: rng.gen_range(0..ALLERGENS.len()), hospital: h, recorded: first })
        }
        _ => None,
    };
    ClinicalCourse { diagnoses, visits, allergy, hospitals }
}

/// One or two drugs of the disease's list (none if it has none).
fn regimen(world: &World<'_>, disease: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let options = &world.clinical.drugs_by_disease[disease];
    match options.len() {
        0 => Vec::new(),
        1 => vec![options[0]],
        n => {
            let first = options[rng.gen_range(0..n)];
            if rng.gen_bool(0.3) {
                let second = options[rng.gen_range(0..n)];
                if second != first {
                    return vec![first, second];
                }
            }
            vec![first]
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn admission(
    world: &World<'_>,
    person: &Person<'_>,
    diagnoses: &[Diagnosis],
    seen: &[u16],
    hospital: usize,
    day: Date,
    stay: u32,
    last: Date,
    rng: &mut ChaCha8Rng,
) -> Visit {
    let discharge = add_days(day, stay as i64).min(last).max(day);
    let days = days_between(day, discharge).max(1) as u32;
    let prescriptions = seen.iter().flat_map(|&i| diagnoses[i as usize].drugs.iter()).map(|&drug| Prescription { drug, days }).collect();
    let labs = lab_panel(world, person, diagnoses, seen, day, rng);
    let imaging = rng.gen_bool(0.6) as u8 | (rng.gen_bool(0.15) as u8) << 1;
    Visit { hospital, day, discharge: Some(discharge), first_at_hospital: false, diagnoses: seen.to_vec(), prescriptions, labs, died: false, imaging }
}

/// Share of a panel's other tests ordered anyway (a general check).
const GENERAL_CHECK: f64 = 0.1;

/// The routine panel, the tests of the diseases seen and now and then other tests, valued
/// for this person: drawn around the sex's mean, moved by the disease that moves the test
/// if the person has it that day, clamped to the plausible range.
fn lab_panel(world: &World<'_>, person: &Person<'_>, diagnoses: &[Diagnosis], seen: &[u16], day: Date, rng: &mut ChaCha8Rng) -> Vec<LabResult> {
    let t = world.tables;
    let index = &world.clinical;
    let s = person.identity.sex.index();
    let mut results = Vec::with_capacity(index.routine_labs.len() + 4);
    for (l, lab) in t.labs.iter().enumerate() {
        let wanted = match index.lab_disease[l] {
            None => true,
            Some(d) => seen.iter().any(|&i| diagnoses[i as usize].disease == d) || rng.gen_bool(GENERAL_CHECK),
        };
        if !wanted {
            continue;
        }
        let mut value = lab.mean[s] + lab.sd[s] * standard_normal(rng);
        if let Some(d) = index.lab_disease[l] {
            if diagnoses.iter().any(|x| x.disease == d && x.onset <= day && x.resolved.is_none_or(|r| r >= day)) {
                value += lab.disease_shift;
            }
        }
        results.push(LabResult { lab: l, value: value.clamp(lab.low, lab.high) });
    }
    results
}

/// Decimal places to show a lab's values with, from its spread.
pub(crate) fn lab_decimals(sd: f64) -> u32 {
    if sd >= 10.0 {
        0
    } else if sd >= 0.5 {
        1
    } else {
        2
    }
}
