//! Calendar days and cap years, within the range the service accepts.

use std::fmt;

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ParseError;

/// The first year the service accepts.
pub const YEAR_MIN: i32 = 1900;
/// The last year the service accepts.
pub const YEAR_MAX: i32 = 2099;

/// A real calendar day from 1900-01-01 to 2099-12-31, written `YYYY-MM-DD`.
///
/// Nothing in the service compares a date with today's clock: every rule is a
/// function of the dates on the claim and the roster.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(NaiveDate);

impl Date {
    /// The first day the service accepts.
    pub const MIN: Date = Date(NaiveDate::from_ymd_opt(YEAR_MIN, 1, 1).unwrap());

    /// Parses exactly `YYYY-MM-DD`, a real day in the accepted range.
    pub fn parse(text: &str) -> Result<Date, ParseError> {
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shaped {
            return Err(ParseError::new(if text.is_empty() {
                "required: a date written YYYY-MM-DD"
            } else {
                "must be a date written YYYY-MM-DD"
            }));
        }
        let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(0);
        let year = i32::try_from(number(0..4)).unwrap_or(0);
        Date::from_ymd(year, number(5..7), number(8..10))
    }

    /// The day `year-month-day`, if it exists and is in range.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Result<Date, ParseError> {
        if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
            return Err(ParseError::new("must be between 1900-01-01 and 2099-12-31"));
        }
        NaiveDate::from_ymd_opt(year, month, day)
            .map(Date)
            .ok_or_else(|| ParseError::new("is not a real calendar day"))
    }

    /// The calendar year, which for a discharge date is the cap year.
    pub fn year(self) -> Year {
        Year(self.0.year() as u16)
    }

    /// Full years (周岁) from `self` (a birth date) to `on`. Someone born on
    /// 29 February turns a year older on 1 March in common years, which is
    /// what comparing (month, day) pairs gives.
    pub fn full_years_until(self, on: Date) -> i32 {
        let birthday_passed = (on.0.month(), on.0.day()) >= (self.0.month(), self.0.day());
        on.0.year() - self.0.year() - i32::from(!birthday_passed)
    }

    /// The last day still inside a grace period of `months` calendar months
    /// after `self`, clamped to the month's end (2025-11-30 plus 3 months is
    /// 2026-02-28). May lie past 2099: it is only compared, never shown.
    pub fn plus_months(self, months: u32) -> NaiveDate {
        self.0
            .checked_add_months(Months::new(months))
            .unwrap_or(NaiveDate::MAX)
    }

    /// The underlying calendar day.
    pub fn naive(self) -> NaiveDate {
        self.0
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every answer prints dates: plain integer formatting, not a
        // strftime pattern parsed on each call.
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            self.0.month(),
            self.0.day()
        )
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Stored as days from the Common Era: three bytes instead of ten.
impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(self.0.num_days_from_ce())
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let days = i32::deserialize(deserializer)?;
        NaiveDate::from_num_days_from_ce_opt(days)
            .filter(|d| (YEAR_MIN..=YEAR_MAX).contains(&d.year()))
            .map(Date)
            .ok_or_else(|| serde::de::Error::custom("date out of range"))
    }
}

/// A calendar year from 1900 to 2099: the cap year of a settlement.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Year(u16);

impl Year {
    /// Accepts a year from 1900 to 2099.
    pub fn parse(year: i32) -> Result<Year, ParseError> {
        if (YEAR_MIN..=YEAR_MAX).contains(&year) {
            Ok(Year(year as u16))
        } else {
            Err(ParseError::new("must be a year from 1900 to 2099"))
        }
    }

    /// The year as a number.
    pub fn get(self) -> i32 {
        i32::from(self.0)
    }
}

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    #[test]
    fn parses_real_days_in_range_only() {
        assert_eq!(day("2024-02-29").to_string(), "2024-02-29");
        assert_eq!(day("1900-01-01").to_string(), "1900-01-01");
        assert_eq!(day("2099-12-31").to_string(), "2099-12-31");
        for bad in [
            "",
            "2023-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "1899-12-31",
            "2100-01-01",
            "2025-1-01",
            "2025/01/01",
            "20250101",
            "2025-01-01T00:00",
            "+025-01-01",
            "２０２５-01-01",
            "0000-00-00",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn full_years_turn_on_the_birthday() {
        let born = day("2008-06-15");
        assert_eq!(born.full_years_until(day("2026-06-14")), 17);
        assert_eq!(born.full_years_until(day("2026-06-15")), 18);
        assert_eq!(born.full_years_until(day("2008-06-15")), 0);
    }

    #[test]
    fn leap_day_birthdays_turn_on_the_first_of_march_in_common_years() {
        let born = day("2008-02-29");
        assert_eq!(born.full_years_until(day("2026-02-28")), 17);
        assert_eq!(born.full_years_until(day("2026-03-01")), 18);
        assert_eq!(born.full_years_until(day("2028-02-28")), 19);
        assert_eq!(born.full_years_until(day("2028-02-29")), 20);
    }

    #[test]
    fn grace_months_clamp_to_the_end_of_the_month() {
        assert_eq!(day("2025-11-30").plus_months(3).to_string(), "2026-02-28");
        assert_eq!(day("2023-11-30").plus_months(3).to_string(), "2024-02-29");
        assert_eq!(day("2025-01-31").plus_months(1).to_string(), "2025-02-28");
        assert_eq!(day("2024-02-29").plus_months(24).to_string(), "2026-02-28");
        assert_eq!(day("2025-05-10").plus_months(0), day("2025-05-10").naive());
    }

    #[test]
    fn years_are_bounded() {
        assert!(Year::parse(1899).is_err());
        assert!(Year::parse(2100).is_err());
        assert_eq!(Year::parse(2026).unwrap().get(), 2026);
        assert_eq!(day("2026-12-31").year().get(), 2026);
    }
}
