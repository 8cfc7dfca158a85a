//! Conversions between wire messages and domain values. Incoming messages
//! become domain values through their `parse` functions, which name every bad
//! field; outgoing values are written with money as two-decimal strings.

use super::pb;
use crate::{
    app::{AnnualUsage, SettlementRef},
    domain::{
        ApplicationState, Breakdown, CapState, Category, Channel, Claim, ClaimInput, ClaimKey,
        ClaimKind, ClaimKindSent, EnrollmentInput, EnrollmentKind, ExitKind, IneligibleReason,
        Outcome, ParseError, Person, PersonInput, Policy, Quote, ReferralReason, RegionCode,
        ResidentId, Settlement, SettlementId, SettlementStatus, Timestamp, Violations, Year,
    },
};

/// Checks a settle request; every bad field is named.
pub fn claim(request: &pb::SettleRequest) -> Result<Claim, Violations> {
    Claim::parse(&ClaimInput {
        hospital_id: &request.hospital_id,
        claim_id: &request.claim_id,
        patient_id: &request.patient_id,
        admission_date: &request.admission_date,
        discharge_date: &request.discharge_date,
        diagnosis_codes: &request.diagnosis_codes,
        total_cost: &request.total_cost,
        in_scope_cost: &request.in_scope_cost,
        basic_insurance_paid: &request.basic_insurance_paid,
        critical_illness_paid: &request.critical_illness_paid,
        claim_kind: match pb::ClaimKind::try_from(request.claim_kind) {
            Ok(pb::ClaimKind::Unspecified) => ClaimKindSent::Unstated,
            Ok(pb::ClaimKind::Inpatient) => ClaimKindSent::Known(ClaimKind::Inpatient),
            Ok(pb::ClaimKind::OutpatientChronic) => {
                ClaimKindSent::Known(ClaimKind::OutpatientChronic)
            }
            Err(_) => ClaimKindSent::Unknown(request.claim_kind),
        },
    })
}

/// Checks a roster record.
pub fn person(person: &pb::Person) -> Result<Person, Violations> {
    let enrollments = person
        .enrollments
        .iter()
        .map(|e| EnrollmentInput {
            kind: enrollment_kind(e.kind),
            valid_from: &e.valid_from,
            valid_to: &e.valid_to,
            exit: exit_kind(e.exit),
        })
        .collect();
    Person::parse(&PersonInput {
        patient_id: &person.patient_id,
        name: &person.name,
        region_code: &person.region_code,
        enrollments,
        psychiatric_disability_grade: person.psychiatric_disability_grade,
        paralysis_certified: person.paralysis_certified,
    })
}

/// Reads a settlement reference: a number alone, or hospital and claim together.
pub fn settlement_ref(request: &pb::GetSettlementRequest) -> Result<SettlementRef, Violations> {
    let by_id = !request.settlement_id.is_empty();
    let by_claim = !request.hospital_id.is_empty() || !request.claim_id.is_empty();
    let mut violations = Violations::new();
    match (by_id, by_claim) {
        (true, true) => {
            violations.add(
                "settlement_id",
                "give settlement_id, or hospital_id and claim_id, not both",
            );
            Err(violations)
        }
        (true, false) => {
            let id = violations.check("settlement_id", SettlementId::parse(&request.settlement_id));
            violations.finish(|| id.map(SettlementRef::Id))
        }
        _ => ClaimKey::parse(&request.hospital_id, &request.claim_id).map(SettlementRef::Claim),
    }
}

/// Reads a patient and year pair of fields.
pub fn patient_year(patient_id: &str, year: i32) -> Result<(ResidentId, Year), Violations> {
    let mut violations = Violations::new();
    let patient = violations.check("patient_id", ResidentId::parse(patient_id));
    let year = violations.check("year", Year::parse(year));
    violations.finish(|| Some((patient?, year?)))
}

/// Reads a region and year pair of fields.
/// A page request's size (0: the default) and where it starts (the
/// `next_page_token` of the previous page; empty: the first page), each
/// violation noted in `violations`.
pub fn page(
    violations: &mut Violations,
    page_size: i32,
    page_token: &str,
) -> (Option<usize>, Option<Option<SettlementId>>) {
    let size = usize::try_from(page_size)
        .map_err(|_| violations.add("page_size", "may not be negative"))
        .ok();
    let after = match page_token {
        "" => Some(None),
        token => violations
            .check(
                "page_token",
                SettlementId::parse(token)
                    .map_err(|_| ParseError::new("is not a token this service gave out")),
            )
            .map(Some),
    };
    (size, after)
}

