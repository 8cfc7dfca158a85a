//! The settlement rules, as pure functions: the seed policy (三(一)2) and the
//! classes, deductibles, ratio bands and tilted assistance of the 2021
//! framework (国办发〔2021〕42号) that a policy file may add.
//!
//! Everything here is a function of the claim, the roster record, the policy
//! and the year's usage so far: no clock, no storage, no network. A claim is
//! settled in two steps so the part that depends on other claims stays small:
//! [`assess`] decides eligibility and the classes the patient qualifies in
//! from the claim alone, and [`apply_year`] works the amount out on the
//! year's running total (deductible consumed, band position, cap used, tilted
//! assistance), which the ledger does in commit order (see [`year`]).
//!
//! Rounding, stated once: a claim's assistance is the exact sum over its
//! bands of `base x ratio`, rounded up to the fen once ("not lower than");
//! tilted assistance is `base x ratio` rounded up to the fen once. Nothing
//! else is rounded: deductibles, bases and caps are whole fen already.

pub mod year;

pub use year::apply_year;

use chrono::NaiveDate;

use crate::domain::{
    Category, Claim, ClassTerms, Date, Enrollment, EnrollmentKind, ExitKind, GracePeriods,
    IneligibleReason, Money, Outcome, Person, Policy, PolicyBook, PolicyId, ReferralReason,
    RegionCode, Tilt, Usage, Year,
};

/// Age (full years) from which a patient qualifies by age, on the discharge date.
pub const AGED_FROM_YEARS: i32 = 80;
/// Age (full years) below which a patient qualifies as a minor, on the admission date.
pub const ADULT_FROM_YEARS: i32 = 18;

/// The cap a claim is charged against: known only for a patient on the roster.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CapTerms {
    /// The roster's region.
    pub region: RegionCode,
    /// The policy that applies to that region and the claim's year.
    pub policy_id: PolicyId,
    /// That policy's annual cap.
    pub annual_cap: Money,
    /// That policy's referral threshold for the patient's yearly payments.
    pub referral_threshold: Money,
    /// That policy's sub-cap for chronic outpatient care.
    pub outpatient_cap: Option<Money>,
    /// That policy's tilted assistance.
    pub tilt: Option<Tilt>,
}

/// What a claim is worth before the annual cap: decided from the claim, the
/// roster and the policy alone.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Assessment {
    /// Enrolled and in a qualifying category.
    pub eligible: bool,
    /// The qualifying categories found, in wire order.
    pub categories: Vec<Category>,
    /// Why nothing is paid, when not eligible.
    pub ineligible_reason: Option<IneligibleReason>,
    /// In-scope cost minus what the two insurances paid.
    pub in_scope_out_of_pocket: Money,
    /// The classes of the policy the patient qualifies in for this claim,
    /// in the policy's order; empty when not eligible. The most favourable
    /// is chosen on the year's running total, in commit order.
    pub classes: Vec<ClassTerms>,
    /// The cap to charge; `None` when the patient is not on the roster.
    pub cap: Option<CapTerms>,
}

/// No policy of the book covers a roster patient's region in the claim's year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoPolicy {
    /// The roster region.
    pub region: RegionCode,
    /// The cap year.
    pub year: Year,
}

/// Assesses a claim under a policy book: the roster record (`None` for a
/// patient not on the roster) and the claim's year pick the policy.
pub fn assess_under(
    book: &PolicyBook,
    claim: &Claim,
    person: Option<&Person>,
) -> Result<Assessment, NoPolicy> {
    let roster = match person {
        Some(person) => {
            let (region, year) = (person.region(), claim.year());
            let policy = book.lookup(region, year).ok_or(NoPolicy { region, year })?;
            Some((person, policy))
        }
        None => None,
    };
    Ok(assess(claim, roster))
}

/// Assesses a claim. `roster` is the patient's record and the policy of its
/// region and the claim's year; `None` for a patient not on the roster, who
/// is settled as not enrolled with no cap.
pub fn assess(claim: &Claim, roster: Option<(&Person, &Policy)>) -> Assessment {
    let in_scope_out_of_pocket = claim.in_scope_out_of_pocket();
    let Some((person, policy)) = roster else {
        return Assessment {
            eligible: false,
            categories: Vec::new(),
            ineligible_reason: Some(IneligibleReason::NotEnrolled),
            in_scope_out_of_pocket,
            classes: Vec::new(),
            cap: None,
        };
    };
    let grace = policy.terms().grace;
    let (admission, discharge) = (claim.admission_date(), claim.discharge_date());
    let enrolled: Vec<&ClassTerms> = policy
        .classes()
        .iter()
        .filter(|class| enrolled_as(person, class.kind, grace, admission, discharge))
        .collect();
    let categories = categories(claim, person, policy);
    let classes: Vec<ClassTerms> = enrolled
        .iter()
        .filter(|class| !class.condition_required || !categories.is_empty())
        .map(|class| (*class).clone())
        .collect();
    let ineligible_reason = if enrolled.is_empty() {
        Some(IneligibleReason::NotEnrolled)
    } else if classes.is_empty() {
        Some(IneligibleReason::NoQualifyingCategory)
    } else {
        None
    };
    Assessment {
        eligible: ineligible_reason.is_none(),
        categories,
        ineligible_reason,
        in_scope_out_of_pocket,
        classes,
        cap: Some(CapTerms {
            region: person.region(),
            policy_id: policy.id().clone(),
            annual_cap: policy.annual_cap(),
            referral_threshold: policy.terms().referral_threshold,
            outpatient_cap: policy.terms().outpatient_cap,
            tilt: policy.terms().tilt,
        }),
    }
}

