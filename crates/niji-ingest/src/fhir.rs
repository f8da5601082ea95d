//! FHIR R4 JSON on JP Core / CLINS: a `Bundle` (or a single resource) per JSON file, and Bulk
//! Data NDJSON (one resource per line).
//!
//! Ingested resource types: Patient, Condition, Observation, AllergyIntolerance,
//! MedicationRequest, Encounter, Organization, Practitioner. Other resource types (Composition,
//! CarePlan, DocumentReference, Specimen, …) are skipped with a warning and nothing of them is kept.
//!
//! Checked: JSON structure and element types, the required elements of each profile, code
//! shapes by system (see [`crate::codes`]), dates (calendar, not after `now`), 保険者番号 check
//! digits inside CLINS member ids, `#id` references to contained resources, and two CLINS rules:
//! JP_MedicationRequest_eCS needs a YJ / 一般名処方 / 標準コードなし coding; JP_Observation_LabResult_eCS
//! needs a local lab code (both switchable with `IngestConfig::clins_strict`).
//!
//! The CLINS `*ErrorExample*` files fail as follows (checked in `tests/ingest.rs`):
//! - `MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1`: the medication is coded by HOT9
//!   and a local code only — no YJ, 一般名処方 or 標準コードなし coding ([`Reason::NoStandardDrugCode`]).
//! - `MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days`: 一般名処方コード `2124030F2ZZZ`
//!   does not exist (the twin has `1124030F2ZZZ`); its shape is valid, so it is caught only
//!   against a loaded 一般名処方マスタ ([`Reason::NotInMaster`]; an instance loads the files of its
//!   `masters/` folder, [`crate::CodeMasters::load_dir`]); without a master it is accepted with a
//!   warning ([`Reason::NotCheckedAgainstMaster`]).
//! - `Observation-ErrorExample-ObsLabo-eGFR`: the lab result has JLAC10 but no CLINS local code
//!   ([`Reason::NoLocalLabCode`]). (It also drops the contained Practitioner and Encounter of its
//!   twin and points `performer` at `Practitioner/…`, which a single file cannot resolve.)
//!
//! Split: `text.div`, names, telecom, address, identifiers, member ids, subject references,
//! `note`, CodeableConcept `.text`, `display` of references and every free-text string go to
//! identity; content is built field by field from the whitelisted coded/number/date elements,
//! so anything not named here is dropped.

use std::io::BufRead;

use niji_core::{InsurerNumber, InsurerNumberError};
use serde_json::{Map, Value};

use crate::codes::{prefecture_from_text, CodeSystem};
use crate::dates::{parse_iso, Date};
use crate::model::*;
use crate::report::{FileReport, Issues, Problem, Reason, RecordKind};
use crate::{IngestConfig, IngestError, Line, Lines, Severity};

const MEMBER_ID_SYSTEM: &str = "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID";

/// Ingests one JSON document: a Bundle (each entry located as `entry N`) or a single resource
/// (`entry 0`).
pub fn ingest_json(name: &str, bytes: &[u8], config: &IngestConfig, sink: &mut dyn FnMut(SplitRecord)) -> FileReport {
    let mut report = FileReport::new(name);
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(_) => {
            report.reject(vec![Problem::new(Location::File, "", Reason::NotJson)]);
            return report;
        }
    };
    let Some(obj) = value.as_object() else {
        report.reject(vec![Problem::new(Location::File, "", Reason::NotAnObject)]);
        return report;
    };
    if obj.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        let btype = obj.get("type").and_then(Value::as_str);
        if !matches!(btype, Some("collection" | "document" | "transaction" | "batch" | "searchset" | "message" | "history")) {
            report.reject(vec![Problem::new(Location::File, "Bundle.type", if btype.is_none() { Reason::Missing } else { Reason::BundleType })]);
            return report;
        }
        let entries = match obj.get("entry") {
            None => return report,
            Some(Value::Array(a)) => a,
            Some(_) => {
                report.reject(vec![Problem::new(Location::File, "Bundle.entry", Reason::WrongType("an array"))]);
                return report;
            }
        };
        for (i, entry) in entries.iter().enumerate() {
            let loc = Location::Entry(i as u64);
            let mut issues = Issues::default();
            let resource = entry.as_object().and_then(|e| e.get("resource"));
            match resource {
                Some(r) => {
                    let full_url = entry.get("fullUrl").and_then(Value::as_str);
                    let out = resource_split(r, loc, full_url, config, &mut issues);
                    finish(&mut report, issues, out, sink);
                }
                None => report.reject(vec![Problem::new(loc, "Bundle.entry.resource", Reason::Missing)]),
            }
        }
    } else {
        let mut issues = Issues::default();
        let out = resource_split(&value, Location::Entry(0), None, config, &mut issues);
        finish(&mut report, issues, out, sink);
    }
    report
}

