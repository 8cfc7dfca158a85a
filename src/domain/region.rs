//! Administrative region codes (行政区划代码).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// A six-digit region code: a city such as Nantong `320600`, or one of its
/// counties and districts `3206xx`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionCode([u8; 6]);

impl RegionCode {
    /// Accepts exactly six ASCII digits, not starting with 0.
    pub fn parse(text: &str) -> Result<RegionCode, ParseError> {
        let bytes: [u8; 6] = text.as_bytes().try_into().map_err(|_| {
            ParseError::new(if text.is_empty() {
                "required: a six-digit region code such as 320602"
            } else {
                "must be six digits, such as 320602"
            })
        })?;
        if !bytes.iter().all(u8::is_ascii_digit) || bytes[0] == b'0' {
            return Err(ParseError::new(
                "must be six digits not starting with 0, such as 320602",
            ));
        }
        Ok(RegionCode(bytes))
    }

    /// The city a county belongs to (`320602` gives `320600`); a city is its own.
    pub fn city(self) -> RegionCode {
        let mut city = self.0;
        city[4] = b'0';
        city[5] = b'0';
        RegionCode(city)
    }

    /// True when a query for this code takes in `other`: the same code, or
    /// (for a city code `xxxx00`) one of the city's counties.
    pub fn covers(self, other: RegionCode) -> bool {
        self == other || (self == self.city() && self.0[..4] == other.0[..4])
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??????")
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_and_its_city() {
        let county = RegionCode::parse("320602").unwrap();
        assert_eq!(county.city().to_string(), "320600");
        assert_eq!(county.city().city(), county.city());
        for bad in ["", "32060", "3206020", "32060a", "020602", "３20602"] {
            assert!(RegionCode::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
