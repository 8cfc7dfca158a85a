//! Resident ID numbers (身份证号): the patient key, and personal data.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Date, ParseError};

/// Weights of the first 17 characters in the ISO 7064 MOD 11-2 check (GB 11643).
const CHECK_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder modulo 11.
const CHECK_CHARACTERS: &[u8; 11] = b"10X98765432";

/// An 18-character resident ID number, checked against GB 11643: six region
/// digits, the birth date, a three-digit sequence and the check character.
///
/// It is personal data: `Display` and `Debug` show it masked
/// (`320602********123X`), so it cannot reach a log whole by accident. Only
/// [`ResidentId::as_str`] gives the full number, for storage and the wire.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResidentId(String);

impl ResidentId {
    /// Checks shape, birth date and check character. A lower-case `x` is
    /// taken as `X`.
    pub fn parse(text: &str) -> Result<ResidentId, ParseError> {
        if text.is_empty() {
            return Err(ParseError::new(
                "required: an 18-character resident ID number",
            ));
        }
        let bytes = text.as_bytes();
        if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::new(
                "must be 18 characters: 17 digits and a check digit or X",
            ));
        }
        let check = bytes[17].to_ascii_uppercase();
        if !(check.is_ascii_digit() || check == b'X') {
            return Err(ParseError::new("the last character must be a digit or X"));
        }
        if bytes[0] == b'0' {
            return Err(ParseError::new("the region part cannot start with 0"));
        }
        birth_date_of(bytes).map_err(|_| {
            ParseError::new(
                "the birth date part (characters 7 to 14) is not a real date from 1900 to 2099",
            )
        })?;
        if check_character(&bytes[..17]) != check {
            return Err(ParseError::new(
                "the check character does not match (GB 11643)",
            ));
        }
        let mut normalized = text.to_owned();
        normalized.make_ascii_uppercase();
        Ok(ResidentId(normalized))
    }

    /// Builds the number of someone registered in `region`, born on `birth`,
    /// with sequence number `sequence` (0 to 999; odd for men, even for
    /// women), computing its check character. For generating test and
    /// benchmark rosters.
    pub fn compose(region: super::RegionCode, birth: Date, sequence: u16) -> ResidentId {
        let mut text = format!(
            "{region}{}{:03}",
            birth.naive().format("%Y%m%d"),
            sequence % 1000
        );
        text.push(char::from(check_character(text.as_bytes())));
        ResidentId(text)
    }

    /// The birth date the number carries.
    pub fn birth_date(&self) -> Date {
        // Checked by `parse`; a stored value that fails here was corrupted,
        // and the earliest date keeps the rules total rather than panicking.
        birth_date_of(self.0.as_bytes()).unwrap_or(Date::MIN)
    }

    /// The full number, for storage and for the caller who sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form safe for logs: region digits, then stars, then the last four.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

/// The ISO 7064 MOD 11-2 check character of the first 17 digits.
fn check_character(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(CHECK_WEIGHTS)
        .map(|(digit, weight)| u32::from(digit.wrapping_sub(b'0')) * weight)
        .sum();
    CHECK_CHARACTERS[(sum % 11) as usize]
}

fn birth_date_of(bytes: &[u8]) -> Result<Date, ParseError> {
    let text = std::str::from_utf8(&bytes[6..14]).map_err(|_| ParseError::new("not ASCII"))?;
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(0);
    Date::from_ymd(number(0..4) as i32, number(4..6), number(6..8))
}

impl TryFrom<String> for ResidentId {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        ResidentId::parse(&text)
    }
}

impl From<ResidentId> for String {
    fn from(id: ResidentId) -> String {
        id.0
    }
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid resident ID from 17 digits by computing its check character.
    pub(crate) fn with_check(first17: &str) -> String {
        format!(
            "{first17}{}",
            char::from(check_character(first17.as_bytes()))
        )
    }

    #[test]
    fn accepts_valid_numbers_and_reads_the_birth_date() {
        // A published GB 11643 example.
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.birth_date().to_string(), "1949-12-31");
        let lower = ResidentId::parse("11010519491231002x").unwrap();
        assert_eq!(lower.as_str(), "11010519491231002X");
        let generated = with_check("32060220080229123");
        assert_eq!(
            ResidentId::parse(&generated)
                .unwrap()
                .birth_date()
                .to_string(),
            "2008-02-29"
        );
    }

    #[test]
    fn composed_numbers_parse_back() {
        let region = crate::domain::RegionCode::parse("320602").unwrap();
        let birth = Date::parse("2008-02-29").unwrap();
        let id = ResidentId::compose(region, birth, 7);
        assert_eq!(ResidentId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.birth_date(), birth);
        assert_eq!(&id.as_str()[..17], "32060220080229007");
    }

    #[test]
    fn refuses_bad_shape_date_and_check() {
        let wrong_check = "110105194912310021";
        for bad in [
            "",
            "11010519491231002",
            "11010519491231002XX",
            "1101051949123100ZX",
            "A1010519491231002X",
            wrong_check,
            &with_check("32060220230229123"), // no 29 February in 2023
            &with_check("32060218991231123"), // before 1900
            &with_check("02060219900101123"), // region cannot start with 0
            "３2060219900101123X",
        ] {
            assert!(ResidentId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn never_shows_whole_in_display_or_debug() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.to_string(), "110105********002X");
        assert_eq!(format!("{id:?}"), "110105********002X");
        assert!(!format!("{id} {id:?}").contains("19491231"));
    }
}
