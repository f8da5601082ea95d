//! Output rules as data: [`Rules`] with their parameters, and the three presets of DESIGN.md
//! ("Output rules (disclosure control presets)").
//!
//! | preset | threshold | zeros | institutions | dominance | p-percent | redaction | rounding | axes |
//! |---|---|---|---|---|---|---|---|---|
//! | [`Preset::Ndb`] (NDB / 介護DB) | 10 persons | shown | < 3 suppressed | – | – | – | – | ≤ 3 |
//! | [`Preset::Acro`] (ACRO / SACRO) | 10 persons | disclosive | – | n = 2, k = 0.9 | p = 0.1 | – | – | – |
//! | [`Preset::OpenSafely`] | – | shown | – | – | – | counts ≤ 7 | nearest 5 | – |
//!
//! Every preset adds secondary suppression (Niji goes beyond the tools it copies; see
//! [`crate::secondary`]) and, when the caller passes earlier releases, the differencing check.
//!
//! Not modelled (they depend on what a column means, which the caller knows and this crate
//! does not): NDB's drug quantities with unknown patient counts (oral/topical < 1,000,
//! injections < 400) and its municipality rules (under 2,000 inhabitants not shown,
//! 2,000–24,999: no cell < 20); the caller applies them by choosing a stricter
//! [`Rules::threshold`] for such tables. ACRO's residual degrees of freedom concern models,
//! not tables.
//!
//! Permit names: the permit's `output_preset` is parsed with [`Preset::from_str`]: `ndb`,
//! `acro`, `opensafely`, and the permit defaults `standard` (= NDB) and `strict` (= ACRO).

use std::fmt;
use std::str::FromStr;

/// A named set of rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Japan's NDB and 介護DB guidelines for published tables.
    Ndb,
    /// ACRO (SACRO, UK): the checks of the ACRO output checker.
    Acro,
    /// OpenSAFELY (UK): small counts redacted, then rounding.
    OpenSafely,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Ndb, Preset::Acro, Preset::OpenSafely];

    /// The canonical name (what [`Preset::from_str`] reads back).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Ndb => "ndb",
            Preset::Acro => "acro",
            Preset::OpenSafely => "opensafely",
        }
    }

    pub fn rules(self) -> Rules {
        Rules::preset(self)
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = RulesError;

    /// Reads `ndb`, `acro`, `opensafely`, `standard` (= `ndb`) or `strict` (= `acro`),
    /// ignoring ASCII case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ndb" | "standard" => Ok(Preset::Ndb),
            "acro" | "strict" => Ok(Preset::Acro),
            "opensafely" => Ok(Preset::OpenSafely),
            _ => Err(RulesError::UnknownPreset),
        }
    }
}

/// The N-K dominance rule: a magnitude cell is sensitive when its `n` largest contributions
/// make up more than `k` of its total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dominance {
    /// 1 or 2 (the table carries the two largest contributions only).
    pub n: u8,
    /// In (0, 1].
    pub k: f64,
}

/// The rules one table is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// A cell counting 1 to `threshold − 1` persons is suppressed; 0 disables.
    pub threshold: u64,
    /// Whether a cell of 0 persons is suppressed (ACRO) or may be shown (NDB).
    pub zeros_disclosive: bool,
    /// A cell with institutions known and fewer than this many is suppressed.
    pub min_institutions: Option<u64>,
    /// The N-K dominance rule for magnitudes.
    pub dominance: Option<Dominance>,
    /// The p-percent rule for magnitudes: sensitive when the total minus the two largest
    /// contributions is below `p` times the largest (the second largest contributor could
    /// then estimate the largest within `p`). In (0, 1).
    pub p_percent: Option<f64>,
    /// Counts of 1 to `n` are redacted: persons, and the values of count measures.
    pub redact_at_or_below: Option<u64>,
    /// Released values of count measures are rounded to the nearest multiple (halves up).
    pub rounding: Option<u64>,
    /// A table with more dimensions is refused as a whole.
    pub max_dimensions: Option<usize>,
    /// Secondary suppression (see [`crate::secondary`]).
    pub secondary: bool,
}

