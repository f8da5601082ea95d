//! Re-identification risk under the three attacker models ARX reports.
//!
//! - **Prosecutor**: the attacker knows the person is in the data. A record in a class of
//!   size `f` is re-identified with probability `1/f`.
//! - **Journalist**: the attacker does not know whether the person is in the data and links
//!   against a population (identification) table: a record's risk is `1/F`, with `F` the size
//!   of its class in the population. Without a population table the data is its own
//!   population and the journalist risk equals the prosecutor risk.
//! - **Marketer**: the attacker re-identifies as many records as possible; the expected share
//!   of records re-identified, `(1/n) Σ_classes f/F` (the number of classes over `n` when the
//!   data is its own population).
//!
//! Invariants: risks are in `[0, 1]`; an empty table has zero risk; population class sizes
//! are at least the sample's.

/// The risk measures of a release.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskMeasures {
    pub records: u64,
    pub classes: u64,
    pub prosecutor: AttackerRisk,
    pub journalist: AttackerRisk,
    /// Expected share of records a marketer re-identifies.
    pub marketer: f64,
}

/// Per-record risk statistics for one attacker model.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackerRisk {
    /// The largest record risk.
    pub highest: f64,
    /// The average record risk.
    pub average: f64,
    /// Share of records whose risk equals the highest.
    pub records_at_highest: f64,
    /// Share of records whose risk is above the threshold.
    pub records_above_threshold: f64,
    /// The threshold used.
    pub threshold: f64,
}

/// Measures risk from class sizes; `population[i]` is the population size of class `i`
/// (`None`: the data is its own population). `threshold`: the record risk above which a
/// record counts as at risk (e.g. `0.2` for k = 5).
pub fn measure(sample: &[u32], population: Option<&[u32]>, threshold: f64) -> RiskMeasures {
    let records: u64 = sample.iter().map(|&f| f as u64).sum();
    let prosecutor = attacker(sample, sample, threshold, records);
    let (journalist, marketer) = match population {
        Some(pop) => {
            let pop: Vec<u32> = pop.iter().zip(sample).map(|(&p, &f)| p.max(f)).collect();
            let j = attacker(sample, &pop, threshold, records);
            let m = if records == 0 { 0.0 } else { sample.iter().zip(&pop).map(|(&f, &p)| f as f64 / p as f64).sum::<f64>() / records as f64 };
            (j, m)
        }
        None => (prosecutor.clone(), if records == 0 { 0.0 } else { sample.iter().filter(|&&f| f > 0).count() as f64 / records as f64 }),
    };
    RiskMeasures { records, classes: sample.iter().filter(|&&f| f > 0).count() as u64, prosecutor, journalist, marketer }
}

fn attacker(sample: &[u32], sizes: &[u32], threshold: f64, records: u64) -> AttackerRisk {
    if records == 0 {
        return AttackerRisk { highest: 0.0, average: 0.0, records_at_highest: 0.0, records_above_threshold: 0.0, threshold };
    }
    let n = records as f64;
    let smallest = sample.iter().zip(sizes).filter(|(&f, _)| f > 0).map(|(_, &s)| s).min().unwrap_or(1);
    let highest = 1.0 / smallest as f64;
    let mut average = 0.0;
    let mut at_highest = 0u64;
    let mut above = 0u64;
    for (&f, &s) in sample.iter().zip(sizes) {
        if f == 0 {
            continue;
        }
        average += f as f64 / s as f64;
        if s == smallest {
            at_highest += f as u64;
        }
        if 1.0 / s as f64 > threshold {
            above += f as u64;
        }
    }
    AttackerRisk { highest, average: average / n, records_at_highest: at_highest as f64 / n, records_above_threshold: above as f64 / n, threshold }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prosecutor_journalist_marketer() {
        let r = measure(&[1, 2, 5], None, 0.2);
        assert_eq!(r.records, 8);
        assert_eq!(r.prosecutor.highest, 1.0);
        assert!((r.prosecutor.average - 3.0 / 8.0).abs() < 1e-12);
        assert!((r.prosecutor.records_at_highest - 1.0 / 8.0).abs() < 1e-12);
        assert!((r.prosecutor.records_above_threshold - 3.0 / 8.0).abs() < 1e-12);
        assert_eq!(r.journalist, r.prosecutor);
        assert!((r.marketer - 3.0 / 8.0).abs() < 1e-12);

        let p = measure(&[1, 2, 5], Some(&[4, 2, 10]), 0.2);
        assert_eq!(p.journalist.highest, 0.5);
        assert!((p.marketer - (0.25 + 1.0 + 0.5) / 8.0).abs() < 1e-12);
        assert_eq!(measure(&[], None, 0.2).prosecutor.highest, 0.0);
    }
}
