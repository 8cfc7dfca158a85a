//! Local medical assistance policies and how a region and year find theirs.

use std::{collections::BTreeMap, fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CodePattern, DiagnosisCode, EnrollmentKind, Money, ParseError, RegionCode, Year};

/// The city's floor for the share of in-scope out-of-pocket cost assistance
/// pays: a county may pay more, never less.
pub const ASSISTANCE_RATIO_FLOOR: Decimal = Decimal::from_parts(70, 0, 0, false, 2);
/// The city's floor for the annual cap, as a share of the basic insurance cap.
pub const CAP_FRACTION_FLOOR: Decimal = Decimal::from_parts(50, 0, 0, false, 2);
/// A cap fraction above this is surely a typing mistake.
const CAP_FRACTION_MAX: Decimal = Decimal::from_parts(10, 0, 0, false, 0);
/// Longest grace period a policy may set, in months.
pub const GRACE_MONTHS_MAX: u32 = 120;
/// Most diseases one catalogue may list.
pub const DISEASES_MAX: usize = 256;
/// Most code patterns one disease may list.
pub const DISEASE_CODES_MAX: usize = 64;
/// Most ratio bands one class may list (real systems keep five).
pub const BANDS_MAX: usize = 8;

/// A share such as 0.70: a decimal from 0 to 10 with at most four decimals.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Ratio(Decimal);

impl Ratio {
    /// Parses a plain decimal such as "0.7" or "0.75" (no sign, no exponent).
    pub fn parse(text: &str) -> Result<Ratio, ParseError> {
        let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty()
            || integer.len() > 2
            || !digits(integer)
            || !digits(fraction)
            || fraction.len() > 4
            || text.ends_with('.')
        {
            return Err(ParseError::new(format!(
                "{text:?} must be a decimal share such as \"0.70\" (at most four decimals)"
            )));
        }
        Decimal::from_str(text)
            .map(|d| Ratio(d.normalize()))
            .map_err(|_| ParseError::new(format!("{text:?} is not a decimal")))
    }

    /// The share as an exact decimal.
    pub fn get(self) -> Decimal {
        self.0
    }
}

/// Stored as its text ("0.70"), read back through [`Ratio::parse`].
impl Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ratio::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Ratio {
    /// The share as a percentage for people: "70%", "72.5%".
    pub fn percent(self) -> String {
        let percent = (self.0 * Decimal::ONE_HUNDRED).normalize();
        format!("{percent}%")
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0;
        if shown.scale() < 2 {
            shown.rescale(2);
        }
        write!(f, "{shown}")
    }
}

/// How long an enrollment keeps counting after it ends, by how it ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GracePeriods {
    /// 缓退: months a dibao enrollment lasts after a gradual exit.
    pub gradual_exit_months: u32,
    /// 脱贫: months a registered poor enrollment lasts after leaving poverty.
    pub left_poverty_months: u32,
}

impl Default for GracePeriods {
    /// The seed policy: 3 months after a gradual exit, 2 years after leaving poverty.
    fn default() -> Self {
        GracePeriods {
            gradual_exit_months: 3,
            left_poverty_months: 24,
        }
    }
}

/// One major disease of the catalogue and the ICD-10 codes that mean it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Disease {
    /// A name for people, such as "malignant tumour".
    pub name: String,
    /// The codes, as prefixes or ranges.
    pub codes: Vec<CodePattern>,
}

/// Names one policy and its exact contents, such as `320600-2025-1a2b3c4d`:
/// region, first year, and a digest of the terms, so a settlement can be
/// traced to the terms it was paid under even if a file is later edited.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct PolicyId(String);

