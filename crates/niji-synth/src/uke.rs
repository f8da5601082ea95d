//! レセプト電算処理 (UKE) claim files, 医科 layout as in the published sample
//! (`shared/datasets/uke`): Shift_JIS, CRLF, comma-separated without quoting, one file per
//! hospital and month of care (`uke/<医療機関コード>/<YYYYMM>.UKE`).
//!
//! Records and their field counts: IR (医療機関, 10), then per claim RE (レセプト共通, 38),
//! HO (医療保険, 15), KO (公費, 12) for each public payer, SN (資格確認: 枝番, 9), SY
//! (傷病名, 8), SI (診療行為, 44), IY (医薬品, 44) and CO (コメント, 5) in 診療識別 order,
//! and GO (trailer, 4) at the end. Dates are 西暦 `YYYYMMDD`; holders with an old レセコン
//! write the birth date as 和暦 `GYYMMDD`.
//!
//! Codes missing from the reference tables are handled as UKE does: a disease without a
//! レセ電 傷病名コード becomes 0000999 (未コード化傷病名) with its name; a drug without a
//! レセ電 医薬品コード is left off the claim.

use std::borrow::Cow;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::calendar::{add_days, days_between, month_index, month_start, push_wareki_code, push_yyyymm, push_yyyymmdd};
use crate::clinical::{ClinicalCourse, Visit};
use crate::noise::source_name;
use crate::output::{ClaimMeta, UkeBatch};
use crate::person::{AidKind, Person, Sex};
use crate::sjis;
use crate::text::{push_2d, push_decimal, push_padded, push_u64};
use crate::world::{Hospital, InsurerKind, World};

/// Share of claims whose clerk added a free-text comment naming a relative.
const RELATIVE_COMMENT_RATE: f64 = 0.03;