/// The `next_page_token` of a page: where the next one starts, or empty on
/// the last page.
pub fn next_page_token(next_after: Option<SettlementId>) -> String {
    next_after.map(|id| id.to_string()).unwrap_or_default()
}

pub fn region_year(region_code: &str, year: i32) -> Result<(RegionCode, Year), Violations> {
    let mut violations = Violations::new();
    let region = violations.check("region_code", RegionCode::parse(region_code));
    let year = violations.check("year", Year::parse(year));
    violations.finish(|| Some((region?, year?)))
}

fn enrollment_kind(raw: i32) -> Option<EnrollmentKind> {
    match pb::EnrollmentKind::try_from(raw).ok()? {
        pb::EnrollmentKind::Unspecified => None,
        pb::EnrollmentKind::Dibao => Some(EnrollmentKind::Dibao),
        pb::EnrollmentKind::Tekun => Some(EnrollmentKind::Tekun),
        pb::EnrollmentKind::LowIncomeFamily => Some(EnrollmentKind::LowIncomeFamily),
        pb::EnrollmentKind::RegisteredPoor => Some(EnrollmentKind::RegisteredPoor),
        pb::EnrollmentKind::MonitoredForReturn => Some(EnrollmentKind::MonitoredForReturn),
        pb::EnrollmentKind::LowIncomeMargin => Some(EnrollmentKind::LowIncomeMargin),
        pb::EnrollmentKind::ImpoverishedByIllness => Some(EnrollmentKind::ImpoverishedByIllness),
    }
}

fn enrollment_kind_message(kind: EnrollmentKind) -> pb::EnrollmentKind {
    match kind {
        EnrollmentKind::Dibao => pb::EnrollmentKind::Dibao,
        EnrollmentKind::Tekun => pb::EnrollmentKind::Tekun,
        EnrollmentKind::LowIncomeFamily => pb::EnrollmentKind::LowIncomeFamily,
        EnrollmentKind::RegisteredPoor => pb::EnrollmentKind::RegisteredPoor,
        EnrollmentKind::MonitoredForReturn => pb::EnrollmentKind::MonitoredForReturn,
        EnrollmentKind::LowIncomeMargin => pb::EnrollmentKind::LowIncomeMargin,
        EnrollmentKind::ImpoverishedByIllness => pb::EnrollmentKind::ImpoverishedByIllness,
    }
}

fn claim_kind_message(kind: ClaimKind) -> pb::ClaimKind {
    match kind {
        ClaimKind::Inpatient => pb::ClaimKind::Inpatient,
        ClaimKind::OutpatientChronic => pb::ClaimKind::OutpatientChronic,
    }
}

/// A settlement's breakdown on the wire.
pub fn breakdown(breakdown: &Breakdown) -> pb::SettlementBreakdown {
    let c = &breakdown.consumed;
    pb::SettlementBreakdown {
        assisted_class: breakdown
            .class
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default(),
        assisted_class_name: breakdown
            .class
            .map(|k| k.chinese().to_owned())
            .unwrap_or_default(),
        deductible: breakdown.deductible.to_string(),
        deductible_before: breakdown.deductible_before.to_string(),
        deductible_consumed: c.deductible.to_string(),
        base_before: breakdown.base_before.to_string(),
        base: c.base.to_string(),
        bands: breakdown
            .bands
            .iter()
            .map(|line| pb::BandLine {
                from: line.from.to_string(),
                up_to: line.up_to.map(|m| m.to_string()).unwrap_or_default(),
                ratio: line.ratio.to_string(),
                base: line.base.to_string(),
                amount: line.amount.to_string(),
            })
            .collect(),
        computed: breakdown.computed.to_string(),
        cap_charged: c.cap_charged.to_string(),
        tilt_base: breakdown.tilt_base.to_string(),
        tilted_amount: c.tilt.to_string(),
        explanation: breakdown.explanation.clone(),
    }
}

fn exit_kind(raw: i32) -> Option<ExitKind> {
    Some(match pb::ExitKind::try_from(raw).ok()? {
        pb::ExitKind::Unspecified => ExitKind::Plain,
        pb::ExitKind::GradualExit => ExitKind::GradualExit,
        pb::ExitKind::LeftPoverty => ExitKind::LeftPoverty,
    })
}