impl PolicyId {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a policy file says for one region from one year on.
#[derive(Clone, Debug)]
pub struct PolicyTerms {
    /// The county or city the policy is for.
    pub region: RegionCode,
    /// The first cap year it applies to; it applies until a later entry.
    pub effective_year: Year,
    /// Share of the in-scope out-of-pocket cost that assistance pays.
    pub assistance_ratio: Ratio,
    /// Annual cap as a share of the basic insurance annual cap.
    pub cap_fraction: Ratio,
    /// The local basic insurance annual cap.
    pub basic_insurance_annual_cap: Money,
    /// Grace periods after an enrollment ends.
    pub grace: GracePeriods,
    /// The major disease catalogue.
    pub diseases: Vec<Disease>,
    /// A settled claim of an enrolled patient is referred to temporary
    /// assistance when the patient's payments over the year's settlements
    /// reach this (三(一)3). It decides referral, not payment, so it is not
    /// part of the policy ID.
    pub referral_threshold: Money,
    /// The assisted classes of the 2021 framework, each with its own
    /// deductible, ratio bands and cap. Empty: the seed's rule (the four
    /// populations of today, a qualifying condition required, no
    /// deductible, `assistance_ratio` throughout), which is what a file with
    /// only today's keys means.
    pub classes: Vec<ClassTerms>,
    /// A sub-cap of the annual cap for chronic and special disease
    /// outpatient care (门诊慢特病); `None`: outpatient care may use the
    /// whole cap.
    pub outpatient_cap: Option<Money>,
    /// Tilted assistance (倾斜救助) beyond the cap; `None`: off.
    pub tilt: Option<Tilt>,
}

/// One band of a class's ratio table: the part of the year's cumulative
/// assisted base (in-scope out-of-pocket cost past the deductible) up to
/// `up_to` is paid at `ratio`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Band {
    /// Where the band ends on the year's cumulative base; `None`: it does
    /// not end (only the last band). Beyond a last band that ends, nothing
    /// is paid.
    pub up_to: Option<Money>,
    /// The share of the base in the band that assistance pays.
    pub ratio: Ratio,
}

/// What one assisted class gets under a policy.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClassTerms {
    /// The class: an enrollment kind of the roster.
    pub kind: EnrollmentKind,
    /// True when the class qualifies only with one of the seed's conditions
    /// (major disease, paralysis, 80+, minor, psychiatric grade 1-2); false
    /// when enrollment alone qualifies.
    pub condition_required: bool,
    /// The annual deductible (起付标准), consumed by the year's in-scope
    /// out-of-pocket cost before assistance pays.
    pub deductible: Money,
    /// The ratio bands, by ascending `up_to`; one unbounded band is a flat ratio.
    pub bands: Vec<Band>,
    /// The class's own annual cap, instead of the policy's.
    pub annual_cap: Option<Money>,
}

/// Tilted assistance (倾斜救助): for a patient whose annual cap is used up,
/// the year's remaining in-scope out-of-pocket cost beyond `threshold` is
/// paid at `ratio`, up to `cap` a year of its own (0 = off).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tilt {
    /// The year's remaining in-scope out-of-pocket cost from which it pays.
    pub threshold: Money,
    /// The share paid beyond the threshold.
    pub ratio: Ratio,
    /// The most tilted assistance a patient gets in a year.
    pub cap: Money,
}

/// The floors a policy is checked against: for Nantong the seed's (三(一)2:
/// at least 70% of in-scope out-of-pocket cost, a cap of at least half the
/// basic insurance cap, so no deductible), which also bind any city that
/// states none; another city may state its own. They bind the seed's four
/// populations; classes the seed does not know are the city's to set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Floors {
    /// Lowest ratio (the assistance ratio, and every band of a seed class).
    pub ratio_min: Ratio,
    /// Lowest annual cap, as a share of the basic insurance cap.
    pub cap_fraction_min: Ratio,
    /// Highest deductible of a seed class.
    pub deductible_max: Money,
}

impl Floors {
    /// The seed's floors: 0.70, 0.50, no deductible.
    pub const SEED: Floors = Floors {
        ratio_min: Ratio(ASSISTANCE_RATIO_FLOOR),
        cap_fraction_min: Ratio(CAP_FRACTION_FLOOR),
        deductible_max: Money::ZERO,
    };