/// Procedure keys of `procedures.tsv` the claims use; a key missing from the table is
/// simply not billed.
#[derive(Debug, Default)]
pub(crate) struct Procedures {
    first_visit: Option<usize>,
    revisit: Option<usize>,
    outpatient_management: Option<usize>,
    prescription_fee: Option<usize>,
    prescription_slip_fee: Option<usize>,
    venous_blood_draw: Option<usize>,
    cbc: Option<usize>,
    hba1c: Option<usize>,
    crp: Option<usize>,
    judgement_hematology: Option<usize>,
    judgement_biochem: Option<usize>,
    judgement_immunology: Option<usize>,
    lab_management: Option<usize>,
    xray: [Option<usize>; 3],
    ct: [Option<usize>; 2],
    inpatient_day: Option<usize>,
    /// 診療識別 (21 内服 / 23 外用) and 点数 per day of each drug.
    drugs: Vec<(&'static str, u32)>,
    /// Billing group of each lab.
    lab_groups: Vec<LabGroup>,
}

impl Procedures {
    pub(crate) fn new(world_tables: &crate::tables::Tables) -> Self {
        let find = |key: &str| world_tables.procedures.iter().position(|p| p.key == key && !p.receden_code.is_empty());
        Self {
            first_visit: find("first_visit"),
            revisit: find("revisit"),
            outpatient_management: find("outpatient_management"),
            prescription_fee: find("prescription_fee"),
            prescription_slip_fee: find("prescription_slip_fee"),
            venous_blood_draw: find("venous_blood_draw"),
            cbc: find("cbc"),
            hba1c: find("hba1c"),
            crp: find("crp"),
            judgement_hematology: find("judgement_hematology"),
            judgement_biochem: find("judgement_biochem1"),
            judgement_immunology: find("judgement_immunology"),
            lab_management: find("lab_management_1"),
            xray: [find("xray_digital"), find("xray_diagnosis"), find("xray_image_management")],
            ct: [find("ct_scan"), find("ct_image_management")],
            inpatient_day: find("acute_inpatient_1"),
            drugs: world_tables.drugs.iter().map(|d| (drug_kind(&d.name_ja, &d.dose_unit), drug_points(&d.key, d.daily_dose))).collect(),
            lab_groups: world_tables.labs.iter().map(|l| lab_group(&l.key)).collect(),
        }
    }
}

/// Which billing group a lab test falls in, by its key in `labs.tsv`.
#[derive(Debug, Clone, Copy)]
enum LabGroup {
    Hematology,
    HbA1c,
    Immunology,
    Biochemistry,
}

fn lab_group(key: &str) -> LabGroup {
    match key {
        "hb" | "wbc" | "plt" | "rbc" | "ht" => LabGroup::Hematology,
        "hba1c" => LabGroup::HbA1c,
        "crp" => LabGroup::Immunology,
        _ => LabGroup::Biochemistry,
    }
}

/// `IR`: the hospital record that opens a file. `billing` is the 請求年月.
pub(crate) fn push_ir(buf: &mut Vec<u8>, hospital: &Hospital, billing: Date) {
    let mut line = Vec::with_capacity(128);
    line.extend_from_slice(b"IR,1,");
    line.extend_from_slice(&hospital.code.as_bytes()[..2]);
    line.extend_from_slice(b",1,");
    line.extend_from_slice(hospital.institution_number().as_bytes());
    line.extend_from_slice(b",,");
    push_sjis(&mut line, &hospital.name);
    line.push(b',');
    push_yyyymm(&mut line, billing);
    line.extend_from_slice(b",00,");
    line.extend(hospital.phone.bytes().filter(u8::is_ascii_digit));
    line.extend_from_slice(b"\r\n");
    buf.extend_from_slice(&line);
}

/// `GO`: the trailer with the number of claims and their total points.
pub(crate) fn push_go(buf: &mut Vec<u8>, claims: u64, points: u64) {
    buf.extend_from_slice(b"GO,");
    push_u64(buf, claims);
    buf.push(b',');
    push_u64(buf, points);
    buf.extend_from_slice(b",99\r\n");
}

/// Encodes UTF-8 text as Shift_JIS onto `buf` (〓 for what it cannot hold).
fn push_sjis(buf: &mut Vec<u8>, text: &str) {
    sjis::push(buf, text);
}

/// Appends ASCII letters and digits as their full-width Shift_JIS forms (UKE's 記号・番号
/// fields); other characters are encoded as they are.
fn push_fullwidth_sjis(buf: &mut Vec<u8>, text: &str) {
    let mut tmp = [0u8; 4];
    for ch in text.chars() {
        match ch {
            '0'..='9' => buf.extend_from_slice(&[0x82, 0x4F + (ch as u8 - b'0')]),
            'A'..='Z' => buf.extend_from_slice(&[0x82, 0x60 + (ch as u8 - b'A')]),
            'a'..='z' => buf.extend_from_slice(&[0x82, 0x81 + (ch as u8 - b'a')]),
            '-' => buf.extend_from_slice(&[0x81, 0x7C]),
            _ => push_sjis(buf, ch.encode_utf8(&mut tmp)),
        }
    }
}

/// A claim's records after RE and its insurance records, in Shift_JIS.
struct ClaimBody<'b> {
    bytes: &'b mut Vec<u8>,
    lines: u32,
    points: u64,
}

impl ClaimBody<'_> {
    fn end_line(&mut self) {
        self.bytes.extend_from_slice(b"\r\n");
        self.lines += 1;
    }
}

fn push_insurer_number(out: &mut Vec<u8>, number: &niji_core::InsurerNumber) {
    out.extend(number.digits().iter().map(|d| b'0' + d));
}

/// Per-day counts (1日 … 31日) of an SI or IY line.
type DayCounts = [u32; 31];

/// Appends `,回数` for each of the 31 days.
fn push_days(out: &mut Vec<u8>, days: &DayCounts) {
    for &d in days {
        out.push(b',');
        if d > 0 {
            push_u64(out, d as u64);
        }
    }
}

