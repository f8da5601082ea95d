//! Dates as data holders write them: ISO 8601 for FHIR, 西暦 `YYYYMMDD` and 和暦 `GYYMMDD`
//! for レセプト電算 (UKE), and era names (昭和45年3月2日, S45.03.02) for registry spreadsheets.
//!
//! Dates are [`time::Date`]; everything here appends ASCII or UTF-8 to a byte buffer so that
//! writers never allocate a `String` per date.

use time::{Date, Month};

use crate::text::{push_2d, push_u64};

/// A calendar date from its parts; the parts come from code, so an invalid date is a bug.
pub(crate) fn ymd(year: i32, month: u8, day: u8) -> Date {
    let month = Month::try_from(month).expect("month 1-12");
    Date::from_calendar_date(year, month, day).expect("valid calendar date")
}

pub(crate) fn add_days(date: Date, days: i64) -> Date {
    Date::from_julian_day(date.to_julian_day() + days as i32).expect("date in range")
}

/// Whole days from `a` to `b` (negative when `b` is earlier).
pub(crate) fn days_between(a: Date, b: Date) -> i64 {
    (b.to_julian_day() - a.to_julian_day()) as i64
}

/// Age in completed years on `on` (Japanese law counts the day before the birthday; the
/// difference does not matter for synthetic data).
pub(crate) fn age_on(birth: Date, on: Date) -> u32 {
    let mut age = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age.max(0) as u32
}

/// The day a person reaches `years` of age (29 February birthdays move to 1 March).
pub(crate) fn birthday(birth: Date, years: u32) -> Date {
    let year = birth.year() + years as i32;
    Date::from_calendar_date(year, birth.month(), birth.day()).unwrap_or_else(|_| ymd(year, 3, 1))
}

/// First day of the month `months` after January of `base_year` (0-based month index).
pub(crate) fn month_start(base_year: i32, month_index: u32) -> Date {
    ymd(base_year + (month_index / 12) as i32, (month_index % 12) as u8 + 1, 1)
}

/// 0-based month index of `date` counted from January of `base_year`.
pub(crate) fn month_index(base_year: i32, date: Date) -> u32 {
    ((date.year() - base_year) * 12 + date.month() as i32 - 1) as u32
}

/// The Japanese eras a living person's birth date can fall in, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    Meiji,
    Taisho,
    Showa,
    Heisei,
    Reiwa,
}

impl Era {
    /// The digit UKE uses for the era in `GYYMMDD` (1 明治 … 5 令和).
    pub(crate) fn uke_digit(self) -> u8 {
        match self {
            Era::Meiji => 1,
            Era::Taisho => 2,
            Era::Showa => 3,
            Era::Heisei => 4,
            Era::Reiwa => 5,
        }
    }

    pub(crate) fn kanji(self) -> &'static str {
        match self {
            Era::Meiji => "明治",
            Era::Taisho => "大正",
            Era::Showa => "昭和",
            Era::Heisei => "平成",
            Era::Reiwa => "令和",
        }
    }

    /// The initial used in short forms (S45.03.02).
    pub(crate) fn initial(self) -> u8 {
        match self {
            Era::Meiji => b'M',
            Era::Taisho => b'T',
            Era::Showa => b'S',
            Era::Heisei => b'H',
            Era::Reiwa => b'R',
        }
    }
}

/// The era of a date and its year within the era (元年 = 1).
pub(crate) fn era_of(date: Date) -> (Era, i32) {
    let key = (date.year(), date.month() as u8, date.day());
    let (era, first_year) = if key >= (2019, 5, 1) {
        (Era::Reiwa, 2019)
    } else if key >= (1989, 1, 8) {
        (Era::Heisei, 1989)
    } else if key >= (1926, 12, 25) {
        (Era::Showa, 1926)
    } else if key >= (1912, 7, 30) {
        (Era::Taisho, 1912)
    } else {
        (Era::Meiji, 1868)
    };
    (era, date.year() - first_year + 1)
}

/// `YYYY-MM-DD`.
pub(crate) fn push_iso(buf: &mut Vec<u8>, date: Date) {
    push_u64(buf, date.year() as u64);
    buf.push(b'-');
    push_2d(buf, date.month() as u8);
    buf.push(b'-');
    push_2d(buf, date.day());
}