    /// Checks floors a book states for a city: never below the seed's in
    /// Nantong (3206xx), where the seed's policy applies.
    pub fn stated(city: RegionCode, floors: Floors) -> Result<Floors, PolicyError> {
        let seed = Floors::SEED;
        let nantong = city.as_str().starts_with("3206");
        if nantong
            && (floors.ratio_min < seed.ratio_min
                || floors.cap_fraction_min < seed.cap_fraction_min
                || floors.deductible_max > seed.deductible_max)
        {
            return Err(PolicyError(format!(
                "floors for {city}: Nantong (3206xx) is bound by the seed's floors \
                 (ratio_min 0.70, cap_fraction_min 0.50, deductible_max 0.00); \
                 it may state higher ones, never lower"
            )));
        }
        if floors.ratio_min.get() > Decimal::ONE {
            return Err(PolicyError(format!(
                "floors for {city}: ratio_min {} must be at most 1",
                floors.ratio_min
            )));
        }
        Ok(floors)
    }
}

/// The referral threshold of the built-in policy, and of any policy that
/// does not set one: 10,000.00 yuan.
pub const REFERRAL_THRESHOLD_DEFAULT: Money = Money::TEN_THOUSAND;

/// A checked policy: terms at or above the city's floors, and the annual cap
/// they give.
#[derive(Clone, Debug)]
pub struct Policy {
    id: PolicyId,
    terms: PolicyTerms,
    annual_cap: Money,
    /// The classes as they apply: the terms' own, or the seed's rule.
    classes: Vec<ClassTerms>,
}

/// A policy whose terms break a rule of the city or of sense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

impl Policy {
    /// Checks the terms against the seed's floors and bounds, and computes
    /// the annual cap (rounded up to the fen).
    pub fn new(terms: PolicyTerms) -> Result<Policy, PolicyError> {
        Policy::with_floors(terms, Floors::SEED)
    }

    /// Checks the terms against `floors` and bounds, and computes the
    /// annual cap (rounded up to the fen).
    pub fn with_floors(terms: PolicyTerms, floors: Floors) -> Result<Policy, PolicyError> {
        let ratio = terms.assistance_ratio.get();
        let ratio_min = floors.ratio_min.get();
        if ratio < ratio_min || ratio > Decimal::ONE {
            return Err(PolicyError(format!(
                "assistance_ratio {} must be at least the city floor {} and at most 1",
                terms.assistance_ratio, floors.ratio_min
            )));
        }
        let fraction = terms.cap_fraction.get();
        let fraction_min = floors.cap_fraction_min.get();
        if fraction < fraction_min || fraction > CAP_FRACTION_MAX {
            return Err(PolicyError(format!(
                "cap_fraction {} must be at least the city floor {} and at most {CAP_FRACTION_MAX}",
                terms.cap_fraction, floors.cap_fraction_min
            )));
        }
        if terms.basic_insurance_annual_cap == Money::ZERO {
            return Err(PolicyError(
                "basic_insurance_annual_cap must be more than 0".into(),
            ));
        }
        if terms.referral_threshold == Money::ZERO {
            return Err(PolicyError("referral_threshold must be more than 0".into()));
        }
        let grace = terms.grace;
        if grace.gradual_exit_months.max(grace.left_poverty_months) > GRACE_MONTHS_MAX {
            return Err(PolicyError(format!(
                "grace periods may not exceed {GRACE_MONTHS_MAX} months"
            )));
        }
        check_diseases(&terms.diseases)?;
        let annual_cap = terms
            .basic_insurance_annual_cap
            .as_decimal()
            .checked_mul(fraction)
            .and_then(Money::round_up)
            .ok_or_else(|| PolicyError("the annual cap is out of range".into()))?;
        let cap_floor = terms
            .basic_insurance_annual_cap
            .as_decimal()
            .checked_mul(fraction_min)
            .and_then(Money::round_up)
            .ok_or_else(|| PolicyError("the annual cap is out of range".into()))?;
        let classes = match terms.classes.is_empty() {
            true => seed_classes(terms.assistance_ratio),
            false => terms.classes.clone(),
        };
        check_classes(&classes, &floors, cap_floor)?;
        check_outpatient_and_tilt(&terms, annual_cap)?;
        let id = policy_id(&terms);
        Ok(Policy {
            id,
            terms,
            annual_cap,
            classes,
        })
    }

    /// The classes as they apply, in the order the terms list them (the
    /// seed's four, with its rule, when the terms list none).
    pub fn classes(&self) -> &[ClassTerms] {
        &self.classes
    }