/// `SI,診療識別,負担区分,コード,数量,点数,回数,コメント×6,1日…31日`.
fn si(claim: &mut ClaimBody<'_>, kind: &str, payer: u8, code: &str, points: u32, days: &DayCounts) {
    let count: u32 = days.iter().sum();
    if count == 0 {
        return;
    }
    let b = &mut *claim.bytes;
    b.extend_from_slice(b"SI,");
    b.extend_from_slice(kind.as_bytes());
    b.push(b',');
    b.push(payer);
    b.push(b',');
    b.extend_from_slice(code.as_bytes());
    b.extend_from_slice(b",,");
    push_u64(b, points as u64);
    b.push(b',');
    push_u64(b, count as u64);
    b.extend_from_slice(b",,,,,,");
    push_days(b, days);
    claim.points += points as u64 * count as u64;
    claim.end_line();
}

/// `IY,診療識別,負担区分,コード,使用量,点数,回数,コメント×6,1日…31日`.
#[allow(clippy::too_many_arguments)]
fn iy(claim: &mut ClaimBody<'_>, kind: &str, payer: u8, code: &str, dose: f64, points: u32, days: &DayCounts) {
    let count: u32 = days.iter().sum();
    if count == 0 {
        return;
    }
    let b = &mut *claim.bytes;
    b.extend_from_slice(b"IY,");
    b.extend_from_slice(kind.as_bytes());
    b.push(b',');
    b.push(payer);
    b.push(b',');
    b.extend_from_slice(code.as_bytes());
    b.push(b',');
    push_decimal(b, dose, if dose.fract() == 0.0 { 0 } else { 1 });
    b.push(b',');
    push_u64(b, points as u64);
    b.push(b',');
    push_u64(b, count as u64);
    b.extend_from_slice(b",,,,,,");
    push_days(b, days);
    claim.points += points as u64 * count as u64;
    claim.end_line();
}

/// 診療識別 of a drug: 21 内服, 23 外用.
fn drug_kind(name: &str, unit: &str) -> &'static str {
    let external = ["軟膏", "クリーム", "テープ", "パップ", "坐剤", "吸入", "点眼", "ローション", "貼付"];
    if external.iter().any(|w| name.contains(w)) || unit == "枚" || unit == "吸入" {
        "23"
    } else {
        "21"
    }
}

/// 薬価 of a drug in yen per unit: not in the tables, so a stable made-up price.
fn drug_points(key: &str, daily_dose: f64) -> u32 {
    let h = key.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    let price = 10.0 + (h % 2000) as f64 / 10.0;
    ((price * daily_dose) / 10.0).round().max(1.0) as u32
}

/// Renders the claims of one patient at one hospital, one per month with care, into the
/// chunk's batches (one per hospital and month).
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_claims(
    world: &World<'_>,
    procedures: &Procedures,
    hospital_index: usize,
    person: &Person<'_>,
    course: &ClinicalCourse,
    visits: &[Visit],
    rng: &mut ChaCha8Rng,
    batches: &mut [UkeBatch],
    scratch: &mut Vec<u8>,
) {
    let period = world.period;
    let months = period.months as usize;
    // Months touched by any visit or stay.
    let mut touched = vec![false; months];
    for v in visits {
        let first = month_index(period.start_year, v.day);
        let last = month_index(period.start_year, v.last_day().min(period.end));
        for m in first..=last {
            if (m as usize) < months {
                touched[m as usize] = true;
            }
        }
    }
    for m in (0..months).filter(|&m| touched[m]) {
        let start = month_start(period.start_year, m as u32);
        let end = add_days(month_start(period.start_year, m as u32 + 1), -1);
        let batch = &mut batches[hospital_index * months + m];
        let before = batch.bytes.len();
        let claim = Claim { world, procedures, hospital: &world.hospitals[hospital_index], person, course, visits, start, end };
        if let Some((lines, points)) = claim.render(rng, &mut batch.bytes, scratch) {
            batch.claims.push(ClaimMeta { len: batch.bytes.len() - before, lines, points, person: person.index });
        }
    }
}

/// One month of one patient's care at one hospital.
struct Claim<'a, 't> {
    world: &'a World<'t>,
    procedures: &'a Procedures,
    hospital: &'a Hospital,
    person: &'a Person<'t>,
    course: &'a ClinicalCourse,
    visits: &'a [Visit],
    start: Date,
    end: Date,
}

