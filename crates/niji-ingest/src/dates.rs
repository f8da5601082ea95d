//! Calendar dates: ISO `YYYY-MM-DD` (and FHIR partial dates / dateTimes), 西暦 `YYYYMMDD`,
//! 和暦 `GYYMMDD` (G = 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和) and year-months `YYYYMM` / `GYYMM`.
//!
//! Invariants: every [`Date`] is a real calendar date (leap years included); a 和暦 date is
//! accepted only inside its era (平成31年4月30日 yes, 平成31年5月1日 no — that is 令和元年); dates
//! after the caller's `now` are rejected by the callers, never by reading a clock here.

use std::fmt;

use crate::model::YearMonth;

/// How much of a date the source gave (FHIR allows `YYYY` and `YYYY-MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
}

/// A calendar date; with a lower precision, the missing parts are 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub precision: Precision,
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.precision {
            Precision::Year => write!(f, "{:04}", self.year),
            Precision::Month => write!(f, "{:04}-{:02}", self.year, self.month),
            Precision::Day => write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a date was refused (never quotes the date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("not a date in a known form")]
    Format,
    #[error("not a real calendar date")]
    Calendar,
    #[error("unknown era digit (1 明治 to 5 令和)")]
    Era,
    #[error("date lies outside its era")]
    OutsideEra,
    #[error("date is in the future")]
    Future,
    #[error("date lies outside 1800 to 2150")]
    OutOfRange,
}

impl Date {
    /// A full-precision date if it exists in the calendar, from 1800 to 2150: a record's dates
    /// are in that span (a `9999-12-31` placeholder is not a date), and the analysis workspace
    /// relies on it (a table's date moved by a century still fits a nanosecond timestamp, which
    /// ends in 2262).
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, DateError> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(DateError::Calendar);
        }
        if !(1800..=2150).contains(&year) {
            return Err(DateError::OutOfRange);
        }
        Ok(Self { year, month, day, precision: Precision::Day })
    }

    pub fn year_month(&self) -> YearMonth {
        YearMonth { year: self.year, month: self.month }
    }

    /// Fails with [`DateError::Future`] if the date (at its precision) starts after `now`.
    pub fn not_after(self, now: Date) -> Result<Self, DateError> {
        if self > now {
            Err(DateError::Future)
        } else {
            Ok(self)
        }
    }
}

pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

fn num(s: &str) -> Result<u32, DateError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Format);
    }
    s.parse().map_err(|_| DateError::Format)
}

/// First day of each era, and the era's name (G = index + 1).
const ERAS: [(u16, u8, u8); 5] = [(1868, 1, 25), (1912, 7, 30), (1926, 12, 25), (1989, 1, 8), (2019, 5, 1)];

fn era_start(g: u32) -> Result<(u16, u8, u8), DateError> {
    if (1..=5).contains(&g) {
        Ok(ERAS[g as usize - 1])
    } else {
        Err(DateError::Era)
    }
}

fn era_date(g: u32, yy: u32, month: u8, day: u8) -> Result<Date, DateError> {
    let start = era_start(g)?;
    if yy == 0 {
        return Err(DateError::OutsideEra);
    }
    let year = start.0 as u32 + yy - 1;
    let date = Date::new(u16::try_from(year).map_err(|_| DateError::Calendar)?, month, day)?;
    if (date.year, date.month, date.day) < start {
        return Err(DateError::OutsideEra);
    }
    if g < 5 {
        let next = ERAS[g as usize];
        if (date.year, date.month, date.day) >= next {
            return Err(DateError::OutsideEra);
        }
    }
    Ok(date)
}

