//! Per-cell verdicts and their reasons, with Japanese and English texts.
//!
//! Invariants: a reason's text quotes at most the cell's own person or institution count and
//! the rule's parameters; it never quotes another cell's value (a secondary suppression
//! names the cell that caused it by its position only, a differencing refusal names the
//! earlier release by its id only).

use std::fmt::Write as _;

/// A cell's position: row index and measure index (0-based) in the checked table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellRef {
    pub row: usize,
    pub measure: usize,
}

/// Why a cell is not released as is.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// 1 to `threshold − 1` persons.
    BelowThreshold { persons: u64, threshold: u64 },
    /// A count of 1 to `at_or_below` (persons, or the value of a count measure) is redacted.
    SmallCount { at_or_below: u64 },
    /// Zero persons, and zeros are disclosive under the rules.
    Zero,
    /// Fewer institutions than the minimum.
    FewInstitutions { institutions: u64, minimum: u64 },
    /// The `n` largest contributions exceed `k` of the total.
    Dominance { n: u8, k: f64 },
    /// The rest of the total is below `p` of the largest contribution.
    PPercent { p: f64 },
    /// A magnitude under dominance or p-percent rules without the contributions to check them.
    MissingContributions,
    /// Another measure of the same row was suppressed, and this one could reveal it (a sum is
    /// a mean times a count).
    SameRow { because_of: CellRef },
    /// Suppressed so that the cell `because_of` cannot be recomputed from totals.
    SecondarySuppression { because_of: CellRef },
    /// The cell's persons differ from the same cell of an earlier release of another cohort by
    /// 1 to threshold − 1: the difference would isolate `isolated` persons.
    Differencing { earlier_release: String, isolated: u64 },
    /// A cell suppressed to protect another (secondary suppression) and a cell of the same
    /// persons (equal samples) shown, one here and one in an earlier release: together with the
    /// totals they give the protected cell.
    RevealsWithheld { earlier_release: String },
    /// The table has more dimensions than allowed (a refusal of the whole table).
    TooManyDimensions { dimensions: usize, maximum: usize },
    /// `cells` suppressed cells can still be computed by solving the lines' equations together,
    /// after the complements tried (a refusal of the whole table).
    SolvableSuppression { cells: usize },
}

/// What happens to a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Released (possibly rounded).
    Released,
    /// Released as the marker "suppressed"; the table may still pass.
    Suppressed,
    /// The table cannot be released as it is.
    Refused,
}

/// A cell's verdict: the outcome and every reason behind it (none when released).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// The verdict the reasons imply: refused if any reason refuses, suppressed if there is
    /// any other reason, released otherwise.
    pub fn from_reasons(reasons: Vec<Reason>) -> Self {
        let outcome = if reasons.iter().any(Reason::is_refusal) {
            Outcome::Refused
        } else if reasons.is_empty() {
            Outcome::Released
        } else {
            Outcome::Suppressed
        };
        Verdict { outcome, reasons }
    }

    /// Whether the cell is suppressed by a rule on its own values (not only because of
    /// another cell).
    pub fn is_primary(&self) -> bool {
        self.reasons.iter().any(Reason::is_primary)
    }
}