impl Claim<'_, '_> {
    /// Appends the claim (from the field after the レセプト番号) to `out`; returns its
    /// number of lines and points, or `None` when there is nothing to bill or no payer.
    fn render(&self, rng: &mut ChaCha8Rng, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Option<(u32, u64)> {
        let (world, person, hospital) = (self.world, self.person, self.hospital);
        let (start, end) = (self.start, self.end);
        let t = world.tables;
        let month_visits: Vec<&Visit> = self.visits.iter().filter(|v| v.day <= end && v.last_day() >= start).collect();
        if month_visits.is_empty() {
            return None;
        }
        let inpatient = month_visits.iter().any(|v| v.discharge.is_some());
        let first_day = month_visits.iter().map(|v| v.day.max(start)).min().expect("visits");

        // Who pays: insurance (HO), public aid (KO), or aid alone (公費単独).
        let coverage = person.coverage_on(first_day);
        let aid = person.aid_on(first_day);
        if coverage.is_none() && aid.is_none() {
            return None;
        }
        let age = person.age_on(first_day);
        let payer = match (coverage, aid) {
            (Some(_), Some(_)) => b'2',
            (Some(_), None) => b'1',
            (None, _) => b'5',
        };

        scratch.clear();
        let mut body = ClaimBody { bytes: scratch, lines: 0, points: 0 };
        self.push_diagnoses(&mut body);
        self.push_care(&mut body, &month_visits, payer);
        if rng.gen_bool(RELATIVE_COMMENT_RATE) {
            let comment = fold(t, &relative_comment(world, person, first_day, rng)).into_owned();
            body.bytes.extend_from_slice(b"CO,80,");
            body.bytes.push(payer);
            body.bytes.extend_from_slice(b",810000001,");
            push_sjis(body.bytes, &comment);
            body.end_line();
        }
        let (body_lines, total) = (body.lines, body.points);

        // RE (the file writer puts "RE,<レセプト番号>," in front).
        let style = &hospital.style;
        let name = source_name(person, first_day, style, rng);
        push_u64(out, receipt_kind(world, person, coverage, aid, age, inpatient) as u64);
        out.push(b',');
        push_yyyymm(out, start);
        out.push(b',');
        push_sjis(out, &fold(t, &name.family_kanji));
        push_sjis(out, style.name_separator);
        push_sjis(out, &fold(t, name.given_kanji));
        out.push(b',');
        out.push(if person.identity.sex == Sex::Male { b'1' } else { b'2' });
        out.push(b',');
        if rng.gen_bool(style.wareki_share) {
            push_wareki_code(out, person.identity.birth);
        } else {
            push_yyyymmdd(out, person.identity.birth);
        }
        out.push(b',');
        // 給付割合 (国保 and 後期 only).
        if let Some(cov) = coverage {
            match world.insurers.all[cov.insurer].kind {
                InsurerKind::Kokuho => out.extend_from_slice(if (6..70).contains(&age) { b"70" } else { b"80" }),
                InsurerKind::Koki => out.extend_from_slice(if person.index % 10 == 0 { b"70" } else { b"90" }),
                _ => {}
            }
        }
        out.push(b',');
        if let Some(admitted) = month_visits.iter().find(|v| v.discharge.is_some()).map(|v| v.day) {
            push_yyyymmdd(out, admitted);
        }
        out.extend_from_slice(b",,,,,"); // 病棟区分, 一部負担金区分, 特記事項, 病床数
        push_padded(out, hospital.patient_number(person.index), 10); // カルテ番号
        out.extend_from_slice(&[b','; 23]); // 割引点数単価 … 診療科３
        push_sjis(out, &fold(t, &name.family_kana));
        push_sjis(out, name.kana_separator);
        push_sjis(out, &fold(t, &name.given_kana));
        out.extend_from_slice(b",\r\n");
        let mut lines = 1;

        // HO, KO and SN, now that the points are known.
        let days = self.actual_days(&month_visits);
        if let Some(cov) = coverage {
            out.extend_from_slice(b"HO,");
            push_insurer_number(out, &world.insurers.all[cov.insurer].number);
            out.push(b',');
            push_fullwidth_sjis(out, &fold(t, &cov.kigo));
            out.push(b',');
            push_fullwidth_sjis(out, &cov.bango);
            out.push(b',');
            push_u64(out, days);
            out.push(b',');
            push_u64(out, total);
            out.extend_from_slice(b",,,,,,,,,\r\n");
            lines += 1;
        }
        if let Some(aid) = aid {
            // 公費負担金額: what the aid pays of the patient's share (none under 生活保護,
            // which pays everything without a patient share).
            let share = match aid.kind {
                AidKind::Welfare => 0,
                _ => total * if age < 6 { 2 } else { 3 } / 10 * 10,
            };
            out.extend_from_slice(b"KO,");
            push_insurer_number(out, &aid.payer);
            out.push(b',');
            out.extend_from_slice(aid.recipient.as_bytes());
            out.extend_from_slice(b",,");
            push_u64(out, days);
            out.push(b',');
            push_u64(out, total);
            out.push(b',');
            push_u64(out, share);
            out.extend_from_slice(b",,,,,\r\n");
            lines += 1;
        }
        if let Some(edaban) = coverage.and_then(|c| c.edaban) {
            out.extend_from_slice(b"SN,1,01,,,,");
            push_2d(out, edaban);
            out.extend_from_slice(b",,\r\n");
            lines += 1;
        }
        out.extend_from_slice(scratch);
        Some((lines + body_lines, total))
    }

    /// 診療実日数: days with a visit or in a bed this month.
    fn actual_days(&self, month_visits: &[&Visit]) -> u64 {
        let mut days = [false; 31];
        for v in month_visits {
            let mut d = v.day.max(self.start);
            let to = v.last_day().min(self.end);
            while d <= to {
                days[(d.day() - 1) as usize] = true;
                d = add_days(d, 1);
            }
        }
        days.iter().filter(|d| **d).count() as u64
    }

    /// SY: diseases seen at this hospital up to the end of the month and still open at its
    /// start; the first is the 主傷病.
    fn push_diagnoses(&self, body: &mut ClaimBody<'_>) {
        let t = self.world.tables;
        let mut seen: Vec<u16> = self.visits.iter().filter(|v| v.day <= self.end).flat_map(|v| v.diagnoses.iter().copied()).collect();
        seen.sort_unstable();
        seen.dedup();
        let died_this_month = self.person.death.is_some_and(|d| d >= self.start && d <= self.end);
        let mut main_done = false;
        for d in seen {
            let diagnosis = &self.course.diagnoses[d as usize];
            if diagnosis.resolved.is_some_and(|r| r < self.start) {
                continue;
            }
            let disease = &t.diseases[diagnosis.disease];
            let outcome = if diagnosis.resolved.is_some_and(|r| r <= self.end) {
                b'2'
            } else if died_this_month && !main_done {
                b'3'
            } else {
                b'1'
            };
            let b = &mut *body.bytes;
            b.extend_from_slice(b"SY,");
            let coded = !disease.receden_code.is_empty();
            b.extend_from_slice(if coded { disease.receden_code.as_bytes() } else { b"0000999" });
            b.push(b',');
            push_yyyymmdd(b, diagnosis.onset);
            b.push(b',');
            b.push(outcome);
            b.extend_from_slice(b",,");
            if !coded {
                push_sjis(b, &disease.name_ja);
            }
            b.push(b',');
            if !main_done {
                b.extend_from_slice(b"01");
                main_done = true;
            }
            b.push(b',');
            body.end_line();
        }
    }

    /// SI and IY in 診療識別 order: 初診/再診, drugs and their fees, labs, imaging, beds.
    fn push_care(&self, body: &mut ClaimBody<'_>, month_visits: &[&Visit], payer: u8) {
        let t = self.world.tables;
        let p = &t.procedures;
        let procedures = self.procedures;
        let (start, end) = (self.start, self.end);
        let day_of = |d: Date| (d.day() - 1) as usize;
        let mut first = [0u32; 31];
        let mut revisit = [0u32; 31];
        let mut rx_days = [0u32; 31];
        let mut lab_days = [0u32; 31];
        let mut inpatient_days = [0u32; 31];
        let mut xray = [0u32; 31];
        let mut ct = [0u32; 31];
        let mut groups = [false; 4];
        for v in month_visits {
            let in_range = v.day >= start;
            if v.discharge.is_none() {
                if v.first_at_hospital {
                    first[day_of(v.day)] += 1;
                } else {
                    revisit[day_of(v.day)] += 1;
                }
                if !v.prescriptions.is_empty() {
                    rx_days[day_of(v.day)] += 1;
                }
            } else {
                let mut d = v.day.max(start);
                let to = v.last_day().min(end);
                while d <= to {
                    inpatient_days[day_of(d)] += 1;
                    d = add_days(d, 1);
                }
            }
            if in_range && !v.labs.is_empty() {
                lab_days[day_of(v.day)] += 1;
                for l in &v.labs {
                    groups[procedures.lab_groups[l.lab] as usize] = true;
                }
            }
            if in_range && v.imaging & 1 != 0 {
                xray[day_of(v.day)] += 1;
            }
            if in_range && v.imaging & 2 != 0 {
                ct[day_of(v.day)] += 1;
            }
        }
        let bill = |body: &mut ClaimBody<'_>, kind: &str, proc: Option<usize>, days: &DayCounts| {
            if let Some(i) = proc {
                si(body, kind, payer, &p[i].receden_code, p[i].points, days);
            }
        };
        bill(body, "11", procedures.first_visit, &first);
        bill(body, "12", procedures.revisit, &revisit);
        bill(body, "12", procedures.outpatient_management, &revisit);

        // Drugs: 院内 outpatient prescriptions and every inpatient prescription, one line
        // per drug with the days supplied on each prescription day.
        let mut dispensed: Vec<(usize, DayCounts)> = Vec::new();
        for v in month_visits {
            let inpatient_visit = v.discharge.is_some();
            if !inpatient_visit && (!self.hospital.in_house_dispensing || v.day < start) {
                continue;
            }
            for rx in &v.prescriptions {
                let drug = &t.drugs[rx.drug];
                if drug.receden_code.is_empty() {
                    continue;
                }
                let i = match dispensed.iter().position(|(d, _)| *d == rx.drug) {
                    Some(i) => i,
                    None => {
                        dispensed.push((rx.drug, [0; 31]));
                        dispensed.len() - 1
                    }
                };
                let days = &mut dispensed[i].1;
                if inpatient_visit {
                    let from = v.day.max(start);
                    let to = add_days(v.day, rx.days as i64 - 1).min(v.last_day()).min(end);
                    if to >= from {
                        days[day_of(from)] += days_between(from, to) as u32 + 1;
                    }
                } else {
                    days[day_of(v.day)] += rx.days;
                }
            }
        }
        for (d, days) in &dispensed {
            let drug = &t.drugs[*d];
            let (kind, points) = procedures.drugs[*d];
            iy(body, kind, payer, &drug.receden_code, drug.daily_dose, points, days);
        }
        if self.hospital.in_house_dispensing {
            if !dispensed.is_empty() {
                bill(body, "25", procedures.prescription_fee, &rx_days);
            }
        } else {
            bill(body, "80", procedures.prescription_slip_fee, &rx_days);
        }

        // Labs: items, blood draw (outpatients), one judgement fee per group and month.
        if lab_days.iter().any(|&d| d > 0) {
            let drawn = lab_days.map(|d| d.min(1));
            let outpatient_draw: DayCounts = std::array::from_fn(|i| if inpatient_days[i] > 0 { 0 } else { drawn[i] });
            let once = first_nonzero(&drawn);
            let has = |g: LabGroup| groups[g as usize];
            if has(LabGroup::Hematology) {
                bill(body, "60", procedures.cbc, &drawn);
            }
            if has(LabGroup::HbA1c) {
                bill(body, "60", procedures.hba1c, &drawn);
            }
            if has(LabGroup::Immunology) {
                bill(body, "60", procedures.crp, &drawn);
            }
            bill(body, "60", procedures.venous_blood_draw, &outpatient_draw);
            if has(LabGroup::Hematology) || has(LabGroup::HbA1c) {
                bill(body, "60", procedures.judgement_hematology, &once);
            }
            if has(LabGroup::Biochemistry) {
                bill(body, "60", procedures.judgement_biochem, &once);
            }
            if has(LabGroup::Immunology) {
                bill(body, "60", procedures.judgement_immunology, &once);
            }
            bill(body, "60", procedures.lab_management, &once);
        }
        for proc in procedures.xray {
            bill(body, "70", proc, &xray);
        }
        for proc in procedures.ct {
            bill(body, "70", proc, &ct);
        }
        bill(body, "90", procedures.inpatient_day, &inpatient_days);
    }
}

