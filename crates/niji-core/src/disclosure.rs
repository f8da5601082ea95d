//! Disclosure rules for figures shown to the public: the catalog's small-count rule.
//!
//! Following the NDB/介護DB publication rule (no cell counting fewer than 10 patients), a
//! count shown in the public catalog is suppressed below 10 and otherwise rounded to the
//! nearest 10 (half up), so that successive versions cannot be differenced down to a few
//! persons. Pure functions: callers decide where a count is shown.

/// Smallest count the catalog shows.
pub const CATALOG_MIN_COUNT: u64 = 10;

/// A count as the public catalog may show it: `None` (suppressed) when `n < 10`, else `n`
/// rounded to the nearest 10 with halves rounded up (14 → 10, 15 → 20, 995 → 1000).
pub fn catalog_count(n: u64) -> Option<u64> {
    if n < CATALOG_MIN_COUNT {
        return None;
    }
    let down = n - n % 10;
    // Half up; the few counts within 5 of u64::MAX round down rather than overflow.
    Some(if n % 10 >= 5 { down.checked_add(10).unwrap_or(down) } else { down })
}

/// A coverage period as the public catalog may show it: year and month only (an exact earliest
/// or latest date is one person's event date), and nothing at all when the persons behind it
/// are fewer than the catalog shows. `from`/`to` are ISO dates (`YYYY-MM-DD`).
pub fn catalog_period(from: Option<&str>, to: Option<&str>, persons: u64) -> Option<(String, String)> {
    catalog_count(persons)?;
    let month = |d: &str| d.get(..7).filter(|m| m.len() == 7).map(str::to_string);
    Some((month(from?)?, month(to?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_months_and_hidden_for_few_persons() {
        assert_eq!(catalog_period(Some("2012-05-15"), Some("2024-12-29"), 58), Some(("2012-05".into(), "2024-12".into())));
        assert_eq!(catalog_period(Some("2012-05-15"), Some("2024-12-29"), 9), None);
        assert_eq!(catalog_period(None, Some("2024-12-29"), 100), None);
    }

    fn check(input: u64, expected: Option<u64>) {
        assert_eq!(catalog_count(input), expected, "catalog_count({input})");
    }

    #[test]
    fn small_counts_are_suppressed() {
        check(0, None);
        check(1, None);
        check(9, None);
    }

    #[test]
    fn other_counts_are_rounded_to_the_nearest_ten_half_up() {
        check(10, Some(10));
        check(14, Some(10));
        check(15, Some(20));
        check(19, Some(20));
        check(20, Some(20));
        check(994, Some(990));
        check(995, Some(1000));
        check(1_234_567, Some(1_234_570));
        check(u64::MAX, Some(u64::MAX / 10 * 10));
    }
}