/// ISO `YYYY-MM-DD`, also `YYYY/MM/DD`, `YYYY-MM`, `YYYY`, and a FHIR dateTime (the part after
/// `T` is checked for shape and dropped).
pub fn parse_iso(text: &str) -> Result<Date, DateError> {
    let t = text.trim();
    let (d, time) = match t.find('T') {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    if let Some(time) = time {
        let b = time.as_bytes();
        if b.len() < 5 || !b[0].is_ascii_digit() || !b[1].is_ascii_digit() || b[2] != b':' || !b[3].is_ascii_digit() || !b[4].is_ascii_digit() {
            return Err(DateError::Format);
        }
        let h = num(&time[..2])?;
        let m = num(&time[3..5])?;
        if h > 24 || m > 59 {
            return Err(DateError::Calendar);
        }
    }
    let sep = if d.contains('/') { '/' } else { '-' };
    let parts: Vec<&str> = d.split(sep).collect();
    let check_len = |s: &str, n: usize| if s.len() == n || (n == 2 && sep == '/' && s.len() == 1) { Ok(()) } else { Err(DateError::Format) };
    match parts.as_slice() {
        [y] => {
            check_len(y, 4)?;
            let mut date = Date::new(num(y)? as u16, 1, 1)?;
            date.precision = Precision::Year;
            Ok(date)
        }
        [y, m] => {
            check_len(y, 4)?;
            check_len(m, 2)?;
            let mut date = Date::new(num(y)? as u16, u8::try_from(num(m)?).map_err(|_| DateError::Calendar)?, 1)?;
            date.precision = Precision::Month;
            Ok(date)
        }
        [y, m, dd] => {
            check_len(y, 4)?;
            check_len(m, 2)?;
            check_len(dd, 2)?;
            Date::new(
                num(y)? as u16,
                u8::try_from(num(m)?).map_err(|_| DateError::Calendar)?,
                u8::try_from(num(dd)?).map_err(|_| DateError::Calendar)?,
            )
        }
        _ => Err(DateError::Format),
    }
}

/// UKE dates: 西暦 `YYYYMMDD` (8 digits) or 和暦 `GYYMMDD` (7 digits).
pub fn parse_compact(text: &str) -> Result<Date, DateError> {
    let t = text.trim();
    let n = num(t)?;
    match t.len() {
        8 => Date::new((n / 10000) as u16, (n / 100 % 100) as u8, (n % 100) as u8),
        7 => era_date(n / 1_000_000, n / 10000 % 100, (n / 100 % 100) as u8, (n % 100) as u8),
        _ => Err(DateError::Format),
    }
}

/// UKE year-months: `YYYYMM` or `GYYMM`.
pub fn parse_compact_month(text: &str) -> Result<YearMonth, DateError> {
    let t = text.trim();
    let n = num(t)?;
    match t.len() {
        6 => {
            let (year, month) = ((n / 100) as u16, (n % 100) as u8);
            Date::new(year, month, 1)?;
            Ok(YearMonth { year, month })
        }
        5 => {
            let (g, yy, month) = (n / 10000, n / 100 % 100, (n % 100) as u8);
            // A month is inside an era if any of its days is.
            let last = days_in_month(era_start(g)?.0 + yy.max(1) as u16 - 1, month.clamp(1, 12));
            let first = era_date(g, yy, month, 1).or_else(|_| era_date(g, yy, month, last))?;
            Ok(first.year_month())
        }
        _ => Err(DateError::Format),
    }
}

/// Any of the forms above (CSV cells): ISO-like, compact 西暦/和暦, or `S20.07.06` / `H1.1.8`
/// style era letters.
pub fn parse_any(text: &str) -> Result<Date, DateError> {
    let t = text.trim();
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return parse_compact(t);
    }
    let first = t.chars().next().ok_or(DateError::Format)?;
    let g = match first {
        'M' | '明' => Some(1),
        'T' | '大' => Some(2),
        'S' | '昭' => Some(3),
        'H' | '平' => Some(4),
        'R' | '令' => Some(5),
        _ => None,
    };
    if let Some(g) = g {
        let rest: String = t.chars().skip(1).skip_while(|c| matches!(c, '治' | '正' | '和' | '成')).collect();
        let parts: Vec<&str> = rest.split(['.', '/', '-', '年', '月', '日']).filter(|s| !s.is_empty()).collect();
        if let [y, m, d] = parts.as_slice() {
            let yy = if *y == "元" { 1 } else { num(y)? };
            return era_date(g, yy, u8::try_from(num(m)?).map_err(|_| DateError::Calendar)?, u8::try_from(num(d)?).map_err(|_| DateError::Calendar)?);
        }
        return Err(DateError::Format);
    }
    parse_iso(t)
}

/// An optional date in 4 bytes (`Option<Date>` takes 6), for arrays of a date per unit of a
/// large submission: 0 for none, else a set top bit, the precision (2 bits), the year (16), the
/// month (4) and the day (5).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PackedDate(u32);

impl PackedDate {
    pub const NONE: PackedDate = PackedDate(0);