/// Text with its 異体字 folded to the common form when Shift_JIS cannot hold them.
fn fold<'s>(t: &crate::tables::Tables, s: &'s str) -> Cow<'s, str> {
    if sjis::encodable(s) {
        return Cow::Borrowed(s);
    }
    let mut out = s.to_string();
    for pair in &t.itaiji {
        if out.contains(pair.variant.as_str()) {
            out = out.replace(&pair.variant, &pair.standard);
        }
    }
    Cow::Owned(out)
}

fn first_nonzero(days: &DayCounts) -> DayCounts {
    let mut once = [0u32; 31];
    if let Some(i) = days.iter().position(|&d| d > 0) {
        once[i] = 1;
    }
    once
}

/// レセプト種別 (4 digits): 医科 1; 医保 1 / 公費単独 2 / 後期高齢者 3; 単独 1 or 2併 2;
/// then 本人 2 / 未就学者 4 / 家族 6 / 高齢受給者 8 (7割 0), each one less when inpatient.
fn receipt_kind(
    world: &World<'_>,
    person: &Person<'_>,
    coverage: Option<&crate::person::Coverage>,
    aid: Option<&crate::person::PublicAid>,
    age: u32,
    inpatient: bool,
) -> u16 {
    let high_income = person.index.is_multiple_of(10);
    let (system, category) = match coverage {
        None => (2, 2),
        Some(c) if world.insurers.all[c.insurer].kind == InsurerKind::Koki => (3, if high_income { 0 } else { 8 }),
        Some(c) => {
            let category = if age < 6 {
                4
            } else if age >= 70 {
                if high_income {
                    0
                } else {
                    8
                }
            } else if c.dependent {
                6
            } else {
                2
            };
            (1, category)
        }
    };
    let payers = if coverage.is_some() && aid.is_some() { 2 } else { 1 };
    let category = if inpatient {
        if category == 0 {
            9
        } else {
            category - 1
        }
    } else {
        category
    };
    1000 + system * 100 + payers * 10 + category
}