/// Ingests Bulk Data NDJSON, one resource per line (blank lines are ignored).
pub fn ingest_ndjson(name: &str, reader: impl BufRead, config: &IngestConfig, sink: &mut dyn FnMut(SplitRecord)) -> Result<FileReport, IngestError> {
    let mut report = FileReport::new(name);
    let mut lines = Lines::new(reader, config.max_line_bytes);
    while let Some(Line { loc, bytes: line, .. }) = lines.next_line(&mut report)? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                report.reject(vec![Problem::new(loc, "", Reason::NotJson)]);
                continue;
            }
        };
        let mut issues = Issues::default();
        let out = resource_split(&value, loc, None, config, &mut issues);
        finish(&mut report, issues, out, sink);
    }
    Ok(report)
}

enum Outcome {
    Split(RecordKind, Box<SplitRecord>),
    Skipped,
    Failed,
}

fn finish(report: &mut FileReport, issues: Issues, out: Outcome, sink: &mut dyn FnMut(SplitRecord)) {
    report.warnings.extend(issues.warnings);
    match out {
        Outcome::Split(kind, rec) if issues.errors.is_empty() => {
            report.accept(kind);
            sink(*rec);
        }
        Outcome::Skipped if issues.errors.is_empty() => report.skipped += 1,
        _ => report.reject(issues.errors),
    }
}

/// Reading context of one resource.
struct Ctx<'a> {
    loc: Location,
    rt: &'static str,
    config: &'a IngestConfig,
    issues: &'a mut Issues,
    identity: Identity,
}