    /// The identifier recorded on every settlement made under this policy.
    pub fn id(&self) -> &PolicyId {
        &self.id
    }
    /// The terms as configured.
    pub fn terms(&self) -> &PolicyTerms {
        &self.terms
    }
    /// `cap_fraction x basic_insurance_annual_cap`, rounded up to the fen.
    pub fn annual_cap(&self) -> Money {
        self.annual_cap
    }

    /// True when any of `codes` is in the disease catalogue.
    pub fn covers_any(&self, codes: &[DiagnosisCode]) -> bool {
        self.terms
            .diseases
            .iter()
            .flat_map(|disease| &disease.codes)
            .any(|pattern| codes.iter().any(|code| pattern.matches(code)))
    }
}

/// The seed's rule as classes: its four populations, a condition required,
/// no deductible, one ratio throughout, the policy's cap.
fn seed_classes(ratio: Ratio) -> Vec<ClassTerms> {
    EnrollmentKind::ALL
        .into_iter()
        .filter(|kind| kind.in_seed())
        .map(|kind| ClassTerms {
            kind,
            condition_required: true,
            deductible: Money::ZERO,
            bands: vec![Band { up_to: None, ratio }],
            annual_cap: None,
        })
        .collect()
}

/// Every class at most once, bands sorted and bounded, ratios within 0..=1,
/// and the floors for the seed's populations. Each error names the key.
fn check_classes(
    classes: &[ClassTerms],
    floors: &Floors,
    cap_floor: Money,
) -> Result<(), PolicyError> {
    for (i, class) in classes.iter().enumerate() {
        let name = format!("class[{i}] ({})", class.kind.as_str());
        if classes[..i].iter().any(|c| c.kind == class.kind) {
            return Err(PolicyError(format!("{name}: kind is listed twice")));
        }
        check_bands(&name, &class.bands)?;
        if class.annual_cap == Some(Money::ZERO) {
            return Err(PolicyError(format!(
                "{name}: annual_cap must be more than 0"
            )));
        }
        if !class.kind.in_seed() {
            continue;
        }
        // The seed's populations: the floors bind them.
        if class.deductible > floors.deductible_max {
            return Err(PolicyError(format!(
                "{name}: deductible {} is above the city floor's deductible_max {} for the \
                 seed's populations",
                class.deductible, floors.deductible_max
            )));
        }
        if let Some((b, band)) = class
            .bands
            .iter()
            .enumerate()
            .find(|(_, band)| band.ratio < floors.ratio_min)
        {
            return Err(PolicyError(format!(
                "{name}: band[{b}].ratio {} is below the city floor {} for the seed's populations",
                band.ratio, floors.ratio_min
            )));
        }
        if class.bands.last().is_some_and(|band| band.up_to.is_some()) {
            return Err(PolicyError(format!(
                "{name}: the last band of a seed population must not end (omit its up_to): \
                 the floor applies to every yuan"
            )));
        }
        if let Some(cap) = class.annual_cap
            && cap < cap_floor
        {
            return Err(PolicyError(format!(
                "{name}: annual_cap {cap} is below the city floor {cap_floor}"
            )));
        }
    }
    Ok(())
}

fn check_bands(name: &str, bands: &[Band]) -> Result<(), PolicyError> {
    if bands.is_empty() || bands.len() > BANDS_MAX {
        return Err(PolicyError(format!(
            "{name}: needs a ratio or 1 to {BANDS_MAX} bands"
        )));
    }
    let mut previous = Money::ZERO;
    for (b, band) in bands.iter().enumerate() {
        if band.ratio.get() > Decimal::ONE {
            return Err(PolicyError(format!(
                "{name}: band[{b}].ratio {} must be at most 1",
                band.ratio
            )));
        }
        match band.up_to {
            None if b + 1 < bands.len() => {
                return Err(PolicyError(format!(
                    "{name}: band[{b}].up_to is missing; only the last band may omit it"
                )));
            }
            None => {}
            Some(up_to) if up_to <= previous => {
                return Err(PolicyError(format!(
                    "{name}: band[{b}].up_to {up_to} must be more than {previous} \
                     (bands ascend and do not overlap)"
                )));
            }
            Some(up_to) => previous = up_to,
        }
    }
    Ok(())
}

