//! Code systems Niji knows, their FHIR URIs and the shape each code must have.
//!
//! Shapes (checked, not looked up in a master unless the caller loads one, see
//! [`crate::CodeMasters`]):
//! ICD-10 `A00`–`Z99` with up to two more characters (optionally after a dot); 病名管理番号
//! 8 digits; 修飾語管理番号 8; 病名交換用コード 4 alphanumerics; レセ電傷病名コード 7 digits; 修飾語コード 4 digits; レセ電医薬品 9 digits; YJ 12
//! characters with a letter at position 8; 一般名処方コード like YJ ending in `ZZZ`; HOT 7, 9 or 13
//! digits; JLAC10 and JLAC11 17 alphanumerics; 診療行為/特定器材/コメント 9 digits; 医療機関番号
//! 10 digits, 医療機関コード 7 digits. Other tokens (FHIR `code` values, local codes) are short
//! printable ASCII without spaces; FHIR status-like codes are letters and `-` only.

use std::fmt;

/// Code systems. `Token` covers FHIR status/category codes and small value sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodeSystem {
    Icd10,
    /// 標準病名マスター 病名管理番号 (MEDIS key number).
    DiseaseKeyNumber,
    /// レセ電 傷病名コード (傷病名マスター, 7 digits).
    ReceiptDisease,
    /// 修飾語コード (4 digits).
    DiseaseModifier,
    /// MEDIS 修飾語管理番号 (8 characters).
    DiseaseModifierKey,
    /// MEDIS 病名交換用コード (4 alphanumerics).
    DiseaseExchangeCode,
    /// レセ電 医薬品コード.
    ReceiptDrug,
    Yj,
    /// 一般名処方マスタ code.
    GeneralDrugName,
    /// "標準コードなし" marker of CLINS.
    NoStandardDrugCode,
    Hot,
    Jlac10,
    Jlac11,
    /// レセ電 診療行為コード.
    ReceiptProcedure,
    /// レセ電 特定器材コード.
    ReceiptMaterial,
    /// レセ電 コメントコード.
    ReceiptComment,
    /// 保険医療機関番号 (10 digits, FHIR).
    FacilityNumber,
    /// 医療機関コード (7 digits, UKE IR).
    FacilityCode,
    /// CLINS local lab code (JP_CLINS_ObsLabResult_LocalCode_CS).
    LocalLab,
    /// A hospital's local drug code (`…/CodeSystem/DrugCode/<facility>`).
    LocalDrug,
    /// 用法コード (JAMI / ePrescription usage codes).
    Usage,
    /// Codes of coded elements from HL7 / JP Core / CLINS value sets (category, type, …).
    Token,
    /// FHIR primitive `code` elements (status, intent, criticality, class): letters and `-`
    /// only, so they cannot carry a number.
    Status,
}