/// Whether a settled claim is referred to temporary assistance, and why
/// (三(一)2 last paragraph, 三(一)3): the patient was enrolled on some day of
/// the stay, and either the cap reduced the payment (`CapReached`, which wins
/// when both hold) or `patient_pays_total` (what the patient paid over the
/// year's settlements that are not reversed, this one included) reaches the
/// policy's threshold (`HighOutOfPocket`).
pub fn referral(
    terms: Option<&CapTerms>,
    outcome: &Outcome,
    patient_pays_total: Money,
) -> Option<ReferralReason> {
    let terms = terms?;
    if outcome.ineligible_reason == Some(IneligibleReason::NotEnrolled) {
        return None;
    }
    if outcome.capped {
        Some(ReferralReason::CapReached)
    } else if patient_pays_total >= terms.referral_threshold {
        Some(ReferralReason::HighOutOfPocket)
    } else {
        None
    }
}

/// `ratio x out_of_pocket`, rounded up to the fen. The ratio is at most 1 and
/// the amount has two decimals, so the result never exceeds the amount.
pub fn assistance_floor(policy: &Policy, out_of_pocket: Money) -> Money {
    out_of_pocket
        .as_decimal()
        .checked_mul(policy.terms().assistance_ratio.get())
        .and_then(Money::round_up)
        .map_or(out_of_pocket, |floor| floor.min(out_of_pocket))
}

/// Charges an assessment against the year's cap, given only what earlier
/// settlements of the year charged to it (no deductible consumed, the bands
/// at their start): the seed's rule as it was first written, kept for the
/// callers that know nothing else. See [`apply_year`].
pub fn apply_cap(claim: &Claim, assessment: &Assessment, used_before: Money) -> Outcome {
    let usage = Usage {
        used: used_before,
        ..Usage::default()
    };
    apply_year(claim, assessment, &usage)
}

/// True when an enrollment of the person covers at least one day from
/// `admission` to `discharge` inclusive, counting its grace period.
pub fn enrolled_during(
    person: &Person,
    grace: GracePeriods,
    admission: Date,
    discharge: Date,
) -> bool {
    EnrollmentKind::ALL
        .into_iter()
        .any(|kind| enrolled_as(person, kind, grace, admission, discharge))
}

/// True when an enrollment of the person in `kind` covers at least one day
/// from `admission` to `discharge` inclusive, counting its grace period.
pub fn enrolled_as(
    person: &Person,
    kind: EnrollmentKind,
    grace: GracePeriods,
    admission: Date,
    discharge: Date,
) -> bool {
    person
        .enrollments()
        .iter()
        .filter(|e| e.kind() == kind)
        .any(|enrollment| {
            let starts_in_time = enrollment.valid_from() <= discharge;
            let lasts_long_enough =
                covered_until(enrollment, grace).is_none_or(|last| last >= admission.naive());
            starts_in_time && lasts_long_enough
        })
}

/// The last day an enrollment covers, its grace period counted (a dibao
/// member's gradual exit, a registered poor person's leaving poverty);
/// `None` while it is open.
pub fn covered_until(enrollment: &Enrollment, grace: GracePeriods) -> Option<NaiveDate> {
    let valid_to = enrollment.valid_to()?;
    let months = match (enrollment.kind(), enrollment.exit()) {
        (EnrollmentKind::Dibao, ExitKind::GradualExit) => grace.gradual_exit_months,
        (EnrollmentKind::RegisteredPoor, ExitKind::LeftPoverty) => grace.left_poverty_months,
        _ => 0,
    };
    Some(valid_to.plus_months(months))
}

/// The qualifying categories that apply to this claim and person, in wire order.
pub fn categories(claim: &Claim, person: &Person, policy: &Policy) -> Vec<Category> {
    let birth = claim.patient_id().birth_date();
    let grade = person.psychiatric_grade().get();
    [
        (
            Category::MajorDisease,
            policy.covers_any(claim.diagnosis_codes()),
        ),
        (Category::Paralysis, person.paralysis_certified()),
        (
            Category::Aged80Plus,
            birth.full_years_until(claim.discharge_date()) >= AGED_FROM_YEARS,
        ),
        (
            Category::Minor,
            birth.full_years_until(claim.admission_date()) < ADULT_FROM_YEARS,
        ),
        (Category::PsychiatricDisability, grade == 1 || grade == 2),
    ]
    .into_iter()
    .filter_map(|(category, applies)| applies.then_some(category))
    .collect()
}

#[cfg(test)]
mod tests;
