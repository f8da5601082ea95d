//! Calendar helpers: dates stored as `YYYY-MM-DD` (serde), calendar-month arithmetic and day
//! offsets that saturate instead of overflowing. Pure functions.

use time::{Date, Duration, Month};

/// `date` plus `days` calendar days, saturating at [`Date::MAX`].
pub fn add_days(date: Date, days: u32) -> Date {
    date.checked_add(Duration::days(i64::from(days))).unwrap_or(Date::MAX)
}

/// `date` plus `months` calendar months; a day that does not exist in the target month is
/// clamped to its last day (31 Jan + 1 month = 28/29 Feb). Saturates at [`Date::MAX`].
pub fn add_months(date: Date, months: u32) -> Date {
    let index = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + i64::from(months);
    let Ok(year) = i32::try_from(index.div_euclid(12)) else { return Date::MAX };
    let Ok(month) = Month::try_from((index.rem_euclid(12) + 1) as u8) else { return Date::MAX };
    let day = date.day().min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MAX)
}

const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!("[year]-[month]-[day]");

/// Serde for a [`Date`] as `"YYYY-MM-DD"` (`#[serde(with = "crate::date::iso")]`).
pub mod iso {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        let text = date.format(super::FORMAT).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let text = String::deserialize(deserializer)?;
        Date::parse(&text, super::FORMAT).map_err(|_| serde::de::Error::custom("a date must be written YYYY-MM-DD"))
    }
}

/// Serde for an `Option<Date>` as `"YYYY-MM-DD"` or null.
pub mod iso_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => super::iso::serialize(date, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(text) => Date::parse(&text, super::FORMAT).map(Some).map_err(|_| serde::de::Error::custom("a date must be written YYYY-MM-DD")),
            None => Ok(None),
        }
    }
}

/// A TOML local date (`published = 2026-04-01`) as a [`Date`].
pub(crate) fn from_toml(value: &toml::value::Datetime) -> Option<Date> {
    if value.time.is_some() || value.offset.is_some() {
        return None;
    }
    let d = value.date?;
    Date::from_calendar_date(i32::from(d.year), Month::try_from(d.month).ok()?, d.day).ok()
}

/// A [`Date`] as a TOML local date.
pub(crate) fn to_toml(date: Date) -> toml::value::Datetime {
    let date = toml::value::Date { year: date.year().clamp(0, 9999) as u16, month: u8::from(date.month()), day: date.day() };
    toml::value::Datetime { date: Some(date), time: None, offset: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn months_are_calendar_months_clamped_to_the_month_end() {
        assert_eq!(add_months(date!(2026 - 04 - 01), 12), date!(2027 - 04 - 01));
        assert_eq!(add_months(date!(2026 - 01 - 31), 1), date!(2026 - 02 - 28));
        assert_eq!(add_months(date!(2028 - 01 - 31), 1), date!(2028 - 02 - 29));
        assert_eq!(add_months(date!(2026 - 11 - 15), 3), date!(2027 - 02 - 15));
        assert_eq!(add_months(Date::MAX, 1), Date::MAX);
        assert_eq!(add_days(Date::MAX, 1), Date::MAX);
        assert_eq!(add_days(date!(2026 - 12 - 25), 7), date!(2027 - 01 - 01));
    }
}