/// What is wrong with rules or a preset name. Fixed texts; the input is never quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("unknown output preset (expected ndb, acro, opensafely, standard or strict)")]
    UnknownPreset,
    #[error("dominance rule: n must be 1 or 2 (only the two largest contributions are known)")]
    DominanceN,
    #[error("dominance rule: k must be in (0, 1]")]
    DominanceK,
    #[error("p-percent rule: p must be in (0, 1)")]
    PPercent,
    #[error("rounding base must be at least 1")]
    Rounding,
}

impl Rules {
    /// Whether the rules look at magnitudes' single contributions (dominance or p-percent), so
    /// that a sum or mean cell needs its two largest contributions to be checked.
    pub fn checks_contributions(&self) -> bool {
        self.dominance.is_some() || self.p_percent.is_some()
    }

    /// The rules of a preset (see the table in the module documentation).
    pub fn preset(preset: Preset) -> Self {
        let none = Rules {
            threshold: 0,
            zeros_disclosive: false,
            min_institutions: None,
            dominance: None,
            p_percent: None,
            redact_at_or_below: None,
            rounding: None,
            max_dimensions: None,
            secondary: true,
        };
        match preset {
            Preset::Ndb => Rules { threshold: 10, min_institutions: Some(3), max_dimensions: Some(3), ..none },
            Preset::Acro => {
                Rules { threshold: 10, zeros_disclosive: true, dominance: Some(Dominance { n: 2, k: 0.9 }), p_percent: Some(0.1), ..none }
            }
            Preset::OpenSafely => Rules { redact_at_or_below: Some(7), rounding: Some(5), ..none },
        }
    }

    /// The smallest number of persons a released non-zero cell may count: the threshold, or
    /// one more than the redaction limit, whichever is larger (0: no limit).
    pub fn min_persons(&self) -> u64 {
        self.threshold.max(self.redact_at_or_below.map_or(0, |n| n + 1))
    }

    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<(), RulesError> {
        if let Some(Dominance { n, k }) = self.dominance {
            if !(1..=2).contains(&n) {
                return Err(RulesError::DominanceN);
            }
            if !(k > 0.0 && k <= 1.0) {
                return Err(RulesError::DominanceK);
            }
        }
        if let Some(p) = self.p_percent {
            if !(p > 0.0 && p < 1.0) {
                return Err(RulesError::PPercent);
            }
        }
        if self.rounding == Some(0) {
            return Err(RulesError::Rounding);
        }
        Ok(())
    }
}

impl From<Preset> for Rules {
    fn from(preset: Preset) -> Self {
        Rules::preset(preset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        for preset in Preset::ALL {
            assert_eq!(preset.name().parse::<Preset>(), Ok(preset));
            preset.rules().validate().unwrap();
        }
        assert_eq!("standard".parse::<Preset>(), Ok(Preset::Ndb));
        assert_eq!(" Strict ".parse::<Preset>(), Ok(Preset::Acro));
        assert_eq!("OpenSAFELY".parse::<Preset>(), Ok(Preset::OpenSafely));
        assert_eq!("lenient".parse::<Preset>(), Err(RulesError::UnknownPreset));
    }

    #[test]
    fn presets_carry_design_parameters() {
        let ndb = Rules::preset(Preset::Ndb);
        assert_eq!((ndb.threshold, ndb.zeros_disclosive, ndb.min_institutions, ndb.max_dimensions), (10, false, Some(3), Some(3)));
        let acro = Rules::preset(Preset::Acro);
        assert_eq!((acro.threshold, acro.zeros_disclosive, acro.dominance, acro.p_percent), (10, true, Some(Dominance { n: 2, k: 0.9 }), Some(0.1)));
        let os = Rules::preset(Preset::OpenSafely);
        assert_eq!((os.redact_at_or_below, os.rounding, os.min_persons()), (Some(7), Some(5), 8));
    }

    #[test]
    fn ranges_are_checked() {
        let mut r = Rules::preset(Preset::Acro);
        r.dominance = Some(Dominance { n: 3, k: 0.9 });
        assert_eq!(r.validate(), Err(RulesError::DominanceN));
        r.dominance = Some(Dominance { n: 2, k: 0.0 });
        assert_eq!(r.validate(), Err(RulesError::DominanceK));
        r.dominance = None;
        r.p_percent = Some(1.5);
        assert_eq!(r.validate(), Err(RulesError::PPercent));
        r.p_percent = None;
        r.rounding = Some(0);
        assert_eq!(r.validate(), Err(RulesError::Rounding));
    }
}