impl CodeSystem {
    /// The code system of a FHIR `Coding.system`; `None` if Niji does not know it.
    pub fn from_uri(uri: &str) -> Option<Self> {
        use CodeSystem::*;
        Some(match uri {
            "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full"
            | "http://hl7.org/fhir/sid/icd-10"
            | "http://jpfhir.jp/fhir/core/CodeSystem/icd-10" => Icd10,
            "http://medis.or.jp/CodeSystem/master-disease-keyNumber" => DiseaseKeyNumber,
            "http://medis.or.jp/CodeSystem/master-disease-modKeyNumber" => DiseaseModifierKey,
            "http://medis.or.jp/CodeSystem/master-disease-exCode" => DiseaseExchangeCode,
            "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterB-disease" | "http://medis.or.jp/CodeSystem/master-disease-receiptNumber" => {
                ReceiptDisease
            }
            "http://medis.or.jp/CodeSystem/master-disease-keyNumber-modifier"
            | "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/masterB-disease-modifier" => DiseaseModifier,
            "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code" | "urn:oid:1.2.392.100495.20.1.73" => Yj,
            "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationGeneralOrderCode" | "urn:oid:1.2.392.100495.20.1.81" => GeneralDrugName,
            "http://jpfhir.jp/fhir/eCS/CodeSystem/MedicationCodeNocoded_CS" => NoStandardDrugCode,
            "http://medis.or.jp/CodeSystem/master-HOT7"
            | "http://medis.or.jp/CodeSystem/master-HOT9"
            | "http://medis.or.jp/CodeSystem/master-HOT13" => Hot,
            "urn:oid:1.2.392.100495.20.2.74" | "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationCode-Receipt" => ReceiptDrug,
            "http://medis.or.jp/CodeSystem/master-JLAC10-17digits" | "http://jpfhir.jp/fhir/core/CodeSystem/JLAC10" => Jlac10,
            "http://medis.or.jp/CodeSystem/master-JLAC11-17digits" | "http://jpfhir.jp/fhir/core/CodeSystem/JLAC11" => Jlac11,
            "http://jpfhir.jp/fhir/clins/CodeSystem/JP_CLINS_ObsLabResult_LocalCode_CS" => LocalLab,
            "http://jpfhir.jp/fhir/clins/CodeSystem/JLAC10/JP_CLINS_ObsLabResult_CoreLabo_CS" => Jlac10,
            "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no" => FacilityNumber,
            "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationUsage_ePrescription"
            | "http://jami.jp/CodeSystem/MedicationUsage"
            | "http://jami.jp/CodeSystem/MedicationMethodBasicUsage" => Usage,
            u if u.starts_with("http://jpfhir.jp/fhir/eCS/CodeSystem/DrugCode/") => LocalDrug,
            u if u.starts_with("http://terminology.hl7.org/CodeSystem/")
                || u == "http://unitsofmeasure.org"
                || u.starts_with("http://jpfhir.jp/fhir/core/CodeSystem/")
                || u.starts_with("http://jpfhir.jp/fhir/core/mhlw/CodeSystem/")
                || u.starts_with("http://jpfhir.jp/fhir/clins/CodeSystem/")
                || u.starts_with("http://jami.jp/SS-MIX2/CodeSystem/")
                || u.starts_with("http://hl7.org/fhir/") =>
            {
                Token
            }
            _ => return None,
        })
    }

