//! What each field format of the wire accepts, written once: the
//! `FieldFormat` values of `proto/medassist/v1/field_rules.proto` (which
//! request fields carry which format) mapped to the pattern that the
//! OpenAPI document publishes (`build/openapi.rs` includes this file) and
//! that the parsers of this module's neighbours are tested against (the
//! tests below: whatever a parser accepts matches its pattern, and whatever
//! matches the pattern the parser accepts, save what no pattern can say,
//! which the format's proto comment states: a check character, a real
//! calendar day, a number's range).
//!
//! Nothing here depends on the rest of the crate, so the build script can
//! include the file as it is.

/// How one format is written.
#[derive(Debug)]
pub struct WireFormat {
    /// The `FieldFormat` value's name in the proto.
    pub name: &'static str,
    /// An ECMA-262 regular expression the whole value matches, without its
    /// `^`/`$` anchors (the document adds them, and allows the empty string
    /// for fields that are not required).
    pub pattern: Option<&'static str>,
    /// The OpenAPI `format` (`date`), given for required fields only (an
    /// optional one may be empty, which no date is).
    pub format: Option<&'static str>,
    /// The longest value, in characters.
    pub length_max: Option<u32>,
    /// The range of an integer field, both ends included.
    pub range: Option<(i64, i64)>,
    /// A value the server accepts, for the document's `example`.
    pub example: &'static str,
}

/// Every format. The build fails if a field carries a format not listed.
pub const FORMATS: &[WireFormat] = &[
    WireFormat {
        name: "FIELD_FORMAT_MONEY",
        // Leading zeros do not count towards the 14 integer digits.
        pattern: Some(r"0*[0-9]{1,14}(\.[0-9]{1,2})?"),
        format: None,
        length_max: None,
        range: None,
        example: "50000.00",
    },
    WireFormat {
        name: "FIELD_FORMAT_DATE",
        pattern: Some(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"),
        format: Some("date"),
        length_max: Some(10),
        range: None,
        example: "2026-03-01",
    },
    WireFormat {
        name: "FIELD_FORMAT_RESIDENT_ID",
        pattern: Some(
            r"[1-9][0-9]{5}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]",
        ),
        format: None,
        length_max: Some(18),
        range: None,
        example: "320602196001010612",
    },
    WireFormat {
        name: "FIELD_FORMAT_REGION_CODE",
        pattern: Some(r"[1-9][0-9]{5}"),
        format: None,
        length_max: Some(6),
        range: None,
        example: "320602",
    },
    WireFormat {
        name: "FIELD_FORMAT_DIAGNOSIS_CODE",
        pattern: Some(r"[A-Za-z][0-9][0-9A-Za-z](\.?[0-9A-Za-z]+)?"),
        format: None,
        length_max: Some(16),
        range: None,
        example: "N18.500",
    },
    WireFormat {
        name: "FIELD_FORMAT_IDENTIFIER",
        // Printable ASCII without the space: '!' to '~'.
        pattern: Some(r"[!-~]{1,64}"),
        format: None,
        length_max: Some(64),
        range: None,
        example: "H001",
    },
    WireFormat {
        name: "FIELD_FORMAT_SETTLEMENT_ID",
        pattern: Some(r"[0-9]*[1-9][0-9]*"),
        format: None,
        length_max: Some(20),
        range: None,
        example: "0000000000000007",
    },
    WireFormat {
        name: "FIELD_FORMAT_YEAR",
        pattern: None,
        format: None,
        length_max: None,
        range: Some((1900, 2099)),
        example: "2026",
    },
];

/// The format of a `FieldFormat` value name.
pub fn find(name: &str) -> Option<&'static WireFormat> {
    FORMATS.iter().find(|format| format.name == name)
}