/// A moment on the wire.
pub fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    let micros = at.unix_micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// A moment from the wire, to the microsecond; out-of-range nanoseconds
/// are clamped (the value is a search bound, never stored).
pub fn from_timestamp(at: &prost_types::Timestamp) -> Timestamp {
    let micros = at
        .seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(at.nanos.clamp(0, 999_999_999) / 1_000));
    Timestamp::from_unix_micros(micros)
}

fn category(category: Category) -> pb::Category {
    match category {
        Category::MajorDisease => pb::Category::MajorDisease,
        Category::Paralysis => pb::Category::Paralysis,
        Category::Aged80Plus => pb::Category::Aged80Plus,
        Category::Minor => pb::Category::Minor,
        Category::PsychiatricDisability => pb::Category::PsychiatricDisability,
    }
}

/// Writes the claim and outcome fields shared by quotes and settlements.
fn settlement_of(claim: &Claim, outcome: &Outcome, status: pb::SettlementStatus) -> pb::Settlement {
    let key = claim.key();
    let cap = outcome.cap.as_ref();
    let cap_field = |field: fn(&CapState) -> String| cap.map(field).unwrap_or_default();
    pb::Settlement {
        hospital_id: key.hospital_id.as_str().to_owned(),
        claim_id: key.claim_id.as_str().to_owned(),
        patient_id: claim.patient_id().as_str().to_owned(),
        year: claim.year().get(),
        status: status.into(),
        eligible: outcome.eligible,
        categories: outcome
            .categories
            .iter()
            .map(|c| category(*c).into())
            .collect(),
        ineligible_reason: match outcome.ineligible_reason {
            None => pb::IneligibleReason::Unspecified,
            Some(IneligibleReason::NotEnrolled) => pb::IneligibleReason::NotEnrolled,
            Some(IneligibleReason::NoQualifyingCategory) => {
                pb::IneligibleReason::NoQualifyingCategory
            }
        }
        .into(),
        in_scope_out_of_pocket: outcome.in_scope_out_of_pocket.to_string(),
        assistance_amount: outcome.assistance.to_string(),
        patient_pays: outcome.patient_pays.to_string(),
        capped: outcome.capped,
        annual_cap: cap_field(|c| c.annual_cap.to_string()),
        used_before: cap_field(|c| c.used_before.to_string()),
        remaining_after: cap_field(|c| c.remaining_after.to_string()),
        policy_id: cap_field(|c| c.policy_id.to_string()),
        region_code: cap_field(|c| c.region.to_string()),
        admission_date: claim.admission_date().to_string(),
        discharge_date: claim.discharge_date().to_string(),
        diagnosis_codes: claim
            .diagnosis_codes()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        total_cost: claim.total_cost().to_string(),
        in_scope_cost: claim.in_scope_cost().to_string(),
        basic_insurance_paid: claim.basic_insurance_paid().to_string(),
        critical_illness_paid: claim.critical_illness_paid().to_string(),
        claim_kind: claim_kind_message(claim.kind()).into(),
        breakdown: outcome.breakdown.as_ref().map(breakdown),
        ..Default::default()
    }
}

/// The referral fields of a settlement or quote.
fn with_referral(message: pb::Settlement, referral: Option<ReferralReason>) -> pb::Settlement {
    pb::Settlement {
        referred: referral.is_some(),
        referral_reason: match referral {
            None => pb::ReferralReason::Unspecified,
            Some(ReferralReason::CapReached) => pb::ReferralReason::CapReached,
            Some(ReferralReason::HighOutOfPocket) => pb::ReferralReason::HighOutOfPocket,
        }
        .into(),
        ..message
    }
}

/// A quote on the wire: status QUOTE, no number, no time.
pub fn quote(quote: &Quote) -> pb::Settlement {
    with_referral(
        settlement_of(&quote.claim, &quote.outcome, pb::SettlementStatus::Quote),
        quote.referral,
    )
}