impl Ctx<'_> {
    fn err(&mut self, field: &str, reason: Reason) {
        self.issues.error(self.loc, format!("{}.{}", self.rt, field), reason);
    }
    fn warn(&mut self, field: &str, reason: Reason) {
        self.issues.warn(self.loc, format!("{}.{}", self.rt, field), reason);
    }

    fn str_of<'v>(&mut self, obj: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.err(key, Reason::WrongType("a string"));
                None
            }
        }
    }

    fn array<'v>(&mut self, obj: &'v Map<String, Value>, key: &str) -> &'v [Value] {
        match obj.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.err(key, Reason::WrongType("an array"));
                &[]
            }
        }
    }

    fn object<'v>(&mut self, obj: &'v Map<String, Value>, key: &str) -> Option<&'v Map<String, Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.err(key, Reason::WrongType("an object"));
                None
            }
        }
    }

    fn date(&mut self, obj: &Map<String, Value>, key: &str) -> Option<Date> {
        let s = self.str_of(obj, key)?;
        match parse_iso(s).and_then(|d| d.not_after(self.config.now)) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(key, Reason::Date(e));
                None
            }
        }
    }

    fn token(&mut self, field: &str, text: Option<&str>) -> Option<Code> {
        let t = text?;
        match Code::new(CodeSystem::Status, t) {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(field, Reason::Shape(e.0));
                None
            }
        }
    }

    /// `code` of a primitive code element.
    fn code_field(&mut self, obj: &Map<String, Value>, key: &str) -> Option<Code> {
        let t = self.str_of(obj, key);
        self.token(key, t)
    }

    /// Codes of a CodeableConcept; its `.text` and codings' displays: text goes to identity.
    fn concept(&mut self, obj: &Map<String, Value>, key: &str) -> Vec<Coded> {
        let Some(cc) = self.object(obj, key) else { return Vec::new() };
        self.concept_obj(cc, key)
    }

    fn concept_obj(&mut self, cc: &Map<String, Value>, key: &str) -> Vec<Coded> {
        let mut out = Vec::new();
        if let Some(t) = self.str_of(cc, "text") {
            // A text that repeats one of the codings' displays (as CLINS exports write them)
            // says nothing the code does not; any other text may be typed by a person and is
            // treated as free text.
            let displays = cc.get("coding").and_then(Value::as_array).into_iter().flatten().filter_map(|c| c.get("display")?.as_str());
            if !displays.map(str::trim).any(|d| d == t.trim()) {
                self.identity.push(IdentifierKind::FreeText, format!("{}.{key}.text", self.rt), t);
            }
        }
        for (i, coding) in self.array(cc, "coding").iter().enumerate() {
            let field = format!("{key}.coding[{i}]");
            let Some(c) = coding.as_object() else {
                self.err(&field, Reason::NotAnObject);
                continue;
            };
            let system = self.str_of(c, "system");
            let Some(code) = self.str_of(c, "code") else { continue };
            let Some(system) = system else {
                self.warn(&format!("{field}.system"), Reason::Missing);
                continue;
            };
            let Some(cs) = CodeSystem::from_uri(system) else {
                self.warn(&format!("{field}.system"), Reason::UnknownCodeSystem);
                continue;
            };
            match Coded::new(cs, code) {
                Ok(coded) => {
                    match self.config.masters.contains(cs, code) {
                        Some(false) => self.err(&format!("{field}.code"), Reason::NotInMaster(cs)),
                        None if cs == CodeSystem::GeneralDrugName => self.warn(&format!("{field}.code"), Reason::NotCheckedAgainstMaster(cs)),
                        _ => {}
                    }
                    out.push(coded);
                }
                Err(e) => self.err(&format!("{field}.code"), Reason::Shape(e.0)),
            }
        }
        out
    }

    fn concept_tokens(&mut self, obj: &Map<String, Value>, key: &str) -> Vec<Code> {
        self.concept(obj, key).into_iter().map(|c| c.code).collect()
    }

    fn concepts_tokens(&mut self, obj: &Map<String, Value>, key: &str) -> Vec<Code> {
        let mut out = Vec::new();
        for (i, v) in self.array(obj, key).iter().enumerate() {
            match v.as_object() {
                Some(cc) => out.extend(self.concept_obj(cc, &format!("{key}[{i}]")).into_iter().map(|c| c.code)),
                None => self.err(&format!("{key}[{i}]"), Reason::NotAnObject),
            }
        }
        out
    }

    /// A Reference: `reference` and `identifier` go to identity (subject or other party),
    /// `display` to identity as other party. Returns whether something was there.
    fn reference(&mut self, obj: &Map<String, Value>, key: &str, subject: bool, contained: &[&str]) -> bool {
        let Some(r) = self.object(obj, key) else { return false };
        let field = format!("{}.{key}", self.rt);
        let kind = if subject { IdentifierKind::SubjectReference } else { IdentifierKind::OtherPartyIdentifier };
        let mut any = false;
        if let Some(reference) = self.str_of(r, "reference") {
            any = true;
            if let Some(id) = reference.strip_prefix('#') {
                if !contained.contains(&id) {
                    self.err(&format!("{key}.reference"), Reason::UnresolvedContained);
                }
            }
            self.identity.push(kind, format!("{field}.reference"), reference);
        }
        if let Some(ident) = self.object(r, "identifier") {
            any = true;
            let system = self.str_of(ident, "system");
            if let Some(v) = self.str_of(ident, "value") {
                if subject && system == Some(MEMBER_ID_SYSTEM) {
                    self.member_id(&format!("{key}.identifier.value"), v);
                } else if subject {
                    self.identity.push(IdentifierKind::PatientId, format!("{field}.identifier.value"), v);
                } else {
                    self.identity.push(kind, format!("{field}.identifier.value"), v);
                }
            }
        }
        if let Some(d) = self.str_of(r, "display") {
            self.identity.push(IdentifierKind::OtherPartyIdentifier, format!("{field}.display"), d);
        }
        any
    }

    fn references(&mut self, obj: &Map<String, Value>, key: &str, contained: &[&str]) {
        let n = self.array(obj, key).len();
        for i in 0..n {
            if let Some(Value::Object(o)) = obj.get(key).and_then(|a| a.get(i)) {
                let mut wrap = Map::new();
                wrap.insert(format!("{key}[{i}]"), Value::Object(o.clone()));
                self.reference(&wrap, &format!("{key}[{i}]"), false, contained);
            }
        }
    }

    /// Splits a CLINS member id `保険者番号:記号:番号:枝番` into identity items and checks the
    /// insurer number. Returns the insurer number if valid.
    fn member_id(&mut self, field: &str, value: &str) -> Option<InsurerNumber> {
        let path = format!("{}.{field}", self.rt);
        self.identity.push(IdentifierKind::MemberId, path.clone(), value);
        let parts: Vec<&str> = value.split([':', '：']).collect();
        if parts.len() != 4 || parts[0].trim().is_empty() || parts[2].trim().is_empty() {
            self.warn(field, Reason::MemberIdShape);
            return None;
        }
        self.identity.push(IdentifierKind::InsurerNumber, format!("{path}#insurer"), parts[0]);
        self.identity.push(IdentifierKind::InsuredSymbol, format!("{path}#symbol"), parts[1]);
        self.identity.push(IdentifierKind::InsuredNumber, format!("{path}#number"), parts[2]);
        self.identity.push(IdentifierKind::BranchNumber, format!("{path}#branch"), parts[3]);
        match InsurerNumber::parse(parts[0].trim()) {
            Ok(n) => Some(n),
            Err(e) => {
                let reason = match e {
                    InsurerNumberError::CheckDigit { .. } => Reason::InsurerCheckDigit,
                    _ => Reason::InsurerShape,
                };
                let f = format!("{field}#insurer");
                match self.config.member_insurer_check {
                    Severity::Reject => self.err(&f, reason),
                    Severity::Warn => self.warn(&f, reason),
                }
                None
            }
        }
    }

    fn names(&mut self, obj: &Map<String, Value>, party: bool) {
        for (i, n) in self.array(obj, "name").iter().enumerate() {
            let Some(n) = n.as_object() else {
                self.err(&format!("name[{i}]"), Reason::NotAnObject);
                continue;
            };
            let kana = n
                .get("extension")
                .and_then(Value::as_array)
                .map(|exts| exts.iter().any(|e| e.get("valueCode").and_then(Value::as_str) == Some("SYL")))
                .unwrap_or(false);
            let kind = if party {
                IdentifierKind::OtherPartyIdentifier
            } else if kana {
                IdentifierKind::NameKana
            } else {
                IdentifierKind::NameKanji
            };
            let path = format!("{}.name[{i}]", self.rt);
            if let Some(t) = self.str_of(n, "text") {
                self.identity.push(kind, format!("{path}.text"), t);
            }
            if let Some(f) = self.str_of(n, "family") {
                self.identity.push(kind, format!("{path}.family"), f);
            }
            for key in ["given", "prefix", "suffix"] {
                for g in self.array(n, key) {
                    if let Some(g) = g.as_str() {
                        self.identity.push(kind, format!("{path}.{key}"), g);
                    }
                }
            }
        }
    }

    fn telecoms(&mut self, obj: &Map<String, Value>, kind: IdentifierKind) {
        for t in self.array(obj, "telecom") {
            if let Some(v) = t.get("value").and_then(Value::as_str) {
                self.identity.push(kind, format!("{}.telecom", self.rt), v);
            }
        }
    }

    /// Address parts go to identity; returns the prefecture found in `state` or the text.
    fn addresses(&mut self, obj: &Map<String, Value>, party: bool) -> Option<Prefecture> {
        let mut pref = None;
        for a in self.array(obj, "address") {
            let Some(a) = a.as_object() else { continue };
            let path = format!("{}.address", self.rt);
            let (addr, postal) = if party {
                (IdentifierKind::OtherPartyIdentifier, IdentifierKind::OtherPartyIdentifier)
            } else {
                (IdentifierKind::Address, IdentifierKind::PostalCode)
            };
            for key in ["text", "city", "district", "state"] {
                if let Some(v) = a.get(key).and_then(Value::as_str) {
                    self.identity.push(addr, format!("{path}.{key}"), v);
                }
            }
            for l in a.get("line").and_then(Value::as_array).into_iter().flatten() {
                if let Some(v) = l.as_str() {
                    self.identity.push(addr, format!("{path}.line"), v);
                }
            }
            if let Some(v) = a.get("postalCode").and_then(Value::as_str) {
                self.identity.push(postal, format!("{path}.postalCode"), v);
            }
            let p = a
                .get("state")
                .and_then(Value::as_str)
                .and_then(prefecture_from_text)
                .or_else(|| a.get("text").and_then(Value::as_str).and_then(prefecture_from_text));
            pref = pref.or(p.and_then(Prefecture::new));
        }
        pref
    }

    fn quantity(&mut self, obj: &Map<String, Value>, key: &str) -> Option<Quantity> {
        let q = self.object(obj, key)?;
        let value = match q.get("value") {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_f64()?,
            Some(_) => {
                self.err(&format!("{key}.value"), Reason::WrongType("a number"));
                return None;
            }
        };
        let unit_text =
            q.get("code").and_then(Value::as_str).filter(|_| q.get("system").and_then(Value::as_str) == Some("http://unitsofmeasure.org"));
        let unit_text = unit_text.or_else(|| q.get("unit").and_then(Value::as_str));
        let unit = unit_text.and_then(|u| {
            let unit = Unit::new(u);
            if unit.is_none() {
                self.warn(&format!("{key}.unit"), Reason::ValueDropped("unit"));
            }
            unit
        });
        Some(Quantity { value, unit })
    }
}

