//! UKE レセプト電算処理 files (医科): Shift_JIS, CRLF, comma-separated without quoting, one
//! record per line, the first field naming the record (IR, RE, HO, KO, SN, JD, MF, SY, SI, IY,
//! TO, CO, SJ, GO). Read line by line; a trailing EOF mark (0x1A) is ignored.
//!
//! Field positions (0-based, field 0 is the record id) follow the 記録条件仕様 (医科):
//! - IR: 1 審査支払機関, 2 都道府県, 3 点数表, 4 医療機関コード, 6 医療機関名称 (identity),
//!   7 請求年月, 9 電話番号 (identity).
//! - RE: 1 レセプト番号, 2 レセプト種別, 3 診療年月, 4 氏名 (identity), 5 男女区分, 6 生年月日
//!   (identity; year-month to content), 7 給付割合, 8 入院年月日, 13 カルテ番号 (identity),
//!   36 カタカナ氏名 (identity). Other fields are not kept.
//! - HO: 1 保険者番号 (identity; check digit verified, prefecture and 法別 to content), 2 記号,
//!   3 番号 (identity), 4 実日数, 5 合計点数.
//! - KO: 1 公費負担者番号 (identity; check digit mismatch is a warning), 2 受給者番号 (identity),
//!   4 実日数, 5 合計点数.
//! - SN: 1 負担者種別, 2 確認区分, 3–5 保険者番号・記号・番号, 6 枝番, 7 受給者番号 (identity).
//! - SY: 1 傷病名コード, 2 診療開始日, 3 転帰区分, 4 修飾語コード, 5 傷病名称 (identity),
//!   6 主傷病, 7 補足コメント (identity).
//! - SI / IY / TO: 1 診療識別, 2 負担区分, 3 code (9 digits), 4 数量・使用量, 5 点数, 6 回数; later
//!   fields: 9-digit comment codes to content, other text to identity, numbers not kept.
//! - CO: 1 診療識別, 2 負担区分, 3 コメントコード, 4 文字データ (identity).
//! - SJ (症状詳記), JD, MF: counted as skipped, nothing kept. GO: 1 総件数, 2 総合計点数.
//! - Unknown record ids: a warning, nothing kept.
//!
//! Dates: 西暦 `YYYYMMDD` or 和暦 `GYYMMDD`; months `YYYYMM` or `GYYMM` (era boundaries
//! enforced). A record that fails rejects itself; lines after a rejected RE are rejected as
//! belonging to it.

use std::io::BufRead;

use niji_core::{InsurerNumber, InsurerNumberError};

use crate::codes::CodeSystem;
use crate::dates::{parse_compact, parse_compact_month, Date};
use crate::masters::CodeMasters;
use crate::model::*;
use crate::report::{FileReport, Issues, Problem, Reason, RecordKind, UkeRecord};
use crate::{IngestConfig, IngestError, Line, Lines};

/// Ingests one UKE file.
pub fn ingest_uke(name: &str, reader: impl BufRead, config: &IngestConfig, sink: &mut dyn FnMut(SplitRecord)) -> Result<FileReport, IngestError> {
    let mut report = FileReport::new(name);
    let mut lines = Lines::new(reader, config.max_line_bytes);
    let mut claim: Option<(u64, bool)> = None; // (RE line, rejected)
    let mut warned_lf = false;
    // A claim line rejected for its length still opens a (rejected) claim: its payers and lines
    // must not fall to the claim before it.
    let long_claim = std::cell::Cell::new(None);
    let note_long = |number: u64, start: &[u8]| {
        if opens_claim(start) {
            long_claim.set(Some(number));
        }
    };
    while let Some(Line { number: line_no, loc, bytes: line, crlf }) = lines.next_line_noting(&mut report, note_long)? {
        if let Some(number) = long_claim.take() {
            claim = Some((number, true));
        }
        if !crlf && !warned_lf && !line.is_empty() && line != [0x1a] {
            warned_lf = true;
            report.warnings.push(Problem::new(loc, "", Reason::BareLf));
        }
        if line.is_empty() || line == [0x1a] {
            continue;
        }
        let (text, had_errors) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(line);
        if had_errors {
            report.reject(vec![Problem::new(loc, "", Reason::NotShiftJis)]);
            // An undecodable claim is still a claim: its payers and lines are rejected with it,
            // not attached to the claim before (whose person they are not).
            if opens_claim(line) {
                claim = Some((line_no, true));
            }
            continue;
        }
        let fields = split_fields(&text);
        let mut issues = Issues::default();
        let rec = record_kind(fields[0]);
        if rec == UkeRecord::RE {
            claim = Some((line_no, false));
        }
        let out = split_record(rec, &fields, loc, claim.map(|c| c.0), config, &mut issues);
        report.warnings.append(&mut issues.warnings);
        if rec != UkeRecord::RE && !matches!(rec, UkeRecord::IR | UkeRecord::GO | UkeRecord::Other) {
            match claim {
                None => issues.error(loc, fields[0].to_string().chars().take(2).collect::<String>(), Reason::RecordOutsideClaim),
                Some((_, true)) => issues.error(loc, "RE", Reason::InRejectedClaim),
                _ => {}
            }
        }
        match out {
            Some(rec_out) if issues.errors.is_empty() => {
                report.accept(RecordKind::Uke(rec));
                sink(rec_out);
            }
            None if issues.errors.is_empty() => report.skipped += 1,
            _ => {
                if rec == UkeRecord::RE {
                    claim = Some((line_no, true));
                }
                report.reject(issues.errors);
            }
        }
    }
    Ok(report)
}