/// A recorded settlement on the wire.
pub fn settlement(settlement: &Settlement) -> pb::Settlement {
    let status = match settlement.status() {
        SettlementStatus::Settled => pb::SettlementStatus::Settled,
        SettlementStatus::Reversed => pb::SettlementStatus::Reversed,
    };
    let reversal = settlement.reversal.as_ref();
    pb::Settlement {
        settlement_id: settlement.id.to_string(),
        settled_at: Some(timestamp(settlement.settled_at)),
        reversed_at: reversal.map(|r| timestamp(r.at)),
        reverse_reason: reversal
            .map(|r| r.reason.as_str().to_owned())
            .unwrap_or_default(),
        settled_by: settlement.settled_by.clone(),
        reversed_by: reversal.map(|r| r.by.clone()).unwrap_or_default(),
        settled_day: settlement.settled_day.to_string(),
        reversed_day: reversal.map(|r| r.day.to_string()).unwrap_or_default(),
        channel: match settlement.channel() {
            Channel::Window => pb::Channel::Window,
            Channel::Application => pb::Channel::Application,
        }
        .into(),
        application: settlement.application.as_ref().map(|application| {
            let approval = application.approval.as_ref();
            pb::ApplicationRecord {
                state: match settlement.application_state() {
                    Some(ApplicationState::Pending) | None => pb::ApplicationState::Pending,
                    Some(ApplicationState::Approved) => pb::ApplicationState::Approved,
                    Some(ApplicationState::Rejected) => pb::ApplicationState::Rejected,
                    Some(ApplicationState::Withdrawn) => pb::ApplicationState::Withdrawn,
                }
                .into(),
                documents: application.documents.as_str().to_owned(),
                approved_at: approval.map(|a| timestamp(a.at)),
                approved_by: approval.map(|a| a.by.clone()).unwrap_or_default(),
                approved_day: approval.map(|a| a.day.to_string()).unwrap_or_default(),
                payment_ref: approval
                    .map(|a| a.payment_ref.as_str().to_owned())
                    .unwrap_or_default(),
                owed: application.owed(settlement.outcome.assistance).to_string(),
                tops_up: application
                    .top_up
                    .as_ref()
                    .map(|t| t.settlement_id.to_string())
                    .unwrap_or_default(),
                window_paid: application
                    .top_up
                    .as_ref()
                    .map(|t| t.window_paid.to_string())
                    .unwrap_or_default(),
            }
        }),
        superseded_by: settlement
            .superseded_by
            .map(|id| id.to_string())
            .unwrap_or_default(),
        ..with_referral(
            settlement_of(&settlement.claim, &settlement.outcome, status),
            settlement.referral,
        )
    }
}

/// A roster record on the wire.
pub fn person_message(person: &Person) -> pb::Person {
    pb::Person {
        patient_id: person.id().as_str().to_owned(),
        name: person.name().as_str().to_owned(),
        region_code: person.region().to_string(),
        enrollments: person
            .enrollments()
            .iter()
            .map(|e| pb::Enrollment {
                kind: enrollment_kind_message(e.kind()).into(),
                valid_from: e.valid_from().to_string(),
                valid_to: e.valid_to().map(|d| d.to_string()).unwrap_or_default(),
                exit: match e.exit() {
                    ExitKind::Plain => pb::ExitKind::Unspecified,
                    ExitKind::GradualExit => pb::ExitKind::GradualExit,
                    ExitKind::LeftPoverty => pb::ExitKind::LeftPoverty,
                }
                .into(),
            })
            .collect(),
        psychiatric_disability_grade: i32::from(person.psychiatric_grade().get()),
        paralysis_certified: person.paralysis_certified(),
    }
}