impl WireFormat {
    /// The whole-value pattern of a field: anchored, and allowing the empty
    /// string unless the field is required (proto3 JSON reads an absent
    /// string as empty, and the server takes empty for "none").
    pub fn anchored(&self, required: bool) -> Option<String> {
        self.pattern.map(|body| match required {
            true => format!("^{body}$"),
            false => format!("^({body})?$"),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::domain::{
        Date, DiagnosisCode, Money, RegionCode, ResidentId, SettlementId, Year,
        text::{ClaimId, HospitalId},
    };

    fn regex(name: &str) -> Regex {
        Regex::new(&find(name).unwrap().anchored(true).unwrap()).unwrap()
    }

    /// What the parser of each format says of a value.
    fn accepts(name: &str, text: &str) -> bool {
        match name {
            "FIELD_FORMAT_MONEY" => Money::parse(text).is_ok(),
            "FIELD_FORMAT_DATE" => Date::parse(text).is_ok(),
            "FIELD_FORMAT_RESIDENT_ID" => ResidentId::parse(text).is_ok(),
            "FIELD_FORMAT_REGION_CODE" => RegionCode::parse(text).is_ok(),
            "FIELD_FORMAT_DIAGNOSIS_CODE" => DiagnosisCode::parse(text).is_ok(),
            "FIELD_FORMAT_IDENTIFIER" => {
                let both = HospitalId::parse(text).is_ok();
                assert_eq!(both, ClaimId::parse(text).is_ok(), "{text:?}");
                both
            }
            "FIELD_FORMAT_SETTLEMENT_ID" => SettlementId::parse(text).is_ok(),
            other => panic!("no parser for {other}"),
        }
    }

    /// What no pattern says, for the formats whose comment states it: a
    /// real calendar day (the document's `format: date`), the check
    /// character, a number that fits 64 bits.
    fn beyond_the_pattern(name: &str, text: &str) -> bool {
        match name {
            "FIELD_FORMAT_DATE" => {
                let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap();
                chrono::NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))
                    .is_some()
            }
            "FIELD_FORMAT_RESIDENT_ID" => {
                let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap();
                let year = number(6..10) as i32;
                let Ok(birth) = Date::from_ymd(year, number(10..12), number(12..14)) else {
                    return false;
                };
                let region = RegionCode::parse(&text[..6]).unwrap();
                let composed = ResidentId::compose(region, birth, number(14..17) as u16);
                composed.as_str().eq_ignore_ascii_case(text)
            }
            "FIELD_FORMAT_SETTLEMENT_ID" => text.parse::<u64>().is_ok(),
            _ => true,
        }
    }

    /// Proves every proto `FieldFormat` value has its entry, and each
    /// example is accepted by its parser.
    #[test]
    fn every_format_is_listed_and_its_example_is_valid() {
        let pool = prost_reflect::DescriptorPool::decode(crate::grpc::FILE_DESCRIPTOR_SET).unwrap();
        let formats = pool
            .get_enum_by_name("medassist.v1.FieldFormat")
            .expect("field_rules.proto is compiled");
        for value in formats.values().filter(|v| v.number() != 0) {
            let format = find(value.name()).unwrap_or_else(|| panic!("{} unlisted", value.name()));
            match format.range {
                Some((low, high)) => {
                    for year in [low, high] {
                        assert!(Year::parse(year as i32).is_ok());
                    }
                    assert!(Year::parse(low as i32 - 1).is_err());
                    assert!(Year::parse(high as i32 + 1).is_err());
                }
                None => assert!(accepts(format.name, format.example), "{format:?}"),
            }
        }
    }

    /// Values near each format: digits, letters, dots, dashes and spaces
    /// in the lengths that matter.
    fn nearby() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9.]{0,20}",
            "0{0,4}[0-9]{13,16}(\\.[0-9]{0,3})?",
            "[12][09][0-9]{2}-[0-1][0-9]-[0-3][0-9]",
            "[0-9]{17}[0-9Xx ]",
            "[0-9]{5,7}",
            "[A-Za-z][0-9][0-9A-Za-z.]{0,15}",
            "[ -~]{0,66}",
            "[ -\u{ff}]{0,8}",
        ]
    }

    proptest! {
        /// Proves each parser accepts exactly what its pattern (with what
        /// its comment adds) describes, on values close to every format.
        #[test]
        fn parsers_accept_what_the_patterns_say(text in nearby()) {
            for format in FORMATS.iter().filter(|f| f.pattern.is_some()) {
                let matched = regex(format.name).is_match(&text)
                    && format.length_max.is_none_or(|max| text.chars().count() <= max as usize);
                let expected = matched && beyond_the_pattern(format.name, &text);
                prop_assert_eq!(
                    accepts(format.name, &text), expected,
                    "{} of {:?}", format.name, text
                );
            }
        }

        /// Proves values drawn from each pattern are accepted, save what
        /// the pattern cannot say.
        #[test]
        fn values_drawn_from_the_patterns_are_accepted(
            (name, text) in proptest::sample::select(
                FORMATS.iter().filter(|f| f.pattern.is_some()).collect::<Vec<_>>()
            ).prop_flat_map(|format| {
                proptest::string::string_regex(format.pattern.unwrap())
                    .unwrap()
                    .prop_map(move |text| (format.name, text))
            })
        ) {
            let fits = find(name).unwrap().length_max.is_none_or(|max| text.chars().count() <= max as usize);
            prop_assume!(fits);
            prop_assert_eq!(accepts(name, &text), beyond_the_pattern(name, &text), "{} of {:?}", name, text);
        }
    }
}
