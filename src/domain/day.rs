//! Business days: the fund's calendar day of a moment, in its time zone.
//!
//! A settlement belongs to the business day of its `settled_at`, a reversal
//! to the day of its `reversed_at`. The fund's zone is a fixed offset from
//! UTC (`+08:00` by default), so the day is a pure function of the moment
//! and the offset; no daylight-saving rule is involved.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Date, ParseError, Timestamp};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A fixed offset from UTC, written `+08:00` or `-05:30`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UtcOffset {
    seconds: i32,
}

impl UtcOffset {
    /// China Standard Time, the default.
    pub const CHINA: UtcOffset = UtcOffset { seconds: 8 * 3600 };

    /// Parses `±HH:MM`, less than a day away from UTC.
    pub fn parse(text: &str) -> Result<UtcOffset, ParseError> {
        let invalid = || ParseError::new("must be an offset from UTC written +HH:MM or -HH:MM");
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 6
            && matches!(bytes[0], b'+' | b'-')
            && bytes[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| bytes[i].is_ascii_digit());
        if !shaped {
            return Err(invalid());
        }
        let hours: i32 = text[1..3].parse().map_err(|_| invalid())?;
        let minutes: i32 = text[4..6].parse().map_err(|_| invalid())?;
        if hours > 23 || minutes > 59 {
            return Err(invalid());
        }
        let magnitude = hours * 3600 + minutes * 60;
        Ok(UtcOffset {
            seconds: if bytes[0] == b'-' {
                -magnitude
            } else {
                magnitude
            },
        })
    }

    /// Seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.seconds
    }
}

impl Default for UtcOffset {
    fn default() -> Self {
        UtcOffset::CHINA
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.seconds < 0 { '-' } else { '+' };
        let magnitude = self.seconds.abs();
        write!(
            f,
            "{sign}{:02}:{:02}",
            magnitude / 3600,
            magnitude % 3600 / 60
        )
    }
}

/// A business day, as days since 1970-01-01 in the fund's zone.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct BusinessDay(i32);

impl BusinessDay {
    /// The business day of `at` in the zone `offset`.
    pub fn of(at: Timestamp, offset: UtcOffset) -> BusinessDay {
        let local = at.unix_micros() + i64::from(offset.seconds()) * 1_000_000;
        // Days since the epoch of any i64 microsecond count fit an i32.
        BusinessDay(local.div_euclid(MICROS_PER_DAY) as i32)
    }

    /// The business day that is the calendar day `date`.
    pub fn from_date(date: Date) -> BusinessDay {
        // Dates are within 1900..2099, a few tens of thousands of days.
        BusinessDay((date.naive() - epoch()).num_days() as i32)
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    /// Wraps a stored count of days since 1970-01-01.
    pub fn from_days_since_epoch(days: i32) -> BusinessDay {
        BusinessDay(days)
    }

    /// The day after.
    pub fn next(self) -> BusinessDay {
        BusinessDay(self.0 + 1)
    }

    /// The number of days from `self` to `later`, both included.
    pub fn days_through(self, later: BusinessDay) -> i64 {
        i64::from(later.0) - i64::from(self.0) + 1
    }

    /// The calendar year and month (1 to 12) of the day; `None` only for a
    /// day beyond the calendar's range.
    pub fn year_month(self) -> Option<(i32, u32)> {
        use chrono::Datelike as _;
        let day = epoch().checked_add_signed(chrono::TimeDelta::days(i64::from(self.0)))?;
        Some((day.year(), day.month()))
    }

    /// Four bytes a key can hold, ordered as the days are.
    pub fn key_bytes(self) -> [u8; 4] {
        ((self.0 as u32) ^ 0x8000_0000).to_be_bytes()
    }

    /// Reads [`BusinessDay::key_bytes`] back.
    pub fn from_key_bytes(bytes: [u8; 4]) -> BusinessDay {
        BusinessDay((u32::from_be_bytes(bytes) ^ 0x8000_0000) as i32)
    }
}

impl fmt::Display for BusinessDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = epoch().checked_add_signed(chrono::TimeDelta::days(i64::from(self.0)));
        match day {
            Some(day) => write!(f, "{}", day.format("%Y-%m-%d")),
            None => write!(f, "day {}", self.0),
        }
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        Timestamp::from(text.parse::<chrono::DateTime<chrono::Utc>>().unwrap())
    }

    #[test]
    fn the_day_turns_at_midnight_in_the_funds_zone() {
        let day = |at| BusinessDay::of(utc(at), UtcOffset::CHINA).to_string();
        assert_eq!(day("2026-11-30T15:59:59.999999Z"), "2026-11-30");
        assert_eq!(day("2026-11-30T16:00:00Z"), "2026-12-01");
        assert_eq!(day("2026-11-29T16:00:00Z"), "2026-11-30");
        let minus5 = UtcOffset::parse("-05:00").unwrap();
        assert_eq!(
            BusinessDay::of(utc("2026-12-01T04:59:59Z"), minus5).to_string(),
            "2026-11-30"
        );
    }

    #[test]
    fn days_round_trip_through_dates_and_keys() {
        let date = Date::parse("2026-11-30").unwrap();
        let day = BusinessDay::from_date(date);
        assert_eq!(day.to_string(), "2026-11-30");
        assert_eq!(BusinessDay::from_key_bytes(day.key_bytes()), day);
        let old = BusinessDay::from_date(Date::parse("1900-01-01").unwrap());
        assert!(old.key_bytes() < day.key_bytes(), "keys sort as days do");
        assert_eq!(day.days_through(day.next()), 2);
    }

    #[test]
    fn offsets_parse_and_print() {
        for good in ["+08:00", "-05:30", "+00:00"] {
            assert_eq!(UtcOffset::parse(good).unwrap().to_string(), good);
        }
        for bad in ["", "08:00", "+8:00", "+24:00", "+08:60", "+08:00Z", "UTC"] {
            assert!(UtcOffset::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
