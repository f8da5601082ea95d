//! Diseases in scope as ICD-10 codes or prefixes, and when one disease is "related"
//! (類縁疾患) to a consented one.
//!
//! A disease is written as an ICD-10 code or a prefix of one: a letter (`E`, a chapter-like
//! prefix), a letter and a digit (`E1`), a 3-character category (`E11`), or a category with its
//! subcategory, with or without the dot (`E11.9`, `E119`). Comparison is case-insensitive and
//! ignores the dot. A consented prefix covers every code that starts with it.
//!
//! Related diseases: the criteria choose the grouping ([`RelatedDiseaseRule`]); the default is
//! the WHO ICD-10 block (`E10-E14` diabetes mellitus, `I20-I25` ischaemic heart diseases), taken
//! from the full block table of `niji_anon::builtin` rather than a hand-made list, so that every
//! crate of Niji groups codes the same way. A prefix shorter than a category (`E`, `E1`) has no
//! block and is therefore never "related", only covered or other.

use serde::{Deserialize, Serialize};

/// How two ICD-10 categories are judged related (類縁疾患) when one is not covered by the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelatedDiseaseRule {
    /// Same 3-character category (`E11.9` and `E11.2`).
    SameCategory,
    /// Same WHO ICD-10 block (`E11` and `E14` in `E10-E14`): the default.
    SameBlock,
    /// Same ICD-10 chapter (`E11` and `E78` in `E00-E90`).
    SameChapter,
}

/// Where a requested disease stands against the consented diseases of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiseaseRelation {
    /// Covered by a consented prefix (or the consent names no disease: any disease).
    Covered,
    /// Not covered, but related under the rule to this consented disease (as written there).
    Related { consented: String },
    /// Neither covered nor related.
    Other,
}

/// The normalized form of an ICD-10 code or prefix (upper case, no dot), or `None` when the text
/// is not one: a letter, then up to two digits, then (after two digits) up to four letters or
/// digits.
pub fn normalize(code: &str) -> Option<String> {
    let code = code.trim();
    let mut out = String::with_capacity(code.len());
    for (i, c) in code.chars().enumerate() {
        if c == '.' && i == 3 {
            continue;
        }
        out.push(c.to_ascii_uppercase());
    }
    let b = out.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 7
        && b[0].is_ascii_uppercase()
        && b[1..b.len().min(3)].iter().all(u8::is_ascii_digit)
        && b.get(3..).is_none_or(|rest| rest.iter().all(u8::is_ascii_alphanumeric))
        && !(code.contains('.') && b.len() < 4);
    ok.then_some(out)
}

/// Whether `code` is a well-formed ICD-10 code or prefix (see [`normalize`]).
pub fn is_icd10(code: &str) -> bool {
    normalize(code).is_some()
}

/// Whether the consented prefix covers the requested code or prefix.
pub fn covers(consented: &str, requested: &str) -> bool {
    match (normalize(consented), normalize(requested)) {
        (Some(c), Some(r)) => r.starts_with(&c),
        _ => false,
    }
}

/// Whether two codes are related under the rule (both must be at least a 3-character category).
pub fn related(a: &str, b: &str, rule: RelatedDiseaseRule) -> bool {
    let (Some(a), Some(b)) = (normalize(a), normalize(b)) else { return false };
    if a.len() < 3 || b.len() < 3 {
        return false;
    }
    let (a, b) = (&a[..3], &b[..3]);
    match rule {
        RelatedDiseaseRule::SameCategory => a == b,
        RelatedDiseaseRule::SameBlock => {
            matches!((niji_anon::builtin::icd10_block(a), niji_anon::builtin::icd10_block(b)), (Some(x), Some(y)) if x == y)
        }
        RelatedDiseaseRule::SameChapter => {
            matches!((niji_anon::builtin::icd10_chapter(a), niji_anon::builtin::icd10_chapter(b)), (Some(x), Some(y)) if x == y)
        }
    }
}

/// Where `requested` stands against the consented diseases (empty = any disease).
pub fn relation(requested: &str, consented: &[String], rule: RelatedDiseaseRule) -> DiseaseRelation {
    if consented.is_empty() || consented.iter().any(|c| covers(c, requested)) {
        return DiseaseRelation::Covered;
    }
    match consented.iter().find(|c| related(c, requested, rule)) {
        Some(c) => DiseaseRelation::Related { consented: c.clone() },
        None => DiseaseRelation::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_prefixes_are_normalized() {
        assert_eq!(normalize("e11.9").as_deref(), Some("E119"));
        assert_eq!(normalize(" E119 ").as_deref(), Some("E119"));
        assert_eq!(normalize("E").as_deref(), Some("E"));
        assert_eq!(normalize("E1").as_deref(), Some("E1"));
        assert_eq!(normalize("C50.12").as_deref(), Some("C5012"));
        for bad in ["", "11", "EE1", "E1A", "E.1", "E11.", "E11.99999", "E11 9", "糖尿病"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn relation_follows_prefix_then_rule() {
        let consented = vec!["E11".to_string()];
        assert_eq!(relation("E11.9", &consented, RelatedDiseaseRule::SameBlock), DiseaseRelation::Covered);
        assert_eq!(relation("E14", &consented, RelatedDiseaseRule::SameBlock), DiseaseRelation::Related { consented: "E11".into() });
        assert_eq!(relation("E14", &consented, RelatedDiseaseRule::SameCategory), DiseaseRelation::Other);
        assert_eq!(relation("E78", &consented, RelatedDiseaseRule::SameBlock), DiseaseRelation::Other);
        assert_eq!(relation("E78", &consented, RelatedDiseaseRule::SameChapter), DiseaseRelation::Related { consented: "E11".into() });
        assert_eq!(relation("I21", &consented, RelatedDiseaseRule::SameChapter), DiseaseRelation::Other);
        assert_eq!(relation("E1", &consented, RelatedDiseaseRule::SameBlock), DiseaseRelation::Other);
        assert_eq!(relation("I21", &[], RelatedDiseaseRule::SameBlock), DiseaseRelation::Covered);
    }
}
