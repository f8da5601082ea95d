//! HL7 FHIR R4 on JP Core as the 電子カルテ情報共有サービス (CLINS) sends it: for each patient
//! of each hospital, a `Bundle` of type `collection` (file `fhir/<医療機関コード>/<uuid>.json`)
//! holding the Patient (with the narrative `text.div` that repeats name, phone and
//! address), the hospital's Organization, Encounters, Conditions (病名管理番号, レセ電
//! 傷病名コード and ICD-10 where known), Observations (JLAC10 lab results),
//! MedicationRequests (YJ codes) and AllergyIntolerances; and the same resources as Bulk
//! Data NDJSON, one file per resource type (`ndjson/<医療機関コード>/Patient.ndjson` …).
//!
//! Profiles, extensions and identifier systems follow the published CLINS examples. JSON is
//! written directly into byte buffers (compact, UTF-8); every string passes through the
//! JSON escaper.

use rand_chacha::ChaCha8Rng;
use time::Date;

use crate::calendar::push_iso;
use crate::clinical::{lab_decimals, ClinicalCourse, Visit, ALLERGENS};
use crate::noise::{source_address, source_name, source_phone, SourceAddress, SourceName};
use crate::output::{ALLERGY, CONDITION, ENCOUNTER, MEDICATION_REQUEST, OBSERVATION, PATIENT, RESOURCE_TYPES};
use crate::person::{Person, Sex};
use crate::random::{uuid, Uuid};
use crate::text::{fullwidth, push_decimal, push_json_escaped, push_json_str, push_u64, push_xhtml_in_json};
use crate::world::{Hospital, World};

const PROFILE_PATIENT: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Patient_eCS";
const PROFILE_ORGANIZATION: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Organization_eCS";
const PROFILE_ENCOUNTER: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Encounter_eCS";
const PROFILE_CONDITION: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Condition_eCS";
const PROFILE_OBSERVATION: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Observation_LabResult_eCS";
const PROFILE_MEDICATION_REQUEST: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_MedicationRequest_eCS";
const PROFILE_ALLERGY: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_AllergyIntolerance_eCS";
const PROFILE_BUNDLE: &str = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_CLINS|1";

const SYSTEM_PATIENT_ID_PREFIX: &str = "urn:oid:1.2.392.100495.20.3.51.1";
const SYSTEM_MEMBER_ID: &str = "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID";
const SYSTEM_INSTITUTION_NO: &str = "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no";
const SYSTEM_RESOURCE_INSTANCE: &str = "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier";
const SYSTEM_BYOMEI: &str = "http://medis.or.jp/CodeSystem/master-disease-keyNumber";
const SYSTEM_RECEDEN_DISEASE: &str = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterB-disease";
const SYSTEM_ICD10: &str = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full";
const SYSTEM_JLAC10: &str = "http://medis.or.jp/CodeSystem/master-JLAC10-17digits";
const SYSTEM_YJ: &str = "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code";
const SYSTEM_LOCAL_LAB: &str = "http://jpfhir.jp/fhir/clins/CodeSystem/JP_CLINS_ObsLabResult_LocalCode_CS";
const SYSTEM_NO_STANDARD_DRUG_CODE: &str = "http://jpfhir.jp/fhir/eCS/CodeSystem/MedicationCodeNocoded_CS";
const EXTENSION_INSTITUTION: &str = "http://jpfhir.jp/fhir/clins/Extension/StructureDefinition/JP_eCS_InstitutionNumber";
const EXTENSION_NAME_REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

/// How resources point at each other: inside a Bundle by `urn:uuid:` full URLs, in
/// NDJSON by `Type/id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum References {
    Bundle,
    Relative,
}

/// Where rendered resources go: NDJSON lines or Bundle entries. `open` returns the buffer
/// the resource's JSON is appended to; `close` ends it.
pub(crate) trait ResourceSink {
    fn open(&mut self, kind: usize, id: &Uuid) -> &mut Vec<u8>;
    fn close(&mut self, kind: usize);
}