fn check_outpatient_and_tilt(terms: &PolicyTerms, annual_cap: Money) -> Result<(), PolicyError> {
    if let Some(cap) = terms.outpatient_cap
        && (cap == Money::ZERO || cap > annual_cap)
    {
        return Err(PolicyError(format!(
            "outpatient_chronic_cap {cap} must be more than 0 and at most the annual cap {annual_cap}"
        )));
    }
    if let Some(tilt) = &terms.tilt
        && tilt.ratio.get() > Decimal::ONE
    {
        return Err(PolicyError(format!(
            "tilt.ratio {} must be at most 1",
            tilt.ratio
        )));
    }
    Ok(())
}

fn check_diseases(diseases: &[Disease]) -> Result<(), PolicyError> {
    if diseases.len() > DISEASES_MAX {
        return Err(PolicyError(format!(
            "at most {DISEASES_MAX} diseases per catalogue"
        )));
    }
    for disease in diseases {
        if disease.name.trim().is_empty() || disease.name.chars().count() > 64 {
            return Err(PolicyError(
                "every disease needs a name of 1 to 64 characters".into(),
            ));
        }
        if disease.codes.is_empty() || disease.codes.len() > DISEASE_CODES_MAX {
            return Err(PolicyError(format!(
                "disease {:?} needs 1 to {DISEASE_CODES_MAX} codes",
                disease.name
            )));
        }
    }
    Ok(())
}

fn policy_id(terms: &PolicyTerms) -> PolicyId {
    let mut canonical = format!(
        "{}|{}|{}|{}|{}|{}|{}",
        terms.region,
        terms.effective_year,
        terms.assistance_ratio,
        terms.cap_fraction,
        terms.basic_insurance_annual_cap,
        terms.grace.gradual_exit_months,
        terms.grace.left_poverty_months,
    );
    for disease in &terms.diseases {
        canonical.push_str(&format!("|{}:", disease.name));
        for code in &disease.codes {
            canonical.push_str(&format!("{code},"));
        }
    }
    // Only terms of the 2021 framework add to the text, so a policy with
    // today's keys keeps the ID its settlements were recorded under.
    for class in &terms.classes {
        canonical.push_str(&format!(
            "|class:{}:{}:{}:{}:",
            class.kind.as_str(),
            class.condition_required,
            class.deductible,
            class.annual_cap.map(|c| c.to_string()).unwrap_or_default()
        ));
        for band in &class.bands {
            let up_to = band.up_to.map(|c| c.to_string()).unwrap_or_default();
            canonical.push_str(&format!("{up_to}@{},", band.ratio));
        }
    }
    if let Some(cap) = terms.outpatient_cap {
        canonical.push_str(&format!("|outpatient:{cap}"));
    }
    if let Some(tilt) = &terms.tilt {
        canonical.push_str(&format!(
            "|tilt:{}:{}:{}",
            tilt.threshold, tilt.ratio, tilt.cap
        ));
    }
    let digest = Sha256::digest(canonical.as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    PolicyId(format!("{}-{}-{short}", terms.region, terms.effective_year))
}

/// Every configured policy, found by region and year.
#[derive(Clone, Debug)]
pub struct PolicyBook {
    by_region: BTreeMap<RegionCode, BTreeMap<Year, Policy>>,
}

impl PolicyBook {
    /// Files the policies; two for the same region and year are refused.
    pub fn new(policies: Vec<Policy>) -> Result<PolicyBook, PolicyError> {
        let mut by_region: BTreeMap<RegionCode, BTreeMap<Year, Policy>> = BTreeMap::new();
        for policy in policies {
            let (region, year) = (policy.terms.region, policy.terms.effective_year);
            if by_region
                .entry(region)
                .or_default()
                .insert(year, policy)
                .is_some()
            {
                return Err(PolicyError(format!(
                    "two policies for region {region} from year {year}"
                )));
            }
        }
        if by_region.is_empty() {
            return Err(PolicyError("no policy is configured".into()));
        }
        Ok(PolicyBook { by_region })
    }

    /// The policy that serves without a policy file: Nantong city (320600),
    /// every year, ratio 0.70, cap fraction 0.50, basic insurance cap
    /// 300,000.00, the seed's grace periods and disease catalogue.
    pub fn builtin() -> PolicyBook {
        let terms = PolicyTerms {
            region: RegionCode::parse("320600").unwrap_or_else(|_| unreachable!()),
            effective_year: Year::parse(super::date::YEAR_MIN).unwrap_or_else(|_| unreachable!()),
            assistance_ratio: Ratio(ASSISTANCE_RATIO_FLOOR),
            cap_fraction: Ratio(CAP_FRACTION_FLOOR),
            basic_insurance_annual_cap: Money::from_fen(30_000_000).unwrap_or_default(),
            grace: GracePeriods::default(),
            diseases: builtin_catalogue(),
            referral_threshold: REFERRAL_THRESHOLD_DEFAULT,
            classes: Vec::new(),
            outpatient_cap: None,
            tilt: None,
        };
        let policy = Policy::new(terms).unwrap_or_else(|e| unreachable!("built-in policy: {e}"));
        PolicyBook::new(vec![policy]).unwrap_or_else(|e| unreachable!("built-in policy: {e}"))
    }

    /// The policy for a claim: the most specific region that has any policy
    /// (the county, else its city), and within it the latest year not after
    /// `year`. `None` when that region has no policy for such a year.
    pub fn lookup(&self, region: RegionCode, year: Year) -> Option<&Policy> {
        let by_year = self
            .by_region
            .get(&region)
            .or_else(|| self.by_region.get(&region.city()))?;
        by_year.range(..=year).next_back().map(|(_, policy)| policy)
    }

    /// Every policy, by region then year.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.by_region.values().flat_map(BTreeMap::values)
    }
}