/// The comma-separated fields of a line (UKE has no quoting), by a plain scan of its bytes into
/// a vector that holds the longest records' fields without growing: `str::split` and a vector
/// grown as it went were a sixth of an intake's time (lines are about 60 bytes, fields a few
/// bytes each: a search call per comma costs more than looking at each byte).
fn split_fields(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(FIELDS_HELD);
    let mut start = 0;
    for (at, &b) in text.as_bytes().iter().enumerate() {
        if b == b',' {
            // A comma is ASCII: the byte after it starts a character.
            out.push(&text[start..at]);
            start = at + 1;
        }
    }
    out.push(&text[start..]);
    out
}

/// Fields of the longest common records (SI and IY lines have about 40).
const FIELDS_HELD: usize = 48;

fn record_kind(id: &str) -> UkeRecord {
    use UkeRecord::*;
    match id {
        "IR" => IR,
        "RE" => RE,
        "HO" => HO,
        "KO" => KO,
        "SN" => SN,
        "JD" => JD,
        "MF" => MF,
        "SY" => SY,
        "SI" => SI,
        "IY" => IY,
        "TO" => TO,
        "CO" => CO,
        "SJ" => SJ,
        "GO" => GO,
        _ => Other,
    }
}

struct Rec<'a> {
    id: &'static str,
    f: &'a [&'a str],
    loc: Location,
    now: Date,
    masters: &'a CodeMasters,
    issues: &'a mut Issues,
    identity: Identity,
}

impl Rec<'_> {
    fn get(&self, i: usize) -> &str {
        self.f.get(i).map(|s| s.trim()).unwrap_or("")
    }
    /// `RE.4(氏名)`: the record, the field's index and its name (built without `format!`, which
    /// was a twentieth of an intake's time: every identity item names its field).
    fn field(&self, i: usize, name: &str) -> String {
        let mut out = String::with_capacity(self.id.len() + name.len() + 8);
        out.push_str(self.id);
        out.push('.');
        out.push_str(itoa::Buffer::new().format(i));
        out.push('(');
        out.push_str(name);
        out.push(')');
        out
    }
    fn err(&mut self, i: usize, name: &str, reason: Reason) {
        let f = self.field(i, name);
        self.issues.error(self.loc, f, reason);
    }
    fn ident(&mut self, i: usize, name: &str, kind: IdentifierKind) {
        // Borrowed from the line, not from `self`: no copy of the value, and no field name is
        // formatted for an empty value (which `Identity::push` would drop anyway).
        let f: &[&str] = self.f;
        let v = f.get(i).map(|s| s.trim()).unwrap_or("");
        if v.is_empty() {
            return;
        }
        let field = self.field(i, name);
        self.identity.push(kind, field, v);
    }
    fn required(&mut self, i: usize, name: &str) -> bool {
        if self.get(i).is_empty() {
            self.err(i, name, Reason::Missing);
            false
        } else {
            true
        }
    }
    fn num<T: std::str::FromStr>(&mut self, i: usize, name: &str) -> Option<T> {
        let v = self.get(i);
        if v.is_empty() {
            return None;
        }
        // Full-width digits are common in UKE numeric fields.
        let ascii: String = v
            .chars()
            .map(|c| if ('０'..='９').contains(&c) { char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c) } else { c })
            .collect();
        match ascii.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(i, name, Reason::BadValue("number"));
                None
            }
        }
    }
    fn date(&mut self, i: usize, name: &str) -> Option<Date> {
        let v = self.get(i);
        if v.is_empty() {
            return None;
        }
        match parse_compact(v).and_then(|d| d.not_after(self.now)) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(i, name, Reason::Date(e));
                None
            }
        }
    }
    fn month(&mut self, i: usize, name: &str) -> Option<YearMonth> {
        let v = self.get(i);
        if v.is_empty() {
            return None;
        }
        match parse_compact_month(v) {
            Ok(ym) if ym > self.now.year_month() => {
                self.err(i, name, Reason::Date(crate::dates::DateError::Future));
                None
            }
            Ok(ym) => Some(ym),
            Err(e) => {
                self.err(i, name, Reason::Date(e));
                None
            }
        }
    }
    fn code(&mut self, i: usize, name: &str, system: CodeSystem) -> Option<Coded> {
        let v = self.get(i);
        match Coded::new(system, v) {
            Ok(c) => {
                if self.masters.contains(system, v) == Some(false) {
                    self.err(i, name, Reason::NotInMaster(system));
                    return None;
                }
                Some(c)
            }
            Err(e) => {
                self.err(i, name, if v.is_empty() { Reason::Missing } else { Reason::Shape(e.0) });
                None
            }
        }
    }
    fn min_fields(&mut self, n: usize) -> bool {
        if self.f.len() < n {
            self.issues.error(self.loc, self.id, Reason::TooFewFields { expected: n });
            false
        } else {
            true
        }
    }
}