/// One patient of one hospital, ready to be written: the holder's view of the person and
/// the ids of every resource (shared by the Bundle and the NDJSON).
pub(crate) struct PatientRecord<'a, 't> {
    pub hospital: &'a Hospital,
    pub person: &'a Person<'t>,
    pub course: &'a ClinicalCourse,
    pub visits: &'a [Visit],
    pub patient_id: Uuid,
    pub patient_number: u64,
    pub name: SourceName<'a>,
    pub address: SourceAddress,
    pub phone: Option<String>,
    pub member_id: Option<String>,
    /// Date of the export (the last day of the period, or the day of death).
    pub exported: Date,
    pub bundle_id: Uuid,
    encounter_ids: Vec<Uuid>,
    /// (index into `course.diagnoses`, id) for every diagnosis seen at this hospital.
    condition_ids: Vec<(u16, Uuid)>,
    observation_ids: Vec<Uuid>,
    medication_ids: Vec<Uuid>,
    allergy_id: Option<Uuid>,
}

impl<'a, 't> PatientRecord<'a, 't> {
    pub(crate) fn new(
        world: &'a World<'t>,
        hospital_index: usize,
        person: &'a Person<'t>,
        course: &'a ClinicalCourse,
        visits: &'a [Visit],
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let hospital = &world.hospitals[hospital_index];
        let exported = person.last_day(world.period.end);
        let style = &hospital.style;
        let name = source_name(person, exported, style, rng);
        let address = source_address(world, person, style);
        let phone = source_phone(person, style, rng);
        let member_id = person.coverage_on(exported).map(|c| {
            let insurer = world.insurers.all[c.insurer].number.to_string();
            let edaban = c.edaban.map_or(String::new(), |e| format!("{e:02}"));
            if style.digits_fullwidth {
                format!("{insurer}:{}:{}:{edaban}", fullwidth(&c.kigo), fullwidth(&c.bango))
            } else {
                format!("{insurer}:{}:{}:{edaban}", c.kigo, c.bango)
            }
        });
        let patient_id = uuid(rng);
        let bundle_id = uuid(rng);
        let encounter_ids = visits.iter().map(|_| uuid(rng)).collect();
        let mut seen: Vec<u16> = visits.iter().flat_map(|v| v.diagnoses.iter().copied()).collect();
        seen.sort_unstable();
        seen.dedup();
        let condition_ids = seen.into_iter().map(|d| (d, uuid(rng))).collect();
        let observation_ids = visits.iter().flat_map(|v| v.labs.iter()).map(|_| uuid(rng)).collect();
        let medication_ids = visits.iter().flat_map(|v| v.prescriptions.iter()).map(|_| uuid(rng)).collect();
        let allergy_id = course.allergy.filter(|a| a.hospital == hospital_index).map(|_| uuid(rng));
        Self {
            hospital,
            person,
            course,
            visits,
            patient_id,
            patient_number: hospital.patient_number(person.index),
            name,
            address,
            phone,
            member_id,
            exported,
            bundle_id,
            encounter_ids,
            condition_ids,
            observation_ids,
            medication_ids,
            allergy_id,
        }
    }

    /// Number of resources [`Self::render`] writes (Organization excluded).
    pub(crate) fn resource_count(&self) -> u64 {
        (1 + self.encounter_ids.len()
            + self.condition_ids.len()
            + self.observation_ids.len()
            + self.medication_ids.len()
            + self.allergy_id.iter().count()) as u64
    }

    /// Writes every resource of this patient into `sink`.
    pub(crate) fn render(&self, world: &World<'_>, refs: References, sink: &mut dyn ResourceSink) {
        self.push_patient(sink.open(PATIENT, &self.patient_id));
        sink.close(PATIENT);
        let mut obs = 0;
        let mut med = 0;
        for (v, visit) in self.visits.iter().enumerate() {
            self.push_encounter(sink.open(ENCOUNTER, &self.encounter_ids[v]), refs, v, visit);
            sink.close(ENCOUNTER);
            for lab in &visit.labs {
                let id = &self.observation_ids[obs];
                self.push_observation(sink.open(OBSERVATION, id), world, refs, v, visit, lab.lab, lab.value, id);
                sink.close(OBSERVATION);
                obs += 1;
            }
            for p in &visit.prescriptions {
                let id = &self.medication_ids[med];
                self.push_medication_request(sink.open(MEDICATION_REQUEST, id), world, refs, med, v, visit, p.drug, p.days, id);
                sink.close(MEDICATION_REQUEST);
                med += 1;
            }
        }
        for (d, id) in &self.condition_ids {
            self.push_condition(sink.open(CONDITION, id), world, refs, *d, id);
            sink.close(CONDITION);
        }
        if let (Some(id), Some(allergy)) = (&self.allergy_id, self.course.allergy) {
            self.push_allergy(sink.open(ALLERGY, id), refs, id, allergy.allergen, allergy.recorded);
            sink.close(ALLERGY);
        }
    }

