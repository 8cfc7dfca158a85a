//! Identifiers and free text that callers send: bounded and printable.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// Longest hospital or claim identifier, in bytes.
pub const IDENT_LEN_MAX: usize = 64;
/// Longest person name, in characters.
pub const NAME_CHARS_MAX: usize = 64;
/// Longest reversal reason, in characters.
pub const REASON_CHARS_MAX: usize = 256;

fn parse_ident(text: &str) -> Result<String, ParseError> {
    if text.is_empty() {
        return Err(ParseError::new("required"));
    }
    if text.len() > IDENT_LEN_MAX {
        return Err(ParseError::new(format!(
            "is longer than {IDENT_LEN_MAX} characters"
        )));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::new(
            "may hold only printable ASCII characters without spaces",
        ));
    }
    Ok(text.to_owned())
}

fn parse_text(text: &str, chars_max: usize) -> Result<String, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::new("required"));
    }
    if text.chars().count() > chars_max {
        return Err(ParseError::new(format!(
            "is longer than {chars_max} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ParseError::new("may not hold control characters"));
    }
    Ok(text.to_owned())
}

/// The code a hospital (定点医疗机构) is known by: 1 to 64 printable ASCII
/// characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct HospitalId(String);

impl HospitalId {
    /// Accepts 1 to 64 printable ASCII characters, no spaces.
    pub fn parse(text: &str) -> Result<HospitalId, ParseError> {
        parse_ident(text).map(HospitalId)
    }

    /// The identifier as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A hospital's claim number: with the hospital, it keys one settlement forever.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct ClaimId(String);

impl ClaimId {
    /// Accepts 1 to 64 printable ASCII characters, no spaces.
    pub fn parse(text: &str) -> Result<ClaimId, ParseError> {
        parse_ident(text).map(ClaimId)
    }

    /// The claim number of a top-up application (see
    /// `domain::TopUp::key`): `~`, the window settlement's number, `~`, the
    /// application's; 34 printable ASCII characters.
    pub(crate) fn of_top_up(window: u64, application: u64) -> ClaimId {
        ClaimId(format!("~{window:016}~{application:016}"))
    }

    /// The identifier as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HospitalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fund's reference of a payment made on an approved application (a
/// transfer or voucher number): 1 to 64 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentRef(String);

impl PaymentRef {
    /// Accepts 1 to 64 printable ASCII characters, no spaces.
    pub fn parse(text: &str) -> Result<PaymentRef, ParseError> {
        parse_ident(text).map(PaymentRef)
    }

    /// The reference as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's name: personal data, so `Debug` shows only its first character.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName(String);

impl PersonName {
    /// Accepts 1 to 64 characters without control characters.
    pub fn parse(text: &str) -> Result<PersonName, ParseError> {
        parse_text(text, NAME_CHARS_MAX).map(PersonName)
    }

    /// The whole name, for storage and the roster office that sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.0.chars().next().unwrap_or('?');
        write!(f, "{first}**")
    }
}

/// Free text a caller gives for the record: why a settlement was reversed,
/// or an application rejected; where an application's documents are.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Reason(String);

impl Reason {
    /// Accepts 1 to 256 characters without control characters.
    pub fn parse(text: &str) -> Result<Reason, ParseError> {
        parse_text(text, REASON_CHARS_MAX).map(Reason)
    }

    /// The reason as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bounded_printable_ascii() {
        assert!(HospitalId::parse("H001").is_ok());
        assert!(ClaimId::parse(&"9".repeat(64)).is_ok());
        for bad in ["", " ", "H 001", "H001\n", "医院", &"9".repeat(65), "\u{0}"] {
            assert!(HospitalId::parse(bad).is_err(), "{bad:?} should be refused");
            assert!(ClaimId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn names_and_reasons_are_bounded_text() {
        assert!(PersonName::parse("张三").is_ok());
        assert!(PersonName::parse(&"张".repeat(64)).is_ok());
        assert!(PersonName::parse(&"张".repeat(65)).is_err());
        assert!(PersonName::parse("  ").is_err());
        assert!(PersonName::parse("张\u{7}三").is_err());
        assert!(Reason::parse("bill corrected").is_ok());
        assert!(Reason::parse(&"x".repeat(257)).is_err());
        assert!(Reason::parse("").is_err());
    }

    #[test]
    fn names_never_show_whole_in_debug() {
        let name = PersonName::parse("张三丰").unwrap();
        assert_eq!(format!("{name:?}"), "张**");
    }
}
