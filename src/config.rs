//! The policy file (`--config FILE`): local policies by region and year.
//!
//! ```toml
//! [[policy]]
//! region_code = "320600"          # a city, or one of its counties (3206xx)
//! year = 2025                     # first cap year it applies to
//! assistance_ratio = "0.70"       # at least 0.70
//! cap_fraction = "0.50"           # at least 0.50
//! basic_insurance_annual_cap = "300000.00"
//! gradual_exit_grace_months = 3   # optional, default 3
//! left_poverty_grace_months = 24  # optional, default 24
//!
//! [[policy.disease]]              # optional: default is the seed catalogue
//! name = "malignant tumour"
//! codes = ["C00-C97"]
//! ```
//!
//! Numbers that are money or shares are strings, so no value ever passes
//! through a floating-point number.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{
    CodePattern, Disease, GracePeriods, Money, ParseError, Policy, PolicyBook, PolicyTerms, Ratio,
    RegionCode, Year, builtin_catalogue,
};

/// Largest policy file read, in bytes.
const FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Most policy entries one file may hold.
const POLICIES_MAX: usize = 10_000;

/// Why the configuration cannot be used; the service refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is too large to be a policy file.
    #[error("{path} is larger than {FILE_BYTES_MAX} bytes")]
    TooLarge {
        /// The file named by `--config`.
        path: PathBuf,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid policy file: {0}")]
    Syntax(#[from] toml::de::Error),
    /// One entry breaks a rule; the message names it.
    #[error("{entry}: {message}")]
    Policy {
        /// Which entry, such as `policy[2] (region 320601, year 2025)`.
        entry: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file as a whole breaks a rule.
    #[error("invalid policy file: {0}")]
    Book(String),
}

/// Everything the configuration file sets.
#[derive(Clone, Debug)]
pub struct Config {
    /// The policies, by region and year.
    pub policies: PolicyBook,
}

impl Default for Config {
    /// The built-in policy: Nantong city, every year, the seed's floors.
    fn default() -> Self {
        Config {
            policies: PolicyBook::builtin(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    policy: Vec<PolicyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    region_code: String,
    year: i32,
    assistance_ratio: String,
    cap_fraction: String,
    basic_insurance_annual_cap: String,
    gradual_exit_grace_months: Option<u32>,
    left_poverty_grace_months: Option<u32>,
    disease: Option<Vec<DiseaseEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiseaseEntry {
    name: String,
    codes: Vec<String>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > FILE_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        Config::parse(&std::fs::read_to_string(path).map_err(read_error)?)
    }

    /// Checks configuration text. Every policy must meet the city's floors.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: FileShape = toml::from_str(text)?;
        if file.policy.is_empty() {
            return Err(ConfigError::Book("no [[policy]] entry".into()));
        }
        if file.policy.len() > POLICIES_MAX {
            return Err(ConfigError::Book(format!(
                "more than {POLICIES_MAX} policies"
            )));
        }
        let mut policies = Vec::with_capacity(file.policy.len());
        for (i, entry) in file.policy.into_iter().enumerate() {
            let name = format!(
                "policy[{i}] (region {}, year {})",
                entry.region_code, entry.year
            );
            let policy = entry.into_policy().map_err(|message| ConfigError::Policy {
                entry: name,
                message,
            })?;
            policies.push(policy);
        }
        let policies = PolicyBook::new(policies).map_err(|e| ConfigError::Book(e.to_string()))?;
        Ok(Config { policies })
    }
}

impl PolicyEntry {
    fn into_policy(self) -> Result<Policy, String> {
        let field = |name: &str, error: ParseError| format!("{name}: {error}");
        let defaults = GracePeriods::default();
        let diseases = match self.disease {
            None => builtin_catalogue(),
            Some(entries) => entries
                .into_iter()
                .map(|entry| {
                    let codes = entry
                        .codes
                        .iter()
                        .map(|code| CodePattern::parse(code))
                        .collect::<Result<_, _>>()
                        .map_err(|e| field(&format!("disease {:?}", entry.name), e))?;
                    Ok(Disease {
                        name: entry.name,
                        codes,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        let terms = PolicyTerms {
            region: RegionCode::parse(&self.region_code).map_err(|e| field("region_code", e))?,
            effective_year: Year::parse(self.year).map_err(|e| field("year", e))?,
            assistance_ratio: Ratio::parse(&self.assistance_ratio)
                .map_err(|e| field("assistance_ratio", e))?,
            cap_fraction: Ratio::parse(&self.cap_fraction).map_err(|e| field("cap_fraction", e))?,
            basic_insurance_annual_cap: Money::parse(&self.basic_insurance_annual_cap)
                .map_err(|e| field("basic_insurance_annual_cap", e))?,
            grace: GracePeriods {
                gradual_exit_months: self
                    .gradual_exit_grace_months
                    .unwrap_or(defaults.gradual_exit_months),
                left_poverty_months: self
                    .left_poverty_grace_months
                    .unwrap_or(defaults.left_poverty_months),
            },
            diseases,
        };
        Policy::new(terms).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CITY_AND_COUNTY: &str = r#"
        [[policy]]
        region_code = "320600"
        year = 2025
        assistance_ratio = "0.70"
        cap_fraction = "0.50"
        basic_insurance_annual_cap = "300000.00"

        [[policy]]
        region_code = "320602"
        year = 2026
        assistance_ratio = "0.80"
        cap_fraction = "0.60"
        basic_insurance_annual_cap = "400000"
        gradual_exit_grace_months = 6

        [[policy.disease]]
        name = "malignant tumour"
        codes = ["C00-C97"]
    "#;

    #[test]
    fn reads_policies_with_defaults_and_overrides() {
        let config = Config::parse(CITY_AND_COUNTY).unwrap();
        let region = |code: &str| RegionCode::parse(code).unwrap();
        let year = |y: i32| Year::parse(y).unwrap();
        let city = config
            .policies
            .lookup(region("320611"), year(2026))
            .unwrap();
        assert_eq!(city.annual_cap().to_string(), "150000.00");
        assert_eq!(city.terms().diseases.len(), 10);
        assert_eq!(city.terms().grace, GracePeriods::default());
        let county = config
            .policies
            .lookup(region("320602"), year(2026))
            .unwrap();
        assert_eq!(county.annual_cap().to_string(), "240000.00");
        assert_eq!(county.terms().grace.gradual_exit_months, 6);
        assert_eq!(county.terms().diseases.len(), 1);
    }

    fn error_of(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn refuses_policies_below_the_city_floors_naming_the_entry() {
        let low = CITY_AND_COUNTY.replace("\"0.80\"", "\"0.65\"");
        let message = error_of(&low);
        assert!(
            message.starts_with("policy[1] (region 320602, year 2026): assistance_ratio 0.65"),
            "{message}"
        );
        let small_cap = CITY_AND_COUNTY.replace("\"0.60\"", "\"0.45\"");
        assert!(error_of(&small_cap).contains("policy[1]"));
        assert!(error_of(&small_cap).contains("cap_fraction 0.45"));
    }

    #[test]
    fn refuses_malformed_files() {
        assert!(error_of("").contains("no [[policy]]"));
        assert!(error_of("[[policy]]\nregion_code = 1").contains("invalid policy file"));
        let float = CITY_AND_COUNTY.replace("\"0.80\"", "0.80");
        assert!(
            error_of(&float).contains("invalid policy file"),
            "money and shares are strings"
        );
        let unknown = CITY_AND_COUNTY.replace("year = 2025", "year = 2025\nratio = \"0.9\"");
        assert!(error_of(&unknown).contains("unknown field"));
        let twice = CITY_AND_COUNTY
            .replace("\"320602\"", "\"320600\"")
            .replace("2026", "2025");
        assert!(error_of(&twice).contains("two policies for region 320600"));
        let bad_code = CITY_AND_COUNTY.replace("C00-C97", "C97-C00");
        assert!(error_of(&bad_code).contains("disease \"malignant tumour\""));
        let bad_region = CITY_AND_COUNTY.replace("\"320602\"", "\"3206\"");
        assert!(error_of(&bad_region).contains("region_code"));
    }
}