const KNOWN_OTHER_TYPES: &[&str] = &[
    "Composition",
    "CarePlan",
    "DocumentReference",
    "Specimen",
    "Medication",
    "MedicationStatement",
    "MedicationAdministration",
    "MedicationDispense",
    "Procedure",
    "Immunization",
    "DiagnosticReport",
    "ServiceRequest",
    "Coverage",
    "RelatedPerson",
    "PractitionerRole",
    "Location",
    "Device",
    "FamilyMemberHistory",
    "ImagingStudy",
    "Consent",
    "Provenance",
    "Binary",
    "Claim",
    "ClaimResponse",
    "ExplanationOfBenefit",
    "Goal",
    "Media",
    "QuestionnaireResponse",
    "List",
    "Communication",
    "Bundle",
];

fn resource_split(value: &Value, loc: Location, full_url: Option<&str>, config: &IngestConfig, issues: &mut Issues) -> Outcome {
    let Some(obj) = value.as_object() else {
        issues.error(loc, "", Reason::NotAnObject);
        return Outcome::Failed;
    };
    let rt_text = match obj.get("resourceType") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            issues.error(loc, "resourceType", Reason::WrongType("a string"));
            return Outcome::Failed;
        }
        None => {
            issues.error(loc, "resourceType", Reason::Missing);
            return Outcome::Failed;
        }
    };
    let (rt, kind): (&'static str, RecordKind) = match rt_text {
        "Patient" => ("Patient", RecordKind::Patient),
        "Condition" => ("Condition", RecordKind::Condition),
        "Observation" => ("Observation", RecordKind::Observation),
        "AllergyIntolerance" => ("AllergyIntolerance", RecordKind::AllergyIntolerance),
        "MedicationRequest" => ("MedicationRequest", RecordKind::MedicationRequest),
        "Encounter" => ("Encounter", RecordKind::Encounter),
        "Organization" => ("Organization", RecordKind::Organization),
        "Practitioner" => ("Practitioner", RecordKind::Practitioner),
        other if KNOWN_OTHER_TYPES.contains(&other) => {
            issues.warn(loc, "resourceType", Reason::UnsupportedResourceType);
            return Outcome::Skipped;
        }
        _ => {
            issues.error(loc, "resourceType", Reason::UnknownResourceType);
            return Outcome::Failed;
        }
    };
    let mut cx = Ctx { loc, rt, config, issues, identity: Identity::default() };
    if let Some(u) = full_url {
        cx.identity.push(IdentifierKind::RecordIdentifier, "Bundle.entry.fullUrl", u);
    }
    if let Some(id) = cx.str_of(obj, "id") {
        cx.identity.push(IdentifierKind::RecordIdentifier, format!("{rt}.id"), id);
    }
    let profiles: Vec<&str> = obj
        .get("meta")
        .and_then(|m| m.get("profile"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let has_profile = |name: &str| profiles.iter().any(|p| p.split('|').next().is_some_and(|p| p.ends_with(name)));
    if let Some(text) = cx.object(obj, "text") {
        if let Some(div) = cx.str_of(text, "div") {
            cx.identity.push(IdentifierKind::Narrative, format!("{rt}.text.div"), div);
        }
    }
    for (i, n) in cx.array(obj, "note").iter().enumerate() {
        if let Some(t) = n.get("text").and_then(Value::as_str) {
            cx.identity.push(IdentifierKind::FreeText, format!("{rt}.note[{i}].text"), t);
        }
    }
    // Contained resources: only their identifying parts are kept (in identity).
    let mut contained_ids: Vec<&str> = Vec::new();
    for (i, c) in cx.array(obj, "contained").iter().enumerate() {
        let Some(c) = c.as_object() else {
            cx.err(&format!("contained[{i}]"), Reason::NotAnObject);
            continue;
        };
        if let Some(id) = c.get("id").and_then(Value::as_str) {
            contained_ids.push(id);
        }
        let saved = cx.rt;
        cx.rt = "contained";
        cx.names(c, true);
        cx.telecoms(c, IdentifierKind::OtherPartyIdentifier);
        cx.addresses(c, true);
        for ident in c.get("identifier").and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = ident.get("value").and_then(Value::as_str) {
                cx.identity.push(IdentifierKind::OtherPartyIdentifier, "contained.identifier", v);
            }
        }
        if let Some(d) = c.get("text").and_then(|t| t.get("div")).and_then(Value::as_str) {
            cx.identity.push(IdentifierKind::Narrative, "contained.text.div", d);
        }
        cx.rt = saved;
    }
    // Business identifiers.
    let mut insurer = None;
    let mut facility = None;
    for (i, ident) in cx.array(obj, "identifier").iter().enumerate() {
        let Some(ident) = ident.as_object() else {
            cx.err(&format!("identifier[{i}]"), Reason::NotAnObject);
            continue;
        };
        let system = cx.str_of(ident, "system").unwrap_or("");
        let Some(v) = cx.str_of(ident, "value") else {
            if rt == "Patient" {
                cx.err(&format!("identifier[{i}].value"), Reason::Missing);
            }
            continue;
        };
        let path = format!("{rt}.identifier[{i}]");
        match rt {
            "Patient" if system == MEMBER_ID_SYSTEM => insurer = insurer.or(cx.member_id(&format!("identifier[{i}].value"), v)),
            "Patient" if system == "http://jpfhir.jp/fhir/core/IdSystem/MyNumber" || system.ends_with("/MyNumber") => {
                cx.identity.push(IdentifierKind::MyNumber, path, v)
            }
            "Patient" => cx.identity.push(IdentifierKind::PatientId, path, v),
            "Organization" if system == "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no" => {
                match Coded::new(CodeSystem::FacilityNumber, v) {
                    Ok(_) if cx.config.masters.contains(CodeSystem::FacilityNumber, v) == Some(false) => {
                        cx.err(&format!("identifier[{i}].value"), Reason::NotInMaster(CodeSystem::FacilityNumber))
                    }
                    Ok(c) => facility = Some(c),
                    Err(e) => cx.err(&format!("identifier[{i}].value"), Reason::Shape(e.0)),
                }
            }
            "Organization" | "Practitioner" => cx.identity.push(IdentifierKind::OtherPartyIdentifier, path, v),
            _ => cx.identity.push(IdentifierKind::RecordIdentifier, path, v),
        }
    }
    let cids = contained_ids.clone();
    let body = match rt {
        "Patient" => {
            if cx.array(obj, "identifier").is_empty() {
                cx.err("identifier", Reason::Missing);
            }
            cx.names(obj, false);
            cx.telecoms(obj, IdentifierKind::Phone);
            for c in cx.array(obj, "contact") {
                if let Some(c) = c.as_object() {
                    cx.telecoms(c, IdentifierKind::Phone);
                    cx.names(c, true);
                    cx.addresses(c, true);
                }
            }
            let mut p = PatientContent { prefecture: cx.addresses(obj, false), ..Default::default() };
            p.prefecture = p.prefecture.or_else(|| insurer.and_then(|n| n.prefecture()).and_then(Prefecture::new));
            p.sex = match cx.str_of(obj, "gender") {
                None => None,
                Some("male") => Some(Sex::Male),
                Some("female") => Some(Sex::Female),
                Some("other") => Some(Sex::Other),
                Some("unknown") => Some(Sex::Unknown),
                Some(_) => {
                    cx.err("gender", Reason::BadValue("administrative gender"));
                    None
                }
            };
            if let Some(s) = cx.str_of(obj, "gender") {
                cx.identity.push(IdentifierKind::Sex, "Patient.gender", s);
            }
            if let Some(d) = cx.date(obj, "birthDate") {
                p.birth = Some(d.year_month());
                if let Some(s) = cx.str_of(obj, "birthDate") {
                    cx.identity.push(IdentifierKind::BirthDate, "Patient.birthDate", s);
                }
            }
            match obj.get("deceasedBoolean") {
                Some(Value::Bool(b)) => p.deceased = Some(*b),
                Some(_) => cx.err("deceasedBoolean", Reason::WrongType("a boolean")),
                None => {}
            }
            if let Some(d) = cx.date(obj, "deceasedDateTime") {
                p.deceased = Some(true);
                p.deceased_on = Some(d);
            }
            ContentBody::Patient(p)
        }
        "Condition" => {
            let mut c = ConditionContent::default();
            if !obj.contains_key("code") {
                cx.err("code", Reason::Missing);
            }
            c.codes = cx.concept(obj, "code");
            if !cx.reference(obj, "subject", true, &cids) {
                cx.err("subject", Reason::Missing);
            }
            c.clinical_status = cx.concept_tokens(obj, "clinicalStatus").into_iter().next();
            c.verification_status = cx.concept_tokens(obj, "verificationStatus").into_iter().next();
            c.categories = cx.concepts_tokens(obj, "category");
            c.onset = cx.date(obj, "onsetDateTime");
            c.abatement = cx.date(obj, "abatementDateTime");
            c.recorded = cx.date(obj, "recordedDate");
            cx.reference(obj, "encounter", false, &cids);
            cx.reference(obj, "recorder", false, &cids);
            cx.reference(obj, "asserter", false, &cids);
            for key in ["onsetString", "abatementString"] {
                if let Some(t) = cx.str_of(obj, key) {
                    cx.identity.push(IdentifierKind::FreeText, format!("Condition.{key}"), t);
                }
            }
            ContentBody::Condition(c)
        }
        "Observation" => {
            let mut o = ObservationContent { status: cx.code_field(obj, "status"), ..Default::default() };
            if !obj.contains_key("status") {
                cx.err("status", Reason::Missing);
            }
            if !obj.contains_key("code") {
                cx.err("code", Reason::Missing);
            }
            o.codes = cx.concept(obj, "code");
            if has_profile("JP_Observation_LabResult_eCS") && config.clins_strict && !o.codes.iter().any(|c| c.system == CodeSystem::LocalLab) {
                cx.err("code.coding", Reason::NoLocalLabCode);
            }
            if !cx.reference(obj, "subject", true, &cids) {
                cx.err("subject", Reason::Missing);
            }
            o.categories = cx.concepts_tokens(obj, "category");
            o.effective = cx.date(obj, "effectiveDateTime");
            if o.effective.is_none() {
                if let Some(p) = cx.object(obj, "effectivePeriod") {
                    o.effective = cx.date(p, "start");
                }
            }
            o.value = cx.quantity(obj, "valueQuantity");
            o.value_codes = cx.concept(obj, "valueCodeableConcept");
            if let Some(t) = cx.str_of(obj, "valueString") {
                cx.identity.push(IdentifierKind::FreeText, "Observation.valueString", t);
            }
            o.interpretation = cx.concepts_tokens(obj, "interpretation");
            for (i, comp) in cx.array(obj, "component").iter().enumerate() {
                let Some(comp) = comp.as_object() else {
                    cx.err(&format!("component[{i}]"), Reason::NotAnObject);
                    continue;
                };
                let codes = match comp.get("code").and_then(Value::as_object) {
                    Some(cc) => cx.concept_obj(cc, &format!("component[{i}].code")),
                    None => {
                        cx.err(&format!("component[{i}].code"), Reason::Missing);
                        Vec::new()
                    }
                };
                let value = if comp.contains_key("valueQuantity") { cx.quantity(comp, "valueQuantity") } else { None };
                let value_codes = if comp.contains_key("valueCodeableConcept") { cx.concept(comp, "valueCodeableConcept") } else { Vec::new() };
                if let Some(t) = comp.get("valueString").and_then(Value::as_str) {
                    cx.identity.push(IdentifierKind::FreeText, format!("Observation.component[{i}].valueString"), t);
                }
                o.components.push(ObservationComponent { codes, value, value_codes });
            }
            cx.reference(obj, "encounter", false, &cids);
            cx.references(obj, "performer", &cids);
            cx.reference(obj, "specimen", false, &cids);
            ContentBody::Observation(o)
        }
        "AllergyIntolerance" => {
            let mut a = AllergyContent::default();
            if !obj.contains_key("code") {
                cx.err("code", Reason::Missing);
            }
            a.codes = cx.concept(obj, "code");
            if !cx.reference(obj, "patient", true, &cids) {
                cx.err("patient", Reason::Missing);
            }
            for (i, c) in cx.array(obj, "category").iter().enumerate() {
                let t = c.as_str();
                if let Some(code) = cx.token(&format!("category[{i}]"), t) {
                    a.categories.push(code);
                }
            }
            a.criticality = cx.code_field(obj, "criticality");
            a.clinical_status = cx.concept_tokens(obj, "clinicalStatus").into_iter().next();
            a.verification_status = cx.concept_tokens(obj, "verificationStatus").into_iter().next();
            a.onset = cx.date(obj, "onsetDateTime");
            a.recorded = cx.date(obj, "recordedDate");
            cx.reference(obj, "encounter", false, &cids);
            cx.reference(obj, "recorder", false, &cids);
            cx.reference(obj, "asserter", false, &cids);
            for (i, r) in cx.array(obj, "reaction").iter().enumerate() {
                if let Some(r) = r.as_object() {
                    if let Some(d) = r.get("description").and_then(Value::as_str) {
                        cx.identity.push(IdentifierKind::FreeText, format!("AllergyIntolerance.reaction[{i}].description"), d);
                    }
                    for (j, m) in r.get("manifestation").and_then(Value::as_array).into_iter().flatten().enumerate() {
                        if let Some(m) = m.as_object() {
                            let codes = cx.concept_obj(m, &format!("reaction[{i}].manifestation[{j}]"));
                            a.codes.extend(codes);
                        }
                    }
                    for n in r.get("note").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(t) = n.get("text").and_then(Value::as_str) {
                            cx.identity.push(IdentifierKind::FreeText, format!("AllergyIntolerance.reaction[{i}].note"), t);
                        }
                    }
                }
            }
            ContentBody::Allergy(a)
        }
        "MedicationRequest" => {
            let mut m = MedicationContent { status: cx.code_field(obj, "status"), intent: cx.code_field(obj, "intent"), ..Default::default() };
            if !obj.contains_key("status") {
                cx.err("status", Reason::Missing);
            }
            if !obj.contains_key("intent") {
                cx.err("intent", Reason::Missing);
            }
            if obj.contains_key("medicationCodeableConcept") {
                m.codes = cx.concept(obj, "medicationCodeableConcept");
                if has_profile("JP_MedicationRequest_eCS")
                    && config.clins_strict
                    && !m.codes.iter().any(|c| matches!(c.system, CodeSystem::Yj | CodeSystem::GeneralDrugName | CodeSystem::NoStandardDrugCode))
                {
                    cx.err("medicationCodeableConcept.coding", Reason::NoStandardDrugCode);
                }
            } else if !cx.reference(obj, "medicationReference", false, &cids) {
                cx.err("medication[x]", Reason::Missing);
            }
            if !cx.reference(obj, "subject", true, &cids) {
                cx.err("subject", Reason::Missing);
            }
            m.categories = cx.concepts_tokens(obj, "category");
            m.authored = cx.date(obj, "authoredOn");
            cx.reference(obj, "encounter", false, &cids);
            cx.reference(obj, "requester", false, &cids);
            cx.reference(obj, "recorder", false, &cids);
            if let Some(g) = cx.object(obj, "groupIdentifier") {
                if let Some(v) = g.get("value").and_then(Value::as_str) {
                    cx.identity.push(IdentifierKind::RecordIdentifier, "MedicationRequest.groupIdentifier", v);
                }
            }
            for (i, d) in cx.array(obj, "dosageInstruction").iter().enumerate() {
                let Some(d) = d.as_object() else {
                    cx.err(&format!("dosageInstruction[{i}]"), Reason::NotAnObject);
                    continue;
                };
                for key in ["text", "patientInstruction"] {
                    if let Some(t) = d.get(key).and_then(Value::as_str) {
                        cx.identity.push(IdentifierKind::FreeText, format!("MedicationRequest.dosageInstruction[{i}].{key}"), t);
                    }
                }
                if let Some(timing) = d.get("timing").and_then(Value::as_object) {
                    if timing.contains_key("code") {
                        m.usage_codes.extend(cx.concept_tokens(timing, "code"));
                    }
                    if let Some(b) = timing.get("repeat").and_then(|r| r.get("boundsDuration")).and_then(Value::as_object) {
                        if let Some(v) = b.get("value").and_then(Value::as_f64) {
                            m.duration_days = Some(v);
                        }
                    }
                }
                for (j, dr) in d.get("doseAndRate").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    if let Some(dr) = dr.as_object() {
                        if dr.contains_key("doseQuantity") && m.dose.is_none() {
                            m.dose = cx.quantity(dr, "doseQuantity");
                        }
                        let _ = j;
                    }
                }
            }
            if let Some(dr) = cx.object(obj, "dispenseRequest") {
                m.dispense = cx.quantity(dr, "quantity");
                if let Some(d) = dr.get("expectedSupplyDuration").and_then(|d| d.get("value")).and_then(Value::as_f64) {
                    m.duration_days = m.duration_days.or(Some(d));
                }
            }
            ContentBody::Medication(m)
        }
        "Encounter" => {
            let mut e = EncounterContent { status: cx.code_field(obj, "status"), ..Default::default() };
            if !obj.contains_key("status") {
                cx.err("status", Reason::Missing);
            }
            match cx.object(obj, "class") {
                Some(c) => e.class = cx.code_field(c, "code"),
                None => cx.err("class", Reason::Missing),
            }
            if let Some(p) = cx.object(obj, "period") {
                e.start = cx.date(p, "start");
                e.end = cx.date(p, "end");
            }
            cx.reference(obj, "subject", true, &cids);
            cx.reference(obj, "serviceProvider", false, &cids);
            for (i, r) in cx.array(obj, "reasonCode").iter().enumerate() {
                if let Some(t) = r.get("text").and_then(Value::as_str) {
                    cx.identity.push(IdentifierKind::FreeText, format!("Encounter.reasonCode[{i}].text"), t);
                }
            }
            ContentBody::Encounter(e)
        }
        "Organization" => {
            let mut o = OrganizationContent { facility, ..Default::default() };
            if let Some(n) = cx.str_of(obj, "name") {
                cx.identity.push(IdentifierKind::OtherPartyIdentifier, "Organization.name", n);
            }
            cx.telecoms(obj, IdentifierKind::OtherPartyIdentifier);
            let addr_pref = cx.addresses(obj, true);
            for e in cx.array(obj, "extension") {
                if e.get("url").and_then(Value::as_str).is_some_and(|u| u.ends_with("JP_Organization_PrefectureNo")) {
                    if let Some(code) = e.get("valueCoding").and_then(|c| c.get("code")).and_then(Value::as_str) {
                        match code.parse::<u8>().ok().filter(|_| code.len() == 2).and_then(Prefecture::new) {
                            Some(p) => o.prefecture = Some(p),
                            None => cx.err("extension.valueCoding.code", Reason::BadValue("prefecture code")),
                        }
                    }
                }
            }
            o.prefecture = o.prefecture.or(addr_pref);
            o.types = cx.concepts_tokens(obj, "type");
            ContentBody::Organization(o)
        }
        _ => {
            cx.names(obj, true);
            cx.telecoms(obj, IdentifierKind::OtherPartyIdentifier);
            cx.addresses(obj, true);
            ContentBody::Practitioner
        }
    };
    let record = RecordRef { location: loc };
    Outcome::Split(kind, Box::new(SplitRecord { identity: cx.identity, content: Content { record, body } }))
}