    /// The code system named in a CSV mapping or a CSV cell (`icd10`, `jlac10`, `yj`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        use CodeSystem::*;
        Some(match name.trim().to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "icd10" => Icd10,
            "diseasekeynumber" | "byomeikanri" | "byomei" => DiseaseKeyNumber,
            "receiptdisease" | "receden" | "masterb" => ReceiptDisease,
            "diseasemodifier" => DiseaseModifier,
            "diseasemodifierkey" => DiseaseModifierKey,
            "diseaseexchangecode" => DiseaseExchangeCode,
            "receiptdrug" => ReceiptDrug,
            "yj" => Yj,
            "generaldrugname" | "ippanmei" => GeneralDrugName,
            "hot" | "hot7" | "hot9" | "hot13" => Hot,
            "jlac10" => Jlac10,
            "jlac11" => Jlac11,
            "receiptprocedure" | "shinryokoui" => ReceiptProcedure,
            "receiptmaterial" => ReceiptMaterial,
            "receiptcomment" => ReceiptComment,
            "facilitynumber" => FacilityNumber,
            "facilitycode" => FacilityCode,
            "locallab" => LocalLab,
            "localdrug" => LocalDrug,
            "usage" => Usage,
            "token" | "code" | "local" => Token,
            _ => return None,
        })
    }

    /// The variant's name, as the lake's `system` columns hold it (the same as `Debug`).
    pub fn name(self) -> &'static str {
        use CodeSystem::*;
        match self {
            Icd10 => "Icd10",
            DiseaseKeyNumber => "DiseaseKeyNumber",
            ReceiptDisease => "ReceiptDisease",
            DiseaseModifier => "DiseaseModifier",
            DiseaseModifierKey => "DiseaseModifierKey",
            DiseaseExchangeCode => "DiseaseExchangeCode",
            ReceiptDrug => "ReceiptDrug",
            Yj => "Yj",
            GeneralDrugName => "GeneralDrugName",
            NoStandardDrugCode => "NoStandardDrugCode",
            Hot => "Hot",
            Jlac10 => "Jlac10",
            Jlac11 => "Jlac11",
            ReceiptProcedure => "ReceiptProcedure",
            ReceiptMaterial => "ReceiptMaterial",
            ReceiptComment => "ReceiptComment",
            FacilityNumber => "FacilityNumber",
            FacilityCode => "FacilityCode",
            LocalLab => "LocalLab",
            LocalDrug => "LocalDrug",
            Usage => "Usage",
            Token => "Token",
            Status => "Status",
        }
    }

    /// A short name used in reasons.
    pub fn label(self) -> &'static str {
        use CodeSystem::*;
        match self {
            Icd10 => "ICD-10",
            DiseaseKeyNumber => "病名管理番号",
            ReceiptDisease => "レセ電傷病名コード",
            DiseaseModifier => "修飾語コード",
            DiseaseModifierKey => "修飾語管理番号",
            DiseaseExchangeCode => "病名交換用コード",
            ReceiptDrug => "レセ電医薬品コード",
            Yj => "YJ code",
            GeneralDrugName => "一般名処方コード",
            NoStandardDrugCode => "標準コードなし marker",
            Hot => "HOT code",
            Jlac10 => "JLAC10",
            Jlac11 => "JLAC11",
            ReceiptProcedure => "診療行為コード",
            ReceiptMaterial => "特定器材コード",
            ReceiptComment => "コメントコード",
            FacilityNumber => "保険医療機関番号",
            FacilityCode => "医療機関コード",
            LocalLab => "local lab code",
            LocalDrug => "local drug code",
            Usage => "用法コード",
            Token => "code",
            Status => "status code",
        }
    }
}

/// Why a code does not have its system's shape. Never carries the code itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {} (wrong shape)", .0.label())]
pub struct ShapeError(pub CodeSystem);

impl fmt::Display for CodeSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

fn digits(t: &str, lens: &[usize]) -> bool {
    lens.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
}

fn alnum(t: &str, len: usize) -> bool {
    t.len() == len && t.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// Checks `text` against the shape of `system`.
pub fn check_shape(system: CodeSystem, text: &str) -> Result<(), ShapeError> {
    use CodeSystem::*;
    let t = text;
    let b = t.as_bytes();
    let ok = match system {
        Icd10 => {
            let rest: Vec<u8> = b.iter().skip(3).copied().filter(|&c| c != b'.').collect();
            b.len() >= 3
                && b.len() <= 8
                && b[0].is_ascii_uppercase()
                && b[1].is_ascii_digit()
                && (b[2].is_ascii_digit() || b[2] == b'A' || b[2] == b'B')
                && rest.len() <= 4
                && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'*' || *c == b'-')
                && b.iter().skip(3).filter(|&&c| c == b'.').count() <= 1
                && (b.len() == 3 || b[3] == b'.' || b[3].is_ascii_alphanumeric())
        }
        DiseaseKeyNumber => {
            // MEDIS key numbers are 8 characters; the examples and the master use digits or a
            // leading letter followed by digits.
            t.len() == 8 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) && b[1..].iter().all(u8::is_ascii_digit)
        }
        ReceiptDisease => digits(t, &[7]),
        DiseaseModifierKey => t.len() == 8 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        DiseaseExchangeCode => t.len() == 4 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        DiseaseModifier => digits(t, &[4]),
        ReceiptDrug | ReceiptProcedure | ReceiptMaterial | ReceiptComment => digits(t, &[9]),
        Yj => alnum(t, 12) && b[..7].iter().all(u8::is_ascii_digit) && b[7].is_ascii_uppercase() && b[8..].iter().all(|c| c.is_ascii_digit()),
        GeneralDrugName => {
            alnum(t, 12) && b[..7].iter().all(u8::is_ascii_digit) && b[7].is_ascii_uppercase() && b[8].is_ascii_alphanumeric() && &b[9..] == b"ZZZ"
        }
        NoStandardDrugCode => t == "NOCODED",
        Hot => digits(t, &[7, 9, 13]),
        Jlac10 => alnum(t, 17) && b[..4].iter().all(|c| c.is_ascii_alphanumeric()),
        Jlac11 => alnum(t, 17),
        FacilityNumber => digits(t, &[10]),
        FacilityCode => digits(t, &[7]),
        Status => !t.is_empty() && t.len() <= 32 && b.iter().all(|c| c.is_ascii_alphabetic() || *c == b'-'),
        LocalLab | LocalDrug | Usage | Token => {
            !t.is_empty() && t.len() <= 32 && b.iter().all(|c| c.is_ascii_graphic() && *c != b'"' && *c != b'\\' && *c != b',')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ShapeError(system))
    }
}