    /// The 4 bytes, for a caller that stores them.
    pub fn to_bits(self) -> u32 {
        self.0
    }

    /// Bits [`PackedDate::to_bits`] gave.
    pub fn from_bits(bits: u32) -> PackedDate {
        PackedDate(bits)
    }

    pub fn new(date: Option<Date>) -> PackedDate {
        let Some(d) = date else { return PackedDate::NONE };
        // `Date::new` gives months 1–12 and days 1–31: the 4 and 5 bits hold them.
        debug_assert!(d.month <= 15 && d.day <= 31);
        let precision = match d.precision {
            Precision::Year => 0,
            Precision::Month => 1,
            Precision::Day => 2,
        };
        PackedDate(1 << 31 | precision << 25 | u32::from(d.year) << 9 | u32::from(d.month & 0xF) << 5 | u32::from(d.day & 0x1F))
    }

    pub fn get(self) -> Option<Date> {
        let packed = self.0;
        if packed == 0 {
            return None;
        }
        let precision = match (packed >> 25) & 3 {
            0 => Precision::Year,
            1 => Precision::Month,
            _ => Precision::Day,
        };
        Some(Date { year: (packed >> 9) as u16, month: ((packed >> 5) & 0xF) as u8, day: (packed & 0x1F) as u8, precision })
    }
}

impl fmt::Debug for PackedDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_packed_date_comes_back_as_it_was(year in 0u16.., month in 1u8..=12, day in 1u8..=31, precision in 0u8..3, none: bool) {
            let precision = [Precision::Year, Precision::Month, Precision::Day][precision as usize];
            let date = (!none).then_some(Date { year, month, day, precision });
            proptest::prop_assert_eq!(PackedDate::new(date).get(), date);
            proptest::prop_assert_eq!(PackedDate::new(date) == PackedDate::NONE, none);
            proptest::prop_assert_eq!(PackedDate::from_bits(PackedDate::new(date).to_bits()).get(), date);
        }
    }

    #[test]
    fn eras() {
        assert_eq!(parse_compact("4310430").unwrap(), Date::new(2019, 4, 30).unwrap());
        assert_eq!(parse_compact("4310501"), Err(DateError::OutsideEra));
        assert_eq!(parse_compact("5010501").unwrap(), Date::new(2019, 5, 1).unwrap());
        assert_eq!(parse_compact("5010430"), Err(DateError::OutsideEra));
        assert_eq!(parse_compact("3640107").unwrap(), Date::new(1989, 1, 7).unwrap());
        assert_eq!(parse_compact("3640108"), Err(DateError::OutsideEra));
        assert_eq!(parse_compact("4010108").unwrap(), Date::new(1989, 1, 8).unwrap());
        assert_eq!(parse_compact("3200706").unwrap(), Date::new(1945, 7, 6).unwrap());
        assert_eq!(parse_compact("6200706"), Err(DateError::Era));
        assert_eq!(parse_compact("20230229"), Err(DateError::Calendar));
        assert!(parse_compact("20240229").is_ok());
        // Placeholders and slips of the year are not dates of a record.
        assert_eq!(parse_iso("9999-12-31"), Err(DateError::OutOfRange));
        assert_eq!(parse_compact("17991231"), Err(DateError::OutOfRange));
        assert!(parse_compact("21501231").is_ok());
        assert_eq!(parse_compact("21510101"), Err(DateError::OutOfRange));
        assert_eq!(parse_compact_month("43104").unwrap(), YearMonth { year: 2019, month: 4 });
        assert_eq!(parse_compact_month("50105").unwrap(), YearMonth { year: 2019, month: 5 });
        assert!(parse_compact_month("50104").is_err());
        assert_eq!(parse_compact_month("36401").unwrap(), YearMonth { year: 1989, month: 1 });
        assert_eq!(parse_any("S20.07.06").unwrap(), Date::new(1945, 7, 6).unwrap());
        assert_eq!(parse_any("1945/07/06").unwrap(), Date::new(1945, 7, 6).unwrap());
        assert_eq!(parse_iso("2021-07-05T12:00:00+09:00").unwrap(), Date::new(2021, 7, 5).unwrap());
        assert_eq!(parse_iso("2021-07").unwrap().precision, Precision::Month);
        let now = Date::new(2025, 1, 1).unwrap();
        assert_eq!(Date::new(2025, 1, 2).unwrap().not_after(now), Err(DateError::Future));
    }
}