/// The seed's catalogue (DOMAIN.md): three-character ICD-10 prefixes that
/// local bureaus refine in their own policy files.
pub fn builtin_catalogue() -> Vec<Disease> {
    let entries: [(&str, &[&str]); 10] = [
        ("malignant tumour", &["C00-C97"]),
        ("leukaemia", &["C91-C95"]),
        ("uraemia", &["N18", "N19"]),
        ("organ transplant", &["Z94", "T86"]),
        ("haemophilia", &["D66", "D67", "D68.1"]),
        ("decompensated cirrhosis", &["K70.3", "K72", "K74"]),
        ("bone tuberculosis", &["A18.0"]),
        ("lupus erythematosus", &["M32", "L93"]),
        ("AIDS", &["B20-B24"]),
        ("aplastic anaemia", &["D61"]),
    ];
    entries
        .iter()
        .map(|(name, codes)| Disease {
            name: (*name).to_owned(),
            codes: codes
                .iter()
                .filter_map(|code| CodePattern::parse(code).ok())
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(text: &str) -> Ratio {
        Ratio::parse(text).unwrap()
    }

    fn terms(region: &str, year: i32) -> PolicyTerms {
        PolicyTerms {
            region: RegionCode::parse(region).unwrap(),
            effective_year: Year::parse(year).unwrap(),
            assistance_ratio: ratio("0.70"),
            cap_fraction: ratio("0.5"),
            basic_insurance_annual_cap: Money::parse("300000").unwrap(),
            grace: GracePeriods::default(),
            diseases: builtin_catalogue(),
            referral_threshold: REFERRAL_THRESHOLD_DEFAULT,
            classes: Vec::new(),
            outpatient_cap: None,
            tilt: None,
        }
    }

    fn year(y: i32) -> Year {
        Year::parse(y).unwrap()
    }

    fn region(code: &str) -> RegionCode {
        RegionCode::parse(code).unwrap()
    }

    #[test]
    fn the_builtin_policy_is_the_seed() {
        let book = PolicyBook::builtin();
        let policy = book.lookup(region("320602"), year(2026)).unwrap();
        assert_eq!(policy.annual_cap().to_string(), "150000.00");
        assert_eq!(policy.terms().assistance_ratio.to_string(), "0.70");
        assert!(policy.id().as_str().starts_with("320600-1900-"));
        assert_eq!(policy.terms().diseases.len(), 10);
        assert!(book.lookup(region("320500"), year(2026)).is_none());
        assert!(book.lookup(region("110105"), year(2026)).is_none());
    }

    #[test]
    fn floors_are_enforced_and_more_is_allowed() {
        let below = PolicyTerms {
            assistance_ratio: ratio("0.69"),
            ..terms("320602", 2025)
        };
        assert!(
            Policy::new(below)
                .unwrap_err()
                .to_string()
                .contains("assistance_ratio 0.69")
        );
        let small_cap = PolicyTerms {
            cap_fraction: ratio("0.4999"),
            ..terms("320602", 2025)
        };
        assert!(
            Policy::new(small_cap)
                .unwrap_err()
                .to_string()
                .contains("cap_fraction")
        );
        let generous = PolicyTerms {
            assistance_ratio: ratio("0.85"),
            cap_fraction: ratio("0.6"),
            ..terms("320602", 2025)
        };
        assert_eq!(
            Policy::new(generous).unwrap().annual_cap().to_string(),
            "180000.00"
        );
        let over_one = PolicyTerms {
            assistance_ratio: ratio("1.01"),
            ..terms("320602", 2025)
        };
        assert!(Policy::new(over_one).is_err());
        let no_cap = PolicyTerms {
            basic_insurance_annual_cap: Money::ZERO,
            ..terms("320602", 2025)
        };
        assert!(Policy::new(no_cap).is_err());
        let no_threshold = PolicyTerms {
            referral_threshold: Money::ZERO,
            ..terms("320602", 2025)
        };
        assert!(Policy::new(no_threshold).is_err());
    }

    #[test]
    fn the_annual_cap_rounds_up_to_the_fen() {
        let odd = PolicyTerms {
            cap_fraction: ratio("0.5555"),
            basic_insurance_annual_cap: Money::parse("100.01").unwrap(),
            ..terms("320602", 2025)
        };
        // 0.5555 x 100.01 = 55.555555 -> 55.56
        assert_eq!(Policy::new(odd).unwrap().annual_cap().to_string(), "55.56");
    }

    #[test]
    fn lookup_prefers_the_county_then_the_latest_year_not_after() {
        let book = PolicyBook::new(vec![
            Policy::new(terms("320600", 2020)).unwrap(),
            Policy::new(terms("320600", 2025)).unwrap(),
            Policy::new(terms("320602", 2024)).unwrap(),
        ])
        .unwrap();
        let found = |code: &str, y: i32| {
            book.lookup(region(code), year(y))
                .map(|p| p.id().as_str()[..11].to_owned())
        };
        assert_eq!(found("320611", 2019), None);
        assert_eq!(found("320611", 2020).as_deref(), Some("320600-2020"));
        assert_eq!(found("320611", 2024).as_deref(), Some("320600-2020"));
        assert_eq!(found("320611", 2030).as_deref(), Some("320600-2025"));
        assert_eq!(found("320602", 2026).as_deref(), Some("320602-2024"));
        // The county has policies, so it never falls back to the city's.
        assert_eq!(found("320602", 2023), None);
        assert_eq!(found("320600", 2025).as_deref(), Some("320600-2025"));
    }

    #[test]
    fn duplicate_and_empty_books_are_refused() {
        let twice = vec![
            Policy::new(terms("320600", 2020)).unwrap(),
            Policy::new(terms("320600", 2020)).unwrap(),
        ];
        assert!(PolicyBook::new(twice).is_err());
        assert!(PolicyBook::new(Vec::new()).is_err());
    }

    #[test]
    fn policy_ids_change_with_the_terms() {
        let a = Policy::new(terms("320600", 2020)).unwrap();
        let b = Policy::new(PolicyTerms {
            cap_fraction: ratio("0.55"),
            ..terms("320600", 2020)
        })
        .unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), Policy::new(terms("320600", 2020)).unwrap().id());
    }

    #[test]
    fn ratios_are_plain_decimals() {
        assert_eq!(ratio("0.7").to_string(), "0.70");
        assert_eq!(ratio("0.7500").to_string(), "0.75");
        assert_eq!(ratio("1").to_string(), "1.00");
        for bad in ["", "-0.7", "0.7.0", "7e-1", ".7", "0.", "0.70001", "100"] {
            assert!(Ratio::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
