//! Money in yuan, exact to the fen.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ParseError;

/// Integer digits the national platform's `numeric(16,2)` columns hold.
const INTEGER_DIGITS_MAX: usize = 14;

/// A non-negative amount of yuan with exactly two decimals, never more than
/// the national platform's `numeric(16,2)` holds.
///
/// Built only by [`Money::parse`], [`Money::from_fen`] or explicit rounding
/// ([`Money::round_up`]), so every value in the service is already valid.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

impl Default for Money {
    /// Zero, with its two decimals: "0.00".
    fn default() -> Self {
        Money::ZERO
    }
}

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));
    /// 10,000.00 yuan.
    pub const TEN_THOUSAND: Money = Money(Decimal::from_parts(1_000_000, 0, 0, false, 2));
    /// The largest amount `numeric(16,2)` holds: 99,999,999,999,999.99.
    pub const MAX: Money = Money(Decimal::from_parts(
        (FEN_MAX & 0xFFFF_FFFF) as u32,
        (FEN_MAX >> 32) as u32,
        0,
        false,
        2,
    ));

    /// Parses a decimal string of yuan: digits, then optionally a dot and one
    /// or two digits ("1234.5", "0.05", "300000"). No sign, exponent or
    /// separators: anything else is refused rather than guessed at.
    pub fn parse(text: &str) -> Result<Money, ParseError> {
        if text.is_empty() {
            return Err(ParseError::new(
                "required: an amount in yuan such as \"1234.50\"",
            ));
        }
        let (integer, fraction) = match text.split_once('.') {
            Some((integer, fraction)) => (integer, fraction),
            None => (text, ""),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty() || !digits(integer) || !digits(fraction) || text.ends_with('.') {
            return Err(ParseError::new(
                "must be a non-negative decimal amount in yuan such as \"1234.50\"",
            ));
        }
        if fraction.len() > 2 {
            return Err(ParseError::new("has more than two decimals (fen)"));
        }
        let integer = integer.trim_start_matches('0');
        if integer.len() > INTEGER_DIGITS_MAX {
            return Err(ParseError::new(
                "is too large: at most 99999999999999.99 (numeric(16,2))",
            ));
        }
        // At most 16 digits in all, so the fen count fits an i64 exactly.
        let fen = format!("{integer}{fraction:0<2}")
            .parse::<i64>()
            .unwrap_or_default();
        Money::from_fen(fen).ok_or_else(|| ParseError::new("is out of range"))
    }

    /// The amount of `fen` hundredths of a yuan, if it is in range.
    pub fn from_fen(fen: i64) -> Option<Money> {
        (0..=FEN_MAX)
            .contains(&fen)
            .then(|| Money(Decimal::new(fen, 2)))
    }

    /// The amount in fen.
    pub fn fen(self) -> i64 {
        // Scale is always 2 and the value at most FEN_MAX, so this is exact.
        i64::try_from(self.0.mantissa()).unwrap_or(i64::MAX)
    }

    /// The exact decimal value, for arithmetic with ratios.
    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// Rounds a non-negative decimal up to the next fen: the policy states
    /// floors ("not lower than"), so a payment never falls short of one by a
    /// fraction of a fen. `None` when negative or out of range.
    pub fn round_up(value: Decimal) -> Option<Money> {
        if value.is_sign_negative() && !value.is_zero() {
            return None;
        }
        let mut rounded = value.round_dp_with_strategy(2, RoundingStrategy::ToPositiveInfinity);
        rounded.rescale(2);
        Money::from_fen(i64::try_from(rounded.mantissa()).ok()?)
    }

    /// `self + other`, if the sum stays in range.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::from_fen(self.fen().checked_add(other.fen())?)
    }

    /// `self - other`, if that is not negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        Money::from_fen(self.fen().checked_sub(other.fen())?)
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Money) -> Money {
        self.checked_sub(other).unwrap_or(Money::ZERO)
    }
}

const FEN_MAX: i64 = 9_999_999_999_999_999;

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always two decimals: "1234.50". From the fen count, which is exact
        // and cheaper to print than the decimal.
        let fen = self.fen();
        write!(f, "{}.{:02}", fen / 100, fen % 100)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "¥{}", self.0)
    }
}

/// Stored as a count of fen: compact, and checked again when read back.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.fen())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fen = i64::deserialize(deserializer)?;
        Money::from_fen(fen).ok_or_else(|| serde::de::Error::custom("money out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuan(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    #[test]
    fn parses_and_prints_two_decimals() {
        assert_eq!(yuan("1234.5").to_string(), "1234.50");
        assert_eq!(yuan("0").to_string(), "0.00");
        assert_eq!(yuan("007.05").to_string(), "7.05");
        assert_eq!(yuan("300000").to_string(), "300000.00");
        assert_eq!(yuan("99999999999999.99"), Money::MAX);
        assert_eq!(Money::MAX.to_string(), "99999999999999.99");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::default().to_string(), "0.00");
    }

    #[test]
    fn refuses_everything_that_is_not_a_plain_amount() {
        for bad in [
            "",
            "-0",
            "-1",
            "+1",
            "1e5",
            "NaN",
            "inf",
            "0.001",
            "1.",
            ".5",
            "1,000.00",
            " 1",
            "1 ",
            "１",
            "100000000000000",
            "123456789012345678901234567890",
            "1.2.3",
            "0x10",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rounds_up_to_the_fen() {
        use std::str::FromStr;
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(Money::round_up(d("7350")).unwrap(), yuan("7350"));
        assert_eq!(Money::round_up(d("0.001")).unwrap(), yuan("0.01"));
        assert_eq!(Money::round_up(d("10.010000001")).unwrap(), yuan("10.02"));
        assert_eq!(Money::round_up(d("0")).unwrap(), Money::ZERO);
        assert_eq!(Money::round_up(d("-0.01")), None);
    }

    #[test]
    fn arithmetic_stays_in_range() {
        assert_eq!(Money::MAX.checked_add(yuan("0.01")), None);
        assert_eq!(yuan("1").checked_sub(yuan("2")), None);
        assert_eq!(yuan("1").saturating_sub(yuan("2")), Money::ZERO);
        assert_eq!(yuan("5.5").checked_add(yuan("0.75")).unwrap(), yuan("6.25"));
        assert_eq!(yuan("12.34").fen(), 1234);
    }
}