impl Reason {
    /// Whether the reason refuses the table rather than suppressing the cell.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Reason::Differencing { .. } | Reason::RevealsWithheld { .. } | Reason::TooManyDimensions { .. } | Reason::SolvableSuppression { .. }
        )
    }

    /// Whether the reason is a rule on the cell's own values.
    pub fn is_primary(&self) -> bool {
        !matches!(
            self,
            Reason::SameRow { .. }
                | Reason::SecondarySuppression { .. }
                | Reason::Differencing { .. }
                | Reason::RevealsWithheld { .. }
                | Reason::TooManyDimensions { .. }
                | Reason::SolvableSuppression { .. }
        )
    }

    /// A stable code for logs and APIs.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::BelowThreshold { .. } => "below_threshold",
            Reason::SmallCount { .. } => "small_count",
            Reason::Zero => "zero",
            Reason::FewInstitutions { .. } => "few_institutions",
            Reason::Dominance { .. } => "dominance",
            Reason::PPercent { .. } => "p_percent",
            Reason::MissingContributions => "missing_contributions",
            Reason::SameRow { .. } => "same_row",
            Reason::SecondarySuppression { .. } => "secondary_suppression",
            Reason::Differencing { .. } => "differencing",
            Reason::RevealsWithheld { .. } => "reveals_withheld",
            Reason::TooManyDimensions { .. } => "too_many_dimensions",
            Reason::SolvableSuppression { .. } => "solvable_suppression",
        }
    }

    /// The reason in Japanese.
    pub fn text_ja(&self) -> String {
        let mut s = String::new();
        let _ = match self {
            Reason::BelowThreshold { persons, threshold } => write!(s, "対象者が{persons}人で、最小集計単位の{threshold}人未満です"),
            Reason::SmallCount { at_or_below } => write!(s, "{at_or_below}以下の件数は秘匿します"),
            Reason::Zero => write!(s, "この基準では 0 も個人の状態を明らかにするため秘匿します"),
            Reason::FewInstitutions { institutions, minimum } => {
                write!(s, "医療機関等が{institutions}施設で、{minimum}施設未満のため特定のおそれがあります")
            }
            Reason::Dominance { n, k } => write!(s, "上位{n}人の寄与が合計の{}%を超えます（N-K 優越ルール）", percent(*k)),
            Reason::PPercent { p } => write!(s, "上位2人を除く寄与の合計が最大寄与の{}%未満です（p% ルール）", percent(*p)),
            Reason::MissingContributions => write!(s, "優越ルールの確認に必要な個人別の上位寄与がありません"),
            Reason::SameRow { because_of } => {
                write!(s, "同じ行の{}列目のセルが秘匿されたため、そこから計算できないよう併せて秘匿します", because_of.measure + 1)
            }
            Reason::SecondarySuppression { because_of } => {
                write!(s, "{}行目{}列目の秘匿セルを合計から逆算できないよう、二次秘匿します", because_of.row + 1, because_of.measure + 1)
            }
            Reason::Differencing { earlier_release, .. } => write!(
                s,
                "過去の公表「{earlier_release}」の同じセルとの差が最小集計単位未満の人数となり、差分から少数の人が特定されるおそれがあります"
            ),
            Reason::RevealsWithheld { earlier_release } => write!(
                s,
                "少数のセルを保護するための二次秘匿セルと同じ人々のセルが、本表と過去の公表「{earlier_release}」の一方で公表されており、合計から保護したセルが逆算されるおそれがあります"
            ),
            Reason::TooManyDimensions { dimensions, maximum } => write!(s, "集計軸が{dimensions}個あり、上限の{maximum}個を超えます"),
            Reason::SolvableSuppression { cells } => write!(
                s,
                "秘匿したセルのうち{cells}個が、合計の式を連立させると計算できます。集計軸か合計行を減らしてください"
            ),
        };
        s
    }

    /// The reason in English.
    pub fn text_en(&self) -> String {
        let mut s = String::new();
        let _ = match self {
            Reason::BelowThreshold { persons, threshold } => write!(s, "counts {persons} persons, fewer than the threshold of {threshold}"),
            Reason::SmallCount { at_or_below } => write!(s, "counts of {at_or_below} or fewer are redacted"),
            Reason::Zero => write!(s, "zeros are disclosive under these rules"),
            Reason::FewInstitutions { institutions, minimum } => {
                write!(s, "comes from {institutions} institutions, fewer than {minimum}: they could be identified")
            }
            Reason::Dominance { n, k } => write!(s, "the {n} largest contributors make up more than {}% of the total (N-K dominance)", percent(*k)),
            Reason::PPercent { p } => {
                write!(s, "the total minus the two largest contributions is under {}% of the largest (p-percent rule)", percent(*p))
            }
            Reason::MissingContributions => write!(s, "the largest single contributions needed for the dominance rules are missing"),
            Reason::SameRow { because_of } => {
                write!(s, "suppressed with measure {} of the same row, which it could reveal", because_of.measure + 1)
            }
            Reason::SecondarySuppression { because_of } => write!(
                s,
                "secondary suppression, so that the suppressed cell at row {}, measure {} cannot be recomputed from totals",
                because_of.row + 1,
                because_of.measure + 1
            ),
            Reason::Differencing { earlier_release, .. } => write!(
                s,
                "differs from the same cell of earlier release {earlier_release:?} by fewer persons than the threshold: the difference would isolate them"
            ),
            Reason::RevealsWithheld { earlier_release } => write!(
                s,
                "a cell suppressed to protect a small one and a cell of the same persons would both be out, one here and one in earlier release {earlier_release:?}: with the totals they give the protected cell"
            ),
            Reason::TooManyDimensions { dimensions, maximum } => write!(s, "the table has {dimensions} dimensions, more than the {maximum} allowed"),
            Reason::SolvableSuppression { cells } => write!(
                s,
                "{cells} suppressed cells can be computed by solving the totals' equations together; remove a dimension or the margins"
            ),
        };
        s
    }
}

/// `0.9` → `90`, `0.125` → `12.5`.
fn percent(x: f64) -> String {
    let p = (x * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_quote_only_own_counts_and_parameters() {
        let r = Reason::BelowThreshold { persons: 3, threshold: 10 };
        assert_eq!(r.text_ja(), "対象者が3人で、最小集計単位の10人未満です");
        assert_eq!(r.text_en(), "counts 3 persons, fewer than the threshold of 10");
        assert!(Reason::Dominance { n: 2, k: 0.9 }.text_ja().contains("90%"));
        assert!(Reason::PPercent { p: 0.1 }.text_en().contains("10%"));
        let d = Reason::Differencing { earlier_release: "release-7".into(), isolated: 2 };
        assert!(d.text_ja().contains("release-7") && !d.text_ja().contains('2'));
        assert!(d.text_en().contains("release-7") && !d.text_en().contains(" 2 "));
        assert!(d.is_refusal() && !d.is_primary());
        let s = Reason::SecondarySuppression { because_of: CellRef { row: 0, measure: 0 } };
        assert_eq!(s.text_en(), "secondary suppression, so that the suppressed cell at row 1, measure 1 cannot be recomputed from totals");
        assert_eq!(Verdict::from_reasons(vec![s]).outcome, Outcome::Suppressed);
        assert_eq!(Verdict::from_reasons(vec![]).outcome, Outcome::Released);
    }
}