/// A policy on the wire.
pub fn policy(policy: &Policy) -> pb::Policy {
    let terms = policy.terms();
    pb::Policy {
        policy_id: policy.id().to_string(),
        region_code: terms.region.to_string(),
        effective_year: terms.effective_year.get(),
        assistance_ratio: terms.assistance_ratio.to_string(),
        cap_fraction: terms.cap_fraction.to_string(),
        basic_insurance_annual_cap: terms.basic_insurance_annual_cap.to_string(),
        annual_cap: policy.annual_cap().to_string(),
        gradual_exit_grace_months: terms.grace.gradual_exit_months as i32,
        left_poverty_grace_months: terms.grace.left_poverty_months as i32,
        referral_threshold: terms.referral_threshold.to_string(),
        diseases: terms
            .diseases
            .iter()
            .map(|d| pb::Disease {
                name: d.name.clone(),
                codes: d.codes.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        classes: policy
            .classes()
            .iter()
            .map(|class| pb::PolicyClass {
                kind: enrollment_kind_message(class.kind).into(),
                condition_required: class.condition_required,
                deductible: class.deductible.to_string(),
                bands: class
                    .bands
                    .iter()
                    .map(|band| pb::PolicyBand {
                        up_to: band.up_to.map(|m| m.to_string()).unwrap_or_default(),
                        ratio: band.ratio.to_string(),
                    })
                    .collect(),
                annual_cap: class.annual_cap.map(|m| m.to_string()).unwrap_or_default(),
            })
            .collect(),
        outpatient_chronic_cap: terms
            .outpatient_cap
            .map(|m| m.to_string())
            .unwrap_or_default(),
        tilt: terms.tilt.map(|tilt| pb::PolicyTilt {
            threshold: tilt.threshold.to_string(),
            ratio: tilt.ratio.to_string(),
            cap: tilt.cap.to_string(),
        }),
    }
}

/// A year's usage on the wire.
pub fn annual_usage(usage: &AnnualUsage) -> pb::AnnualUsage {
    pb::AnnualUsage {
        patient_id: usage.patient_id.as_str().to_owned(),
        year: usage.year.get(),
        region_code: usage.region.to_string(),
        annual_cap: usage.annual_cap.to_string(),
        used: usage.used.to_string(),
        remaining: usage.remaining.to_string(),
        settlement_count: i32::try_from(usage.settlement_count).unwrap_or(i32::MAX),
        policy_id: usage.policy_id.to_string(),
        patient_pays_total: usage.patient_pays_total.to_string(),
        deductible_used: usage.total.deductible_used.to_string(),
        assisted_base: usage.total.base.to_string(),
        outpatient_chronic_used: usage.total.outpatient_used.to_string(),
        tilted_total: usage.total.tilt_used.to_string(),
    }
}

/// Most bytes of a proposed policy book sent to SimulatePolicy.
pub const POLICY_TEXT_BYTES_MAX: usize = 256 * 1024;

/// Claims listed among those that change most in a SimulatePolicy answer.
pub const SIMULATION_CHANGES_MAX: usize = 100;

/// Reads a SimulatePolicy request: the proposed book (checked as a
/// configuration file's), the year and the region, if any.
pub fn simulation_request(
    request: &pb::SimulatePolicyRequest,
) -> Result<(crate::domain::PolicyBook, Year, Option<RegionCode>), Violations> {
    let mut violations = Violations::new();
    let book = if request.policy_toml.trim().is_empty() {
        violations.add("policy_toml", "is required: the proposed [[policy]] tables");
        None
    } else if request.policy_toml.len() > POLICY_TEXT_BYTES_MAX {
        violations.add(
            "policy_toml",
            format!("must be at most {POLICY_TEXT_BYTES_MAX} bytes"),
        );
        None
    } else {
        match crate::config::policy_book(&request.policy_toml) {
            Ok(book) => Some(book),
            Err(error) => {
                violations.add("policy_toml", error.to_string());
                None
            }
        }
    };
    let year = violations.check("year", Year::parse(request.year));
    let region = match request.region_code.as_str() {
        "" => Some(None),
        code => violations
            .check("region_code", RegionCode::parse(code))
            .map(Some),
    };
    violations.finish(|| Some((book?, year?, region?)))
}

fn simulation_totals(key: &str, totals: &crate::simulate::Totals) -> pb::SimulationTotals {
    pb::SimulationTotals {
        key: key.to_owned(),
        settlements: totals.settlements,
        persons: totals.persons,
        paid: crate::simulate::yuan(totals.paid_fen),
        would_pay: crate::simulate::yuan(totals.would_pay_fen),
    }
}

/// The answer of SimulatePolicy: the report, with the first
/// [`SIMULATION_CHANGES_MAX`] of the claims that change most.
pub fn simulation_report(report: &crate::simulate::SimulationReport) -> pb::SimulatePolicyResponse {
    let groups = |groups: &std::collections::BTreeMap<String, crate::simulate::Totals>| {
        groups
            .iter()
            .map(|(key, totals)| simulation_totals(key, totals))
            .collect()
    };
    pb::SimulatePolicyResponse {
        year: report.year,
        total: Some(simulation_totals("", &report.total)),
        by_class: groups(&report.by_class),
        by_region: groups(&report.by_region),
        by_month: groups(&report.by_month),
        without_policy: report.without_policy,
        changes: report
            .changes
            .iter()
            .take(SIMULATION_CHANGES_MAX)
            .map(|change| pb::SimulationChange {
                settlement_id: change.settlement_id.clone(),
                hospital_id: change.hospital_id.clone(),
                claim_id: change.claim_id.clone(),
                patient_id_masked: change.patient.clone(),
                paid: crate::simulate::yuan(change.paid_fen),
                would_pay: crate::simulate::yuan(change.would_pay_fen),
            })
            .collect(),
    }
}