/// `YYYYMMDD` (西暦, as UKE records dates since 2020).
pub(crate) fn push_yyyymmdd(buf: &mut Vec<u8>, date: Date) {
    push_u64(buf, date.year() as u64);
    push_2d(buf, date.month() as u8);
    push_2d(buf, date.day());
}

/// `YYYYMM`.
pub(crate) fn push_yyyymm(buf: &mut Vec<u8>, date: Date) {
    push_u64(buf, date.year() as u64);
    push_2d(buf, date.month() as u8);
}

/// `GYYMMDD` (和暦 with the UKE era digit), the form older レセコン still send.
pub(crate) fn push_wareki_code(buf: &mut Vec<u8>, date: Date) {
    let (era, year) = era_of(date);
    buf.push(b'0' + era.uke_digit());
    push_2d(buf, year as u8);
    push_2d(buf, date.month() as u8);
    push_2d(buf, date.day());
}

/// `昭和45年3月2日` (元年 for the first year of an era).
pub(crate) fn push_wareki_kanji(buf: &mut Vec<u8>, date: Date) {
    let (era, year) = era_of(date);
    buf.extend_from_slice(era.kanji().as_bytes());
    if year == 1 {
        buf.extend_from_slice("元".as_bytes());
    } else {
        push_u64(buf, year as u64);
    }
    buf.extend_from_slice("年".as_bytes());
    push_u64(buf, date.month() as u64);
    buf.extend_from_slice("月".as_bytes());
    push_u64(buf, date.day() as u64);
    buf.extend_from_slice("日".as_bytes());
}

/// `S45.03.02`.
pub(crate) fn push_wareki_short(buf: &mut Vec<u8>, date: Date) {
    let (era, year) = era_of(date);
    buf.push(era.initial());
    push_2d(buf, year as u8);
    buf.push(b'.');
    push_2d(buf, date.month() as u8);
    buf.push(b'.');
    push_2d(buf, date.day());
}

/// `YYYY/MM/DD`, as spreadsheets export dates.
pub(crate) fn push_slashed(buf: &mut Vec<u8>, date: Date) {
    push_u64(buf, date.year() as u64);
    buf.push(b'/');
    push_2d(buf, date.month() as u8);
    buf.push(b'/');
    push_2d(buf, date.day());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(date: Date, code: &str, kanji: &str, short: &str) {
        let mut buf = Vec::new();
        push_wareki_code(&mut buf, date);
        assert_eq!(String::from_utf8(buf).unwrap(), code, "{date}");
        let mut buf = Vec::new();
        push_wareki_kanji(&mut buf, date);
        assert_eq!(String::from_utf8(buf).unwrap(), kanji, "{date}");
        let mut buf = Vec::new();
        push_wareki_short(&mut buf, date);
        assert_eq!(String::from_utf8(buf).unwrap(), short, "{date}");
    }

    #[test]
    fn era_boundaries_follow_the_imperial_calendar() {
        check(ymd(1970, 3, 2), "3450302", "昭和45年3月2日", "S45.03.02");
        check(ymd(1989, 1, 7), "3640107", "昭和64年1月7日", "S64.01.07");
        check(ymd(1989, 1, 8), "4010108", "平成元年1月8日", "H01.01.08");
        check(ymd(2019, 4, 30), "4310430", "平成31年4月30日", "H31.04.30");
        check(ymd(2019, 5, 1), "5010501", "令和元年5月1日", "R01.05.01");
        check(ymd(1926, 12, 24), "2151224", "大正15年12月24日", "T15.12.24");
        check(ymd(1926, 12, 25), "3011225", "昭和元年12月25日", "S01.12.25");
        check(ymd(1912, 7, 29), "1450729", "明治45年7月29日", "M45.07.29");
    }

    #[test]
    fn ages_and_birthdays() {
        let birth = ymd(1949, 6, 15);
        assert_eq!(age_on(birth, ymd(2024, 6, 14)), 74);
        assert_eq!(age_on(birth, ymd(2024, 6, 15)), 75);
        assert_eq!(birthday(birth, 75), ymd(2024, 6, 15));
        assert_eq!(birthday(ymd(2000, 2, 29), 1), ymd(2001, 3, 1));
        assert_eq!(month_index(2023, ymd(2024, 3, 9)), 14);
        assert_eq!(month_start(2023, 14), ymd(2024, 3, 1));
    }
}