fn payer_digits(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| match c {
            '0'..='9' => Some(c as u8 - b'0'),
            '０'..='９' => Some((c as u32 - '０' as u32) as u8),
            _ => None,
        })
        .collect()
}

/// Whether a line's first bytes (read before decoding) are those of a claim (RE) record.
fn opens_claim(line: &[u8]) -> bool {
    line.starts_with(b"RE,")
}

fn split_record(kind: UkeRecord, f: &[&str], loc: Location, claim: Option<u64>, config: &IngestConfig, issues: &mut Issues) -> Option<SplitRecord> {
    let id: &'static str = match kind {
        UkeRecord::IR => "IR",
        UkeRecord::RE => "RE",
        UkeRecord::HO => "HO",
        UkeRecord::KO => "KO",
        UkeRecord::SN => "SN",
        UkeRecord::JD => "JD",
        UkeRecord::MF => "MF",
        UkeRecord::SY => "SY",
        UkeRecord::SI => "SI",
        UkeRecord::IY => "IY",
        UkeRecord::TO => "TO",
        UkeRecord::CO => "CO",
        UkeRecord::SJ => "SJ",
        UkeRecord::GO => "GO",
        UkeRecord::Other => {
            issues.warn(loc, "record", Reason::UnknownRecord);
            return None;
        }
    };
    let mut r = Rec { id, f, loc, now: config.now, masters: &config.masters, issues, identity: Identity::default() };
    let body = match kind {
        UkeRecord::IR => {
            if !r.min_fields(8) {
                return None;
            }
            let prefecture = r.num::<u8>(2, "都道府県").and_then(|p| {
                let p2 = Prefecture::new(p);
                if p2.is_none() {
                    r.err(2, "都道府県", Reason::BadValue("prefecture code"));
                }
                p2
            });
            r.ident(6, "医療機関名称", IdentifierKind::OtherPartyIdentifier);
            r.ident(9, "電話番号", IdentifierKind::OtherPartyIdentifier);
            ContentBody::ClaimFacility(ClaimFacilityContent {
                payer_kind: r.num(1, "審査支払機関"),
                prefecture,
                fee_table: r.num(3, "点数表"),
                facility: r.code(4, "医療機関コード", CodeSystem::FacilityCode),
                billing_month: {
                    r.required(7, "請求年月");
                    r.month(7, "請求年月")
                },
            })
        }
        UkeRecord::RE => {
            if !r.min_fields(8) {
                return None;
            }
            r.required(4, "氏名");
            r.ident(4, "氏名", IdentifierKind::NameKanji);
            r.ident(36, "カタカナ氏名", IdentifierKind::NameKana);
            r.ident(13, "カルテ番号", IdentifierKind::PatientId);
            r.ident(6, "生年月日", IdentifierKind::BirthDate);
            r.ident(5, "男女区分", IdentifierKind::Sex);
            let sex = match r.get(5) {
                "1" => Some(Sex::Male),
                "2" => Some(Sex::Female),
                "" => {
                    r.err(5, "男女区分", Reason::Missing);
                    None
                }
                _ => {
                    r.err(5, "男女区分", Reason::BadValue("sex code"));
                    None
                }
            };
            r.required(6, "生年月日");
            let birth = r.date(6, "生年月日").map(|d| d.year_month());
            r.required(3, "診療年月");
            let receipt_kind = if r.get(2).len() == 4 && r.get(2).bytes().all(|b| b.is_ascii_digit()) {
                Code::new(CodeSystem::Token, r.get(2)).ok()
            } else {
                r.err(2, "レセプト種別", Reason::BadValue("receipt kind"));
                None
            };
            ContentBody::Claim(ClaimContent {
                receipt_no: r.num(1, "レセプト番号"),
                receipt_kind,
                month: r.month(3, "診療年月"),
                sex,
                birth,
                benefit_ratio: r.num(7, "給付割合"),
                admitted_on: r.date(8, "入院年月日"),
            })
        }
        UkeRecord::HO => {
            if !r.min_fields(6) {
                return None;
            }
            r.required(1, "保険者番号");
            r.required(3, "番号");
            r.ident(1, "保険者番号", IdentifierKind::InsurerNumber);
            r.ident(2, "記号", IdentifierKind::InsuredSymbol);
            r.ident(3, "番号", IdentifierKind::InsuredNumber);
            let mut prefecture = None;
            let mut law = None;
            if !r.get(1).is_empty() {
                match InsurerNumber::parse(r.get(1)) {
                    Ok(n) => {
                        prefecture = n.prefecture().and_then(Prefecture::new);
                        law = (n.digits().len() == 8).then(|| n.digits()[0] * 10 + n.digits()[1]);
                    }
                    Err(InsurerNumberError::CheckDigit { .. }) => r.err(1, "保険者番号", Reason::InsurerCheckDigit),
                    Err(_) => r.err(1, "保険者番号", Reason::InsurerShape),
                }
            }
            ContentBody::ClaimPayer(ClaimPayerContent {
                claim,
                kind: PayerKind::Insurance,
                prefecture,
                law,
                days: r.num(4, "実日数"),
                points: r.num(5, "合計点数"),
            })
        }
        UkeRecord::KO => {
            if !r.min_fields(6) {
                return None;
            }
            r.required(1, "公費負担者番号");
            r.ident(1, "公費負担者番号", IdentifierKind::InsurerNumber);
            r.ident(2, "受給者番号", IdentifierKind::PublicExpenseRecipient);
            let mut law = None;
            let mut prefecture = None;
            match payer_digits(r.get(1)) {
                Some(d) if d.len() == 8 => {
                    law = Some(d[0] * 10 + d[1]);
                    prefecture = Prefecture::new(d[2] * 10 + d[3]);
                    if niji_core::insurer::check_digit(&d[..7]) != d[7] {
                        let f = r.field(1, "公費負担者番号");
                        r.issues.warn(loc, f, Reason::PayerCheckDigit);
                    }
                }
                Some(d) if d.is_empty() => {}
                _ => r.err(1, "公費負担者番号", Reason::BadValue("8-digit 公費負担者番号")),
            }
            ContentBody::ClaimPayer(ClaimPayerContent {
                claim,
                kind: PayerKind::PublicExpense,
                prefecture,
                law,
                days: r.num(4, "実日数"),
                points: r.num(5, "合計点数"),
            })
        }
        UkeRecord::SN => {
            if !r.min_fields(3) {
                return None;
            }
            r.ident(3, "保険者番号等", IdentifierKind::InsurerNumber);
            r.ident(4, "記号", IdentifierKind::InsuredSymbol);
            r.ident(5, "番号", IdentifierKind::InsuredNumber);
            r.ident(6, "枝番", IdentifierKind::BranchNumber);
            r.ident(7, "受給者番号", IdentifierKind::PublicExpenseRecipient);
            ContentBody::ClaimPayer(ClaimPayerContent { claim, kind: PayerKind::Eligibility, prefecture: None, law: None, days: None, points: None })
        }
        UkeRecord::SY => {
            if !r.min_fields(4) {
                return None;
            }
            let code = r.code(1, "傷病名コード", CodeSystem::ReceiptDisease);
            r.required(2, "診療開始日");
            let started = r.date(2, "診療開始日");
            let outcome = r.num::<u8>(3, "転帰区分");
            let mods = r.get(4).to_string();
            let mut modifiers = Vec::new();
            if !mods.is_empty() {
                if !mods.len().is_multiple_of(4) || !mods.bytes().all(|b| b.is_ascii_digit()) {
                    r.err(4, "修飾語コード", Reason::Shape(CodeSystem::DiseaseModifier));
                } else {
                    modifiers = mods
                        .as_bytes()
                        .chunks(4)
                        .filter_map(|c| Code::new(CodeSystem::DiseaseModifier, std::str::from_utf8(c).unwrap_or("")).ok())
                        .collect();
                    if modifiers.iter().any(|m| r.masters.contains(CodeSystem::DiseaseModifier, m.as_str()) == Some(false)) {
                        r.err(4, "修飾語コード", Reason::NotInMaster(CodeSystem::DiseaseModifier));
                    }
                }
            }
            r.ident(5, "傷病名称", IdentifierKind::FreeText);
            r.ident(7, "補足コメント", IdentifierKind::FreeText);
            let main = r.get(6) == "01";
            let code = code?;
            ContentBody::ClaimDisease(ClaimDiseaseContent { claim, code, modifiers, started, outcome, main })
        }
        UkeRecord::SI | UkeRecord::IY | UkeRecord::TO | UkeRecord::CO => {
            let (system, line_kind, cname) = match kind {
                UkeRecord::SI => (CodeSystem::ReceiptProcedure, ClaimLineKind::Procedure, "診療行為コード"),
                UkeRecord::IY => (CodeSystem::ReceiptDrug, ClaimLineKind::Drug, "医薬品コード"),
                UkeRecord::TO => (CodeSystem::ReceiptMaterial, ClaimLineKind::Material, "特定器材コード"),
                _ => (CodeSystem::ReceiptComment, ClaimLineKind::Comment, "コメントコード"),
            };
            if !r.min_fields(4) {
                return None;
            }
            let category = r.num::<u8>(1, "診療識別");
            let burden = if r.get(2).is_empty() {
                None
            } else {
                match Code::new(CodeSystem::Token, r.get(2)).ok().filter(|_| r.get(2).len() <= 2) {
                    Some(c) => Some(c),
                    None => {
                        r.err(2, "負担区分", Reason::BadValue("負担区分"));
                        None
                    }
                }
            };
            let code = r.code(3, cname, system);
            let mut line = ClaimLineContent {
                claim,
                kind: line_kind,
                category,
                burden,
                code: code.clone()?,
                quantity: None,
                points: None,
                times: None,
                comment_codes: Vec::new(),
            };
            if kind == UkeRecord::CO {
                r.ident(4, "文字データ", IdentifierKind::FreeText);
                for i in 5..f.len() {
                    r.ident(i, "文字データ", IdentifierKind::FreeText);
                }
            } else {
                line.quantity = r.num(4, "数量");
                line.points = r.num(5, "点数");
                line.times = r.num(6, "回数");
                for i in 7..f.len() {
                    let v = r.get(i);
                    if v.is_empty() {
                        continue;
                    }
                    if v.len() == 9 && v.bytes().all(|b| b.is_ascii_digit()) {
                        if r.masters.contains(CodeSystem::ReceiptComment, v) == Some(false) {
                            r.err(i, "コメントコード", Reason::NotInMaster(CodeSystem::ReceiptComment));
                        } else if let Ok(c) = Code::new(CodeSystem::ReceiptComment, v) {
                            line.comment_codes.push(c);
                        }
                    } else if !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                        r.ident(i, "文字データ", IdentifierKind::FreeText);
                    }
                }
            }
            ContentBody::ClaimLine(line)
        }
        UkeRecord::SJ | UkeRecord::JD | UkeRecord::MF => return None,
        UkeRecord::GO => ContentBody::ClaimTotal { claims: r.num(1, "総件数"), points: r.num(2, "総合計点数") },
        UkeRecord::Other => unreachable!(),
    };
    Some(SplitRecord { identity: r.identity, content: Content { record: RecordRef { location: loc }, body } })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The line splitter gives what `str::split(',')` gives, on any text (commas next to
        /// multi-byte characters included).
        #[test]
        fn fields_split_as_str_split_does(text in "[,a-z0-9あ漢ｱ ]{0,40}") {
            prop_assert_eq!(split_fields(&text), text.split(',').collect::<Vec<_>>());
        }
    }
}