/// JIS X 0401 prefecture names, index + 1 = code.
pub const PREFECTURES: [&str; 47] = [
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
];

/// The JIS X 0401 code of a prefecture name, or of the prefecture an address text starts with.
pub fn prefecture_from_text(text: &str) -> Option<u8> {
    let t = text.trim_start();
    PREFECTURES.iter().position(|p| t.starts_with(p)).map(|i| i as u8 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_debug() {
        use CodeSystem::*;
        for s in [
            Icd10,
            DiseaseKeyNumber,
            ReceiptDisease,
            DiseaseModifier,
            DiseaseModifierKey,
            DiseaseExchangeCode,
            ReceiptDrug,
            Yj,
            GeneralDrugName,
            NoStandardDrugCode,
            Hot,
            Jlac10,
            Jlac11,
            ReceiptProcedure,
            ReceiptMaterial,
            ReceiptComment,
            FacilityNumber,
            FacilityCode,
            LocalLab,
            LocalDrug,
            Usage,
            Token,
            Status,
        ] {
            assert_eq!(s.name(), format!("{s:?}"));
        }
    }

    #[test]
    fn shapes() {
        assert!(check_shape(CodeSystem::Icd10, "E11.9").is_ok());
        assert!(check_shape(CodeSystem::Icd10, "E119").is_ok());
        assert!(check_shape(CodeSystem::Icd10, "I10").is_ok());
        assert!(check_shape(CodeSystem::Icd10, "11.9").is_err());
        assert!(check_shape(CodeSystem::Yj, "1190012F1042").is_ok());
        assert!(check_shape(CodeSystem::Yj, "119001231042").is_err());
        assert!(check_shape(CodeSystem::GeneralDrugName, "1124030F2ZZZ").is_ok());
        assert!(check_shape(CodeSystem::Hot, "118185202").is_ok());
        assert!(check_shape(CodeSystem::Hot, "11818520").is_err());
        assert!(check_shape(CodeSystem::Jlac10, "3F070000002327101").is_ok());
        assert!(check_shape(CodeSystem::Jlac10, "3F07000000232710").is_err());
        assert!(check_shape(CodeSystem::ReceiptDisease, "2500013").is_ok());
        assert!(check_shape(CodeSystem::ReceiptDrug, "620098801").is_ok());
        assert!(check_shape(CodeSystem::ReceiptProcedure, "11100011").is_err());
        assert!(check_shape(CodeSystem::DiseaseKeyNumber, "20057620").is_ok());
        assert!(check_shape(CodeSystem::Token, "has space").is_err());
        assert_eq!(prefecture_from_text("滋賀県大津市"), Some(25));
    }
}