/// A clerk's note that names a relative: free text that identifies people besides the
/// patient.
fn relative_comment(world: &World<'_>, person: &Person<'_>, date: Date, rng: &mut ChaCha8Rng) -> String {
    let t = world.tables;
    let (surname, _) = person.surname_on(date);
    let male = |rng: &mut ChaCha8Rng| t.given_names_male[world.samplers.given_male.sample(rng)].kanji.clone();
    let female = |rng: &mut ChaCha8Rng| t.given_names_female[world.samplers.given_female.sample(rng)].kanji.clone();
    let age = person.age_on(date);
    let female_patient = person.identity.sex == Sex::Female;
    match (age, female_patient, rng.gen_range(0..3)) {
        (0..=15, _, 0) => format!("母の{}さん同伴", female(rng)),
        (0..=15, _, _) => format!("父{surname}{}さんに説明", male(rng)),
        (65.., _, 0) => format!("長男の{}さんに病状説明", male(rng)),
        (65.., _, 1) => format!("長女{}さん付き添い", female(rng)),
        (_, true, _) => format!("夫の{}さんも通院中", male(rng)),
        (_, false, _) => format!("妻の{surname}{}さんも通院中", female(rng)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drug_kinds() {
        assert_eq!(drug_kind("アンテベート軟膏０．０５％", "g"), "23");
        assert_eq!(drug_kind("バルトレックス顆粒５０％", "g"), "21");
        assert_eq!(drug_kind("モーラスパップ３０ｍｇ", "枚"), "23");
    }
}
