//! ICD-10 diagnosis codes and the patterns a disease catalogue matches them by.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// Longest diagnosis code accepted, dot included (national extensions such as
/// `C34.900x001` are eleven).
pub const DIAGNOSIS_CODE_LEN_MAX: usize = 16;

/// An ICD-10 code such as `C34.900` or `N18`, upper-cased: a letter, two
/// digits (the second may be a letter, as in `C7A`), then optionally a dot and
/// up to twelve letters or digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DiagnosisCode(String);

impl DiagnosisCode {
    /// Checks the ICD-10 shape; lower-case letters are taken as upper case.
    pub fn parse(text: &str) -> Result<DiagnosisCode, ParseError> {
        if text.len() > DIAGNOSIS_CODE_LEN_MAX {
            return Err(ParseError::new(
                "is too long for an ICD-10 code (at most 16 characters)",
            ));
        }
        let code = text.to_ascii_uppercase();
        if !is_icd10_shape(&code, false) {
            return Err(ParseError::new(
                "must be an ICD-10 code such as C34.900 or N18",
            ));
        }
        Ok(DiagnosisCode(code))
    }

    /// The code as given (upper case).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Letter, digit, letter-or-digit, then an optional dot and more letters or
/// digits. A catalogue prefix may stop right after the dot's digits; a claim
/// code may not end with a bare dot.
fn is_icd10_shape(code: &str, allow_short: bool) -> bool {
    let bytes = code.as_bytes();
    let head_len = bytes.len().min(3);
    let head_ok = bytes[..head_len].iter().enumerate().all(|(i, b)| match i {
        0 => b.is_ascii_uppercase(),
        1 => b.is_ascii_digit(),
        _ => b.is_ascii_digit() || b.is_ascii_uppercase(),
    });
    if !head_ok || head_len < if allow_short { 1 } else { 3 } {
        return false;
    }
    // The head is three ASCII characters, so byte 3 starts the tail.
    let tail = &bytes[head_len..];
    let tail = tail.strip_prefix(b".").unwrap_or(tail);
    (bytes.len() == head_len || !tail.is_empty())
        && tail
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

impl TryFrom<String> for DiagnosisCode {
    type Error = ParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        DiagnosisCode::parse(&text)
    }
}

impl From<DiagnosisCode> for String {
    fn from(code: DiagnosisCode) -> String {
        code.0
    }
}

impl fmt::Display for DiagnosisCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DiagnosisCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of a disease catalogue's code list: a prefix (`D68.1`, `N18`)
/// or an inclusive range of three-character codes (`C00-C97`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CodePattern {
    /// Matches every code that starts with it, dots ignored.
    Prefix {
        /// As configured (upper case), and so as shown.
        written: String,
        /// Without its dot, as compared.
        compact: String,
    },
    /// Matches every code whose first three characters lie in the range.
    Range(String, String),
}

impl CodePattern {
    /// Reads `C00-C97`, or a prefix such as `K70.3` or `B2`.
    pub fn parse(text: &str) -> Result<CodePattern, ParseError> {
        let text = text.to_ascii_uppercase();
        if let Some((from, to)) = text.split_once('-') {
            let three = |s: &str| s.len() == 3 && is_icd10_shape(s, false);
            if !three(from) || !three(to) || from > to || from.as_bytes()[0] != to.as_bytes()[0] {
                return Err(ParseError::new(format!(
                    "range {text:?} must join two three-character codes of one letter, low to high (C00-C97)"
                )));
            }
            return Ok(CodePattern::Range(from.to_owned(), to.to_owned()));
        }
        if text.len() > DIAGNOSIS_CODE_LEN_MAX || !is_icd10_shape(&text, true) {
            return Err(ParseError::new(format!(
                "{text:?} is not an ICD-10 code prefix such as D68.1 or N18"
            )));
        }
        let compact = text.replace('.', "");
        Ok(CodePattern::Prefix {
            written: text,
            compact,
        })
    }

    /// True when `code` falls under this pattern. Called for every pattern
    /// and code of every claim, so it compares in place without allocating.
    pub fn matches(&self, code: &DiagnosisCode) -> bool {
        match self {
            CodePattern::Prefix { compact, .. } => {
                let mut code = code.0.bytes().filter(|b| *b != b'.');
                compact
                    .bytes()
                    .all(|expected| code.next() == Some(expected))
            }
            CodePattern::Range(from, to) => {
                // A code's first three characters are a letter and two
                // letters or digits: never a dot.
                let head = &code.0[..3];
                from.as_str() <= head && head <= to.as_str()
            }
        }
    }
}

impl fmt::Display for CodePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodePattern::Prefix { written, .. } => f.write_str(written),
            CodePattern::Range(from, to) => write!(f, "{from}-{to}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> DiagnosisCode {
        DiagnosisCode::parse(text).unwrap()
    }

    fn pattern(text: &str) -> CodePattern {
        CodePattern::parse(text).unwrap()
    }

    #[test]
    fn accepts_icd10_shapes() {
        for good in [
            "N18",
            "C34.900",
            "c34.900x001",
            "D68.100",
            "C7A",
            "Z94.0",
            "K703",
        ] {
            assert!(
                DiagnosisCode::parse(good).is_ok(),
                "{good:?} should be accepted"
            );
        }
        assert_eq!(code("c34.9").as_str(), "C34.9");
        for bad in [
            "",
            "N1",
            "18N",
            "N18.",
            "N18..1",
            "N 18",
            "N18-1",
            "Ｎ18",
            "C34.9000000000000",
        ] {
            assert!(
                DiagnosisCode::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn prefixes_match_ignoring_the_dot() {
        assert!(pattern("D68.1").matches(&code("D68.100")));
        assert!(pattern("D68.1").matches(&code("D681")));
        assert!(!pattern("D68.1").matches(&code("D68.2")));
        assert!(!pattern("D68.1").matches(&code("D68")));
        assert!(pattern("N18").matches(&code("N18.5")));
        assert!(pattern("K70.3").matches(&code("K70.300")));
        assert!(!pattern("K70.3").matches(&code("K70.4")));
    }

    #[test]
    fn ranges_cover_three_character_heads_inclusively() {
        let tumours = pattern("C00-C97");
        assert!(tumours.matches(&code("C00")));
        assert!(tumours.matches(&code("C34.900")));
        assert!(tumours.matches(&code("C97.X00")));
        assert!(!tumours.matches(&code("D00.0")));
        assert!(!tumours.matches(&code("B99")));
        for bad in [
            "C97-C00",
            "C00-D10",
            "C0-C97",
            "C00-",
            "-C97",
            "C00-C97-C99",
            "??",
        ] {
            assert!(
                CodePattern::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn patterns_print_as_configured() {
        assert_eq!(pattern("d68.1").to_string(), "D68.1");
        assert_eq!(pattern("C00-C97").to_string(), "C00-C97");
        assert_eq!(pattern("N18").to_string(), "N18");
        assert_eq!(pattern("K703").to_string(), "K703");
    }

    /// Found by the `diagnosis_code` fuzz target: a 16-character prefix
    /// without a dot used to print with one inserted, 17 characters long,
    /// which no longer parsed. Patterns now print exactly as configured.
    #[test]
    fn every_pattern_parses_back_from_how_it_prints() {
        for text in [
            "z4XXXzXXXXXlXXzz",
            "D68.1",
            "D681",
            "B2",
            "C00-C97",
            "A18.0",
        ] {
            let parsed = pattern(text);
            assert_eq!(
                CodePattern::parse(&parsed.to_string()).unwrap(),
                parsed,
                "{text}"
            );
        }
    }
}