    /// The whole Bundle as one JSON document: Patient, the hospital's Organization, then
    /// the rest.
    pub(crate) fn bundle(&self, world: &World<'_>, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(br#"{"resourceType":"Bundle","id":""#);
        out.extend_from_slice(self.bundle_id.as_bytes());
        out.extend_from_slice(br#"","meta":{"lastUpdated":""#);
        push_timestamp(out, self.exported, 18);
        out.extend_from_slice(br#"","profile":[""#);
        out.extend_from_slice(PROFILE_BUNDLE.as_bytes());
        out.extend_from_slice(br#""]},"type":"collection","identifier":{"system":"http://jpfhir.jp/fhir/clins/bundle-identifier","value":""#);
        out.extend_from_slice(self.hospital.code.as_bytes());
        out.push(b'^');
        push_u64(out, self.exported.year() as u64);
        out.push(b'^');
        out.extend_from_slice(self.bundle_id.as_bytes());
        out.extend_from_slice(br#""},"language":"ja","timestamp":""#);
        push_timestamp(out, self.exported, 18);
        out.extend_from_slice(br#"","entry":["#);
        let mut sink = BundleEntries { out, hospital: self.hospital, first: true };
        self.render(world, References::Bundle, &mut sink);
        out.extend_from_slice(b"]}");
    }

    fn push_reference(&self, buf: &mut Vec<u8>, refs: References, kind: &str, id: &Uuid) {
        buf.extend_from_slice(br#"{"reference":""#);
        match refs {
            References::Bundle => buf.extend_from_slice(b"urn:uuid:"),
            References::Relative => {
                buf.extend_from_slice(kind.as_bytes());
                buf.push(b'/');
            }
        }
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(b"\"}");
    }

    fn push_subject(&self, buf: &mut Vec<u8>, refs: References) {
        buf.extend_from_slice(br#","subject":"#);
        self.push_reference(buf, refs, "Patient", &self.patient_id);
    }

    fn push_institution_extension(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(br#","extension":[{"url":""#);
        buf.extend_from_slice(EXTENSION_INSTITUTION.as_bytes());
        buf.extend_from_slice(br#"","valueIdentifier":{"system":""#);
        buf.extend_from_slice(SYSTEM_INSTITUTION_NO.as_bytes());
        buf.extend_from_slice(br#"","value":""#);
        buf.extend_from_slice(self.hospital.code.as_bytes());
        buf.extend_from_slice(br#""}}]"#);
    }

    fn push_instance_identifier(&self, buf: &mut Vec<u8>, kind: u8, n: usize) {
        buf.extend_from_slice(br#","identifier":[{"system":""#);
        buf.extend_from_slice(SYSTEM_RESOURCE_INSTANCE.as_bytes());
        buf.extend_from_slice(br#"","value":""#);
        buf.extend_from_slice(self.hospital.code.as_bytes());
        buf.push(b'-');
        crate::text::push_padded(buf, self.patient_number, 10);
        buf.push(b'-');
        buf.push(kind);
        push_u64(buf, n as u64 + 1);
        buf.extend_from_slice(br#""}]"#);
    }

    fn push_patient(&self, buf: &mut Vec<u8>) {
        let person = self.person;
        let n = &self.name;
        let kanji = n.kanji();
        let kana = n.kana();
        let mut patient_number = Vec::with_capacity(10);
        crate::text::push_padded(&mut patient_number, self.patient_number, 10);
        let patient_number = std::str::from_utf8(&patient_number).expect("digits");
        let gender = match person.identity.sex {
            Sex::Male => "male",
            Sex::Female => "female",
        };

        buf.extend_from_slice(br#"{"resourceType":"Patient","id":""#);
        buf.extend_from_slice(self.patient_id.as_bytes());
        buf.extend_from_slice(br#"","meta":{"lastUpdated":""#);
        push_timestamp(buf, self.exported, 18);
        buf.extend_from_slice(br#"","profile":[""#);
        buf.extend_from_slice(PROFILE_PATIENT.as_bytes());
        // Narrative: what a clinician's screen shows, identifying data included.
        buf.extend_from_slice(
            r#""]},"text":{"status":"additional","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"ja\" xml:lang=\"ja\"><p>患者ID："#
                .as_bytes(),
        );
        buf.extend_from_slice(patient_number.as_bytes());
        if let Some(m) = &self.member_id {
            buf.extend_from_slice("</p><p>被保険者患者番号：".as_bytes());
            push_xhtml_in_json(buf, m);
        }
        buf.extend_from_slice("</p><p>漢字氏名：".as_bytes());
        push_xhtml_in_json(buf, &kanji);
        buf.extend_from_slice("</p><p>カナ氏名：".as_bytes());
        push_xhtml_in_json(buf, &kana);
        if let Some(p) = &self.phone {
            buf.extend_from_slice("</p><p>電話：".as_bytes());
            push_xhtml_in_json(buf, p);
        }
        buf.extend_from_slice("</p><p>性別：".as_bytes());
        buf.extend_from_slice(if person.identity.sex == Sex::Male { "男" } else { "女" }.as_bytes());
        buf.extend_from_slice("</p><p>生年月日：".as_bytes());
        push_iso(buf, person.identity.birth);
        buf.extend_from_slice(b"</p><p>");
        if !self.address.postal_code.is_empty() {
            buf.extend_from_slice("〒".as_bytes());
            buf.extend_from_slice(self.address.postal_code.as_bytes());
            buf.push(b' ');
        }
        push_xhtml_in_json(buf, &self.address.text);
        buf.extend_from_slice(br#"</p></div>"},"language":"ja","identifier":[{"system":""#);
        buf.extend_from_slice(SYSTEM_PATIENT_ID_PREFIX.as_bytes());
        buf.extend_from_slice(self.hospital.code.as_bytes());
        buf.extend_from_slice(br#"","value":""#);
        buf.extend_from_slice(patient_number.as_bytes());
        buf.extend_from_slice(b"\"}");
        if let Some(m) = &self.member_id {
            buf.extend_from_slice(br#",{"system":""#);
            buf.extend_from_slice(SYSTEM_MEMBER_ID.as_bytes());
            buf.extend_from_slice(br#"","value":"#);
            push_json_str(buf, m);
            buf.push(b'}');
        }
        buf.extend_from_slice(br#"],"active":true,"name":["#);
        push_name(buf, "IDE", &kanji, &n.family_kanji, n.given_kanji);
        buf.push(b',');
        push_name(buf, "SYL", &kana, &n.family_kana, &n.given_kana);
        buf.push(b']');
        if let Some(p) = &self.phone {
            buf.extend_from_slice(br#","telecom":[{"system":"phone","value":"#);
            push_json_str(buf, p);
            buf.extend_from_slice(br#","use":"home","rank":1}]"#);
        }
        buf.extend_from_slice(br#","gender":""#);
        buf.extend_from_slice(gender.as_bytes());
        buf.extend_from_slice(br#"","birthDate":""#);
        push_iso(buf, person.identity.birth);
        buf.push(b'"');
        if let Some(death) = person.death.filter(|&d| d <= self.exported) {
            buf.extend_from_slice(br#","deceasedDateTime":""#);
            push_iso(buf, death);
            buf.push(b'"');
        }
        let a = &self.address;
        buf.extend_from_slice(br#","address":[{"text":"#);
        push_json_str(buf, &a.text);
        buf.extend_from_slice(br#","line":["#);
        push_json_str(buf, &a.line);
        buf.push(b']');
        if !a.postal_code.is_empty() {
            buf.extend_from_slice(br#","postalCode":""#);
            buf.extend_from_slice(a.postal_code.as_bytes());
            buf.push(b'"');
        }
        buf.extend_from_slice(br#","city":"#);
        push_json_str(buf, &a.city);
        buf.extend_from_slice(br#","state":"#);
        push_json_str(buf, &a.prefecture);
        buf.extend_from_slice(br#","country":"JP"}]}"#);
    }

    fn push_encounter(&self, buf: &mut Vec<u8>, refs: References, n: usize, visit: &Visit) {
        buf.extend_from_slice(br#"{"resourceType":"Encounter","id":""#);
        buf.extend_from_slice(self.encounter_ids[n].as_bytes());
        buf.extend_from_slice(br#"","meta":{"profile":[""#);
        buf.extend_from_slice(PROFILE_ENCOUNTER.as_bytes());
        buf.extend_from_slice(br#""]},"language":"ja""#);
        self.push_instance_identifier(buf, b'E', n);
        buf.extend_from_slice(br#","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","#);
        if visit.discharge.is_some() {
            buf.extend_from_slice(r#""code":"IMP","display":"入院"}"#.as_bytes());
        } else {
            buf.extend_from_slice(r#""code":"AMB","display":"外来"}"#.as_bytes());
        }
        self.push_subject(buf, refs);
        buf.extend_from_slice(br#","period":{"start":""#);
        push_iso(buf, visit.day);
        if let Some(end) = visit.discharge {
            buf.extend_from_slice(br#"","end":""#);
            push_iso(buf, end);
        }
        buf.extend_from_slice(b"\"}");
        if visit.died {
            buf.extend_from_slice(r#","hospitalization":{"dischargeDisposition":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/discharge-disposition","code":"exp","display":"Expired"}],"text":"死亡退院"}}"#.as_bytes());
        }
        buf.extend_from_slice(br#","serviceProvider":"#);
        self.push_reference(buf, refs, "Organization", &self.hospital.organization_id);
        buf.push(b'}');
    }

    fn push_condition(&self, buf: &mut Vec<u8>, world: &World<'_>, refs: References, d: u16, id: &Uuid) {
        let diagnosis = &self.course.diagnoses[d as usize];
        let disease = &world.tables.diseases[diagnosis.disease];
        let first_seen = self.visits.iter().find(|v| v.diagnoses.contains(&d)).map_or(diagnosis.onset, |v| v.day);
        buf.extend_from_slice(br#"{"resourceType":"Condition","id":""#);
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(br#"","meta":{"profile":[""#);
        buf.extend_from_slice(PROFILE_CONDITION.as_bytes());
        buf.extend_from_slice(br#""]},"language":"ja""#);
        self.push_institution_extension(buf);
        self.push_instance_identifier(buf, b'C', d as usize);
        let resolved = diagnosis.resolved.filter(|&r| r <= self.exported);
        buf.extend_from_slice(br#","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":""#);
        buf.extend_from_slice(if resolved.is_some() { &b"resolved"[..] } else { &b"active"[..] });
        buf.extend_from_slice(br#""}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis"}]}],"code":{"coding":["#);
        let mut first = true;
        let mut coding = |buf: &mut Vec<u8>, system: &str, code: &str| {
            if code.is_empty() {
                return;
            }
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.extend_from_slice(br#"{"system":""#);
            buf.extend_from_slice(system.as_bytes());
            buf.extend_from_slice(br#"","code":"#);
            push_json_str(buf, code);
            buf.extend_from_slice(br#","display":"#);
            push_json_str(buf, &disease.name_ja);
            buf.push(b'}');
        };
        coding(buf, SYSTEM_BYOMEI, &disease.byomei_code);
        coding(buf, SYSTEM_RECEDEN_DISEASE, &disease.receden_code);
        coding(buf, SYSTEM_ICD10, &disease.icd10.replace('.', ""));
        buf.extend_from_slice(br#"],"text":"#);
        push_json_str(buf, &disease.name_ja);
        buf.push(b'}');
        self.push_subject(buf, refs);
        buf.extend_from_slice(br#","onsetDateTime":""#);
        push_iso(buf, diagnosis.onset);
        buf.extend_from_slice(br#"","recordedDate":""#);
        push_iso(buf, first_seen.max(diagnosis.onset));
        buf.push(b'"');
        if let Some(r) = resolved {
            buf.extend_from_slice(br#","abatementDateTime":""#);
            push_iso(buf, r);
            buf.push(b'"');
        }
        buf.push(b'}');
    }

    #[allow(clippy::too_many_arguments)]
    fn push_observation(
        &self,
        buf: &mut Vec<u8>,
        world: &World<'_>,
        refs: References,
        v: usize,
        visit: &Visit,
        lab_index: usize,
        value: f64,
        id: &Uuid,
    ) {
        let lab = &world.tables.labs[lab_index];
        // CLINS lab results carry the hospital's own code first, the JLAC10 code beside it.
        let local_code = format!("{:010}", 181_000 + lab_index);
        buf.extend_from_slice(br#"{"resourceType":"Observation","id":""#);
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(br#"","meta":{"profile":[""#);
        buf.extend_from_slice(PROFILE_OBSERVATION.as_bytes());
        buf.extend_from_slice(br#""]},"language":"ja""#);
        self.push_institution_extension(buf);
        buf.extend_from_slice(br#","status":"final","category":[{"coding":[{"system":"http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS","code":"laboratory"}]}],"code":{"#);
        push_concept_body(buf, &[(SYSTEM_LOCAL_LAB, &local_code, &lab.name_ja), (SYSTEM_JLAC10, &lab.jlac10, &lab.name_ja)], &lab.name_ja);
        buf.push(b'}');
        self.push_subject(buf, refs);
        buf.extend_from_slice(br#","encounter":"#);
        self.push_reference(buf, refs, "Encounter", &self.encounter_ids[v]);
        buf.extend_from_slice(br#","effectiveDateTime":""#);
        push_timestamp(buf, visit.day, 9 + (v % 3) as u8);
        buf.extend_from_slice(br#"","valueQuantity":{"value":"#);
        push_decimal(buf, value, lab_decimals(lab.sd[0].min(lab.sd[1])));
        buf.extend_from_slice(br#","unit":"#);
        push_json_str(buf, &lab.unit);
        buf.extend_from_slice(b"}}");
    }

    #[allow(clippy::too_many_arguments)]
    fn push_medication_request(
        &self,
        buf: &mut Vec<u8>,
        world: &World<'_>,
        refs: References,
        n: usize,
        v: usize,
        visit: &Visit,
        drug: usize,
        days: u32,
        id: &Uuid,
    ) {
        let drug = &world.tables.drugs[drug];
        buf.extend_from_slice(br#"{"resourceType":"MedicationRequest","id":""#);
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(br#"","meta":{"profile":[""#);
        buf.extend_from_slice(PROFILE_MEDICATION_REQUEST.as_bytes());
        buf.extend_from_slice(br#""]},"language":"ja""#);
        self.push_institution_extension(buf);
        self.push_instance_identifier(buf, b'M', n);
        let category: &str = if visit.discharge.is_some() {
            r#""IHP","display":"入院処方""#
        } else if self.hospital.in_house_dispensing {
            r#""OHI","display":"院内処方""#
        } else {
            r#""OHO","display":"院外処方""#
        };
        buf.extend_from_slice(br#","status":"completed","intent":"order","category":[{"coding":[{"system":"http://jpfhir.jp/fhir/core/CodeSystem/JP_MedicationCategoryMERIT9_CS","code":"#);
        buf.extend_from_slice(category.as_bytes());
        buf.extend_from_slice(br#"}]}],"medicationCodeableConcept":{"#);
        // A drug without a YJ code carries CLINS's 標準コードなし marker, as real systems send it.
        let coding = if drug.yj_code.is_empty() {
            (SYSTEM_NO_STANDARD_DRUG_CODE, "NOCODED", "標準コードなし")
        } else {
            (SYSTEM_YJ, drug.yj_code.as_str(), drug.name_ja.as_str())
        };
        push_concept_body(buf, &[coding], &drug.name_ja);
        buf.push(b'}');
        self.push_subject(buf, refs);
        buf.extend_from_slice(br#","encounter":"#);
        self.push_reference(buf, refs, "Encounter", &self.encounter_ids[v]);
        buf.extend_from_slice(br#","authoredOn":""#);
        push_iso(buf, visit.day);
        buf.extend_from_slice(br#"","dosageInstruction":[{"text":""#);
        buf.extend_from_slice("1日".as_bytes());
        push_decimal(buf, drug.daily_dose, if drug.daily_dose.fract() == 0.0 { 0 } else { 1 });
        push_json_escaped(buf, &drug.dose_unit);
        buf.push(b' ');
        push_u64(buf, days as u64);
        buf.extend_from_slice("日分".as_bytes());
        buf.extend_from_slice(br#"","timing":{"repeat":{"boundsDuration":{"value":"#);
        push_u64(buf, days as u64);
        buf.extend_from_slice(
            r#","unit":"日","system":"http://unitsofmeasure.org","code":"d"}}},"doseAndRate":[{"doseQuantity":{"value":"#.as_bytes(),
        );
        push_decimal(buf, drug.daily_dose, if drug.daily_dose.fract() == 0.0 { 0 } else { 1 });
        buf.extend_from_slice(br#","unit":"#);
        push_json_str(buf, &drug.dose_unit);
        buf.extend_from_slice(br#"}}]}],"dispenseRequest":{"quantity":{"value":"#);
        push_decimal(buf, drug.daily_dose * days as f64, if drug.daily_dose.fract() == 0.0 { 0 } else { 1 });
        buf.extend_from_slice(br#","unit":"#);
        push_json_str(buf, &drug.dose_unit);
        buf.extend_from_slice(br#"},"expectedSupplyDuration":{"value":"#);
        push_u64(buf, days as u64);
        buf.extend_from_slice(r#","unit":"日","system":"http://unitsofmeasure.org","code":"d"}}}"#.as_bytes());
    }

    fn push_allergy(&self, buf: &mut Vec<u8>, refs: References, id: &Uuid, allergen: usize, recorded: Date) {
        let (category, code, display, text) = ALLERGENS[allergen];
        buf.extend_from_slice(br#"{"resourceType":"AllergyIntolerance","id":""#);
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(br#"","meta":{"profile":[""#);
        buf.extend_from_slice(PROFILE_ALLERGY.as_bytes());
        buf.extend_from_slice(br#""]},"language":"ja""#);
        self.push_institution_extension(buf);
        buf.extend_from_slice(br#","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},"type":"allergy","category":[""#);
        buf.extend_from_slice(category.as_bytes());
        buf.extend_from_slice(br#""],"code":{"#);
        let system = if category == "medication" {
            "http://jpfhir.jp/fhir/core/CodeSystem/GCM/JP_JfagyMedicationAllergen_CS"
        } else {
            "http://jpfhir.jp/fhir/core/CodeSystem/JP_JfagyFoodAllergen_CS"
        };
        push_concept_body(buf, &[(system, code, display)], text);
        buf.extend_from_slice(br#"},"patient":"#);
        self.push_reference(buf, refs, "Patient", &self.patient_id);
        buf.extend_from_slice(br#","recordedDate":""#);
        push_iso(buf, recorded);
        buf.extend_from_slice(b"\"}");
    }
}

fn push_name(buf: &mut Vec<u8>, representation: &str, text: &str, family: &str, given: &str) {
    buf.extend_from_slice(br#"{"extension":[{"url":""#);
    buf.extend_from_slice(EXTENSION_NAME_REPRESENTATION.as_bytes());
    buf.extend_from_slice(br#"","valueCode":""#);
    buf.extend_from_slice(representation.as_bytes());
    buf.extend_from_slice(br#""}],"use":"official","text":"#);
    push_json_str(buf, text);
    buf.extend_from_slice(br#","family":"#);
    push_json_str(buf, family);
    buf.extend_from_slice(br#","given":["#);
    push_json_str(buf, given);
    buf.extend_from_slice(b"]}");
}

/// `YYYY-MM-DDTHH:MM:00+09:00` (JST), at a fixed hour so output stays reproducible.
fn push_timestamp(buf: &mut Vec<u8>, date: Date, hour: u8) {
    push_iso(buf, date);
    buf.push(b'T');
    crate::text::push_2d(buf, hour);
    buf.extend_from_slice(b":00:00+09:00");
}

/// The hospital as a JP Core Organization (医療機関コード, 都道府県番号, 点数表 1 医科).
pub(crate) fn push_organization(buf: &mut Vec<u8>, hospital: &Hospital) {
    buf.extend_from_slice(br#"{"resourceType":"Organization","id":""#);
    buf.extend_from_slice(hospital.organization_id.as_bytes());
    buf.extend_from_slice(br#"","meta":{"profile":[""#);
    buf.extend_from_slice(PROFILE_ORGANIZATION.as_bytes());
    buf.extend_from_slice(br#""]},"language":"ja","extension":[{"url":"http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_PrefectureNo","valueCoding":{"system":"http://jpfhir.jp/fhir/core/mhlw/CodeSystem/PrefectureNo-2digits","code":""#);
    buf.extend_from_slice(&hospital.code.as_bytes()[..2]);
    buf.extend_from_slice(br#""}},{"url":"http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_InsuranceOrganizationCategory","valueCoding":{"system":"http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationFeeScoreType","code":"1"}},{"url":"http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_InsuranceOrganizationNo","valueIdentifier":{"system":"http://jpfhir.jp/fhir/core/mhlw/IdSystem/MedicalOrganizationID","value":""#);
    buf.extend_from_slice(hospital.institution_number().as_bytes());
    buf.extend_from_slice(br#""}}],"identifier":[{"system":""#);
    buf.extend_from_slice(SYSTEM_INSTITUTION_NO.as_bytes());
    buf.extend_from_slice(br#"","value":""#);
    buf.extend_from_slice(hospital.code.as_bytes());
    buf.extend_from_slice(br#""}],"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov"}]}],"name":"#);
    push_json_str(buf, &hospital.name);
    buf.extend_from_slice(br#","telecom":[{"system":"phone","value":"#);
    push_json_str(buf, &hospital.phone);
    buf.extend_from_slice(br#"}],"address":[{"text":"#);
    push_json_str(buf, &hospital.address);
    if !hospital.postal_code.is_empty() {
        buf.extend_from_slice(br#","postalCode":""#);
        buf.extend_from_slice(&hospital.postal_code.as_bytes()[..3]);
        buf.push(b'-');
        buf.extend_from_slice(&hospital.postal_code.as_bytes()[3..]);
        buf.push(b'"');
    }
    buf.extend_from_slice(br#","country":"JP"}]}"#);
}

/// Bundle entries: `{"fullUrl":"urn:uuid:…","resource":…}`, the Organization right after
/// the Patient.
struct BundleEntries<'o, 'h> {
    out: &'o mut Vec<u8>,
    hospital: &'h Hospital,
    first: bool,
}

impl BundleEntries<'_, '_> {
    fn entry_start(&mut self, id: &[u8]) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(br#"{"fullUrl":"urn:uuid:"#);
        self.out.extend_from_slice(id);
        self.out.extend_from_slice(br#"","resource":"#);
    }
}

impl ResourceSink for BundleEntries<'_, '_> {
    fn open(&mut self, _kind: usize, id: &Uuid) -> &mut Vec<u8> {
        self.entry_start(id.as_bytes());
        self.out
    }

    fn close(&mut self, kind: usize) {
        self.out.push(b'}');
        if kind == PATIENT {
            self.entry_start(self.hospital.organization_id.as_bytes());
            push_organization(self.out, self.hospital);
            self.out.push(b'}');
        }
    }
}

/// NDJSON: one line per resource in the chunk's per-hospital, per-type buffers.
pub(crate) struct NdjsonLines<'a> {
    pub buffers: &'a mut [Vec<u8>],
    pub base: usize,
    pub count: u64,
}

impl ResourceSink for NdjsonLines<'_> {
    fn open(&mut self, kind: usize, _id: &Uuid) -> &mut Vec<u8> {
        &mut self.buffers[self.base + kind]
    }

    fn close(&mut self, kind: usize) {
        self.buffers[self.base + kind].push(b'\n');
        self.count += 1;
    }
}

/// Writes one patient of one hospital as NDJSON lines into the chunk's buffers; returns
/// the number of resources.
pub(crate) fn push_ndjson(record: &PatientRecord<'_, '_>, world: &World<'_>, hospital_index: usize, ndjson: &mut [Vec<u8>]) -> u64 {
    let mut lines = NdjsonLines { buffers: ndjson, base: hospital_index * RESOURCE_TYPES.len(), count: 0 };
    record.render(world, References::Relative, &mut lines);
    lines.count
}

/// The inside of a CodeableConcept: `"coding":[{system, code, display}…],"text":…`; codings
/// whose code is empty (a table without that code system's code) are left out, and so is
/// the whole `coding` array when none remains.
fn push_concept_body(buf: &mut Vec<u8>, codings: &[(&str, &str, &str)], text: &str) {
    let mut first = true;
    for (system, code, display) in codings.iter().filter(|c| !c.1.is_empty()) {
        buf.extend_from_slice(if first { br#""coding":[{"system":""# } else { br#",{"system":""# });
        first = false;
        buf.extend_from_slice(system.as_bytes());
        buf.extend_from_slice(br#"","code":"#);
        push_json_str(buf, code);
        buf.extend_from_slice(br#","display":"#);
        push_json_str(buf, display);
        buf.push(b'}');
    }
    if !first {
        buf.extend_from_slice(b"],");
    }
    buf.extend_from_slice(br#""text":"#);
    push_json_str(buf, text);
}
