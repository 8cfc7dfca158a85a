//! Settlements, their outcomes, and the running total of a patient's year.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use std::str::FromStr;

use rust_decimal::Decimal;

use super::{
    BusinessDay, Claim, ClaimId, ClaimKey, ClaimKind, EnrollmentKind, Money, ParseError,
    PaymentRef, PolicyId, Ratio, Reason, RegionCode, Year,
};

/// The service's number for a recorded settlement: assigned in commit order,
/// so it also orders a patient's settlements oldest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct SettlementId(u64);

impl SettlementId {
    /// The first number ever assigned.
    pub const FIRST: SettlementId = SettlementId(1);

    /// Reads the decimal form given to callers.
    pub fn parse(text: &str) -> Result<SettlementId, ParseError> {
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("must be a settlement number (digits only)"));
        }
        text.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(SettlementId)
            .ok_or_else(|| ParseError::new("is not a settlement number"))
    }

    /// Wraps a stored number.
    pub fn new(number: u64) -> SettlementId {
        SettlementId(number)
    }

    /// The number itself.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The number after this one.
    pub fn next(self) -> SettlementId {
        SettlementId(self.0 + 1)
    }
}

impl fmt::Display for SettlementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fixed width, so identifiers sort as text the way they sort as numbers.
        write!(f, "{:016}", self.0)
    }
}

/// A moment, in microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Wraps a count of microseconds since 1970-01-01T00:00:00Z.
    pub fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub fn unix_micros(self) -> i64 {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Timestamp {
        Timestamp(at.timestamp_micros())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(at) => f.write_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => write!(f, "@{}us", self.0),
        }
    }
}

/// The qualifying categories of the policy, in wire order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Category {
    /// A diagnosis code in the policy's disease catalogue.
    MajorDisease,
    /// Certified paralysis by illness with loss of working capacity.
    Paralysis,
    /// Aged 80 or over on the discharge date.
    Aged80Plus,
    /// Under 18 on the admission date.
    Minor,
    /// Certified psychiatric disability of grade 1 or 2.
    PsychiatricDisability,
}

/// Why a settled claim gets no assistance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum IneligibleReason {
    /// Not in an assisted population on any day of the stay, or not on the roster.
    NotEnrolled,
    /// Enrolled, but no qualifying category applies.
    NoQualifyingCategory,
}

/// Why a settled claim is referred to temporary assistance (三(一)2 last
/// paragraph, 三(一)3): the patient still cannot pay after insurance and
/// assistance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum ReferralReason {
    /// The annual cap reduced this claim's payment.
    CapReached,
    /// The patient's payments over the year reached the policy's threshold.
    HighOutOfPocket,
}

impl ReferralReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferralReason::CapReached => "cap_reached",
            ReferralReason::HighOutOfPocket => "high_out_of_pocket",
        }
    }
}

/// Where the patient's annual cap stood around this claim. Absent when the
/// patient is not on the roster, so no region or policy applies.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CapState {
    /// The roster's region, whose policy applied.
    pub region: RegionCode,
    /// The policy the claim was settled under.
    pub policy_id: PolicyId,
    /// The year's assistance cap under that policy.
    pub annual_cap: Money,
    /// Assistance already charged to the year before this claim.
    pub used_before: Money,
    /// What is left of the cap after this claim.
    pub remaining_after: Money,
}

/// An amount worked out exactly, before the one rounding to the fen: kept
/// and shown as it is, so a reader can follow the arithmetic.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Exact(pub Decimal);

impl fmt::Display for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.normalize();
        if shown.scale() < 2 {
            shown.rescale(2);
        }
        write!(f, "{shown}")
    }
}

impl Serialize for Exact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Decimal::from_str(&text)
            .map(Exact)
            .map_err(serde::de::Error::custom)
    }
}

/// One ratio band as a claim used it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BandLine {
    /// Where the band starts on the year's cumulative assisted base.
    pub from: Money,
    /// Where it ends; `None`: it does not.
    pub up_to: Option<Money>,
    /// The band's ratio.
    pub ratio: Ratio,
    /// The part of this claim's base that falls in the band.
    pub base: Money,
    /// `base x ratio`, exact: only the claim's total is rounded.
    pub amount: Exact,
}

/// What a claim took from the patient's running total for its year, so a
/// reversal gives back exactly that.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Consumed {
    /// Of the class's annual deductible.
    pub deductible: Money,
    /// Of the ratio bands: the assisted base (out-of-pocket past the deductible).
    pub base: Money,
    /// Of the annual cap: the assistance before any tilted assistance.
    pub cap_charged: Money,
    /// Of the outpatient sub-cap (the cap charged, on an outpatient claim).
    pub outpatient: Money,
    /// Of the tilted assistance's own cap.
    pub tilt: Money,
    /// Added to the year's remaining in-scope out-of-pocket cost (what the
    /// patient bears in scope after the cap charged), which tilted
    /// assistance is measured on.
    pub burden: Money,
}

/// How a claim's assistance was worked out, in numbers and in words.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Breakdown {
    /// The class applied: the most favourable of the patient's; `None`
    /// when none applies.
    pub class: Option<EnrollmentKind>,
    /// The class's annual deductible.
    pub deductible: Money,
    /// The deductible consumed by the year's earlier claims.
    pub deductible_before: Money,
    /// The year's cumulative assisted base before this claim (the band position).
    pub base_before: Money,
    /// The bands this claim's base fell in.
    pub bands: Vec<BandLine>,
    /// The sum of the bands, rounded up to the fen once.
    pub computed: Money,
    /// The part of the year's remaining out-of-pocket cost that tilted
    /// assistance paid on.
    pub tilt_base: Money,
    /// What the claim took from the running total.
    pub consumed: Consumed,
    /// The calculation in words, for the clerk to read to the patient (计算描述).
    pub explanation: String,
}

/// What the rules decided for one claim: everything about the money.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// True when the patient is enrolled and in a qualifying category.
    pub eligible: bool,
    /// The qualifying categories found, in wire order.
    pub categories: Vec<Category>,
    /// Why nothing is paid, when not eligible.
    pub ineligible_reason: Option<IneligibleReason>,
    /// In-scope cost minus basic and critical-illness insurance payments.
    pub in_scope_out_of_pocket: Money,
    /// What medical assistance pays.
    pub assistance: Money,
    /// What is left for the patient to pay.
    pub patient_pays: Money,
    /// True only when the cap reduced the payment.
    pub capped: bool,
    /// The cap around this claim; `None` for a patient not on the roster.
    pub cap: Option<CapState>,
    /// How the amount was worked out; `None` on settlements recorded before
    /// breakdowns were kept. Not in the outcome's own encoding, which older
    /// records share: a settlement carries it after its other fields.
    #[serde(skip)]
    pub breakdown: Option<Breakdown>,
}

impl Outcome {
    /// What this outcome took from its year's running total. A settlement
    /// recorded before breakdowns were kept took its assistance from the
    /// cap and nothing else.
    pub fn consumed(&self) -> Consumed {
        match &self.breakdown {
            Some(breakdown) => breakdown.consumed,
            None => Consumed {
                cap_charged: self.assistance,
                ..Consumed::default()
            },
        }
    }
}

/// A quote: what settling the claim now would pay. Nothing is recorded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Quote {
    /// The claim quoted.
    pub claim: Claim,
    /// What the rules decided.
    pub outcome: Outcome,
    /// Whether settling now would refer the patient, and why.
    pub referral: Option<ReferralReason>,
}

/// The cancellation of a settlement, kept on its record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Reversal {
    /// When the reversal was recorded.
    pub at: Timestamp,
    /// Why, as the hospital said.
    pub reason: Reason,
    /// The business day of `at` in the fund's zone, fixed when recorded.
    pub day: BusinessDay,
    /// The configured name of the token that reversed it (`open` in open
    /// mode; empty for reversals recorded before names were kept).
    pub by: String,
}

/// How a settlement came about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Channel {
    /// At the hospital's window, at discharge (一站式结算).
    Window,
    /// On application to the fund, after the fact (依申请救助).
    Application,
}

/// Assistance on application (依申请救助, 事后救助): a stay that was not
/// settled at the window (enrolled after discharge, treated out of the
/// province, a hospital not connected), submitted by a caseworker and
/// worked out as if settled at discharge. It reserves its assistance against
/// the cap from submission, and counts as paid once a principal other than
/// the one who submitted it approves it (four eyes); rejected or withdrawn,
/// it gives the reservation back as a reversal does (its
/// [`Settlement::reversal`] then says who, when and why).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Application {
    /// Where the documents are: a case number, a file reference.
    pub documents: Reason,
    /// The principal (token ID) that submitted it: the one principal that
    /// may not approve or reject it.
    pub submitted_by: String,
    /// Once approved: who, when, and the payment's reference.
    pub approval: Option<Approval>,
    /// Once closed without payment: how.
    pub closing: Option<Closing>,
    /// Set when it pays the rest of a window settlement that the roster as
    /// it is now owes more (a late enrollment, a more favourable class).
    pub top_up: Option<TopUp>,
}

impl Application {
    /// What approving it pays: its assistance, less what the window
    /// settlement it tops up already paid.
    pub fn owed(&self, assistance: Money) -> Money {
        let paid = self.top_up.as_ref().map_or(Money::ZERO, |t| t.window_paid);
        assistance.checked_sub(paid).unwrap_or(Money::ZERO)
    }
}

/// The window settlement a top-up application pays the rest of. The
/// application is the stay worked out as if settled at discharge under the
/// roster as it is now, and takes the window settlement's place in the
/// patient's running total (which [`Settlement::superseded_by`] marks)
/// until it is rejected or withdrawn.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TopUp {
    /// The window settlement's number.
    pub settlement_id: SettlementId,
    /// Its claim key.
    pub key: ClaimKey,
    /// What it paid at the window.
    pub window_paid: Money,
}

impl TopUp {
    /// The claim key of the top-up application `id` of the window
    /// settlement `window` (under its claim key `key`): at the window's
    /// hospital, `~` and both numbers, so each application has its own and
    /// a stay's window key is never taken twice.
    pub fn key(key: &ClaimKey, window: SettlementId, id: SettlementId) -> ClaimKey {
        ClaimKey {
            hospital_id: key.hospital_id.clone(),
            claim_id: ClaimId::of_top_up(window.get(), id.get()),
        }
    }
}

/// The approval of an application.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Approval {
    /// When.
    pub at: Timestamp,
    /// The business day it counts in.
    pub day: BusinessDay,
    /// Who (the token's name).
    pub by: String,
    /// The fund's reference of the payment.
    pub payment_ref: PaymentRef,
}

/// How an application was closed without payment.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Closing {
    /// A reviewer refused it.
    Rejected,
    /// It was taken back (by the applicant, through a caseworker).
    Withdrawn,
}

/// Where an application stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ApplicationState {
    /// Submitted; its assistance is reserved against the cap.
    Pending,
    /// Approved and paid.
    Approved,
    /// Refused by a reviewer; the reservation is given back.
    Rejected,
    /// Taken back; the reservation is given back.
    Withdrawn,
}

impl ApplicationState {
    /// The name of exports and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationState::Pending => "pending",
            ApplicationState::Approved => "approved",
            ApplicationState::Rejected => "rejected",
            ApplicationState::Withdrawn => "withdrawn",
        }
    }
}

/// Whether a recorded settlement still counts against the cap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SettlementStatus {
    /// Charged to the annual cap.
    Settled,
    /// Cancelled: its amount went back to the cap.
    Reversed,
}

/// A recorded settlement: the claim, what was paid and why, and when.
///
/// Stored as [`SettlementRecord`]: the fields of the layout before claim
/// kinds and breakdowns, then those two, so a record stored before them is
/// the same bytes up to where they begin (see `store::legacy`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(from = "SettlementRecord", into = "SettlementRecord")]
pub struct Settlement {
    /// The service's number for it.
    pub id: SettlementId,
    /// The claim as settled.
    pub claim: Claim,
    /// What the rules decided.
    pub outcome: Outcome,
    /// When it was recorded.
    pub settled_at: Timestamp,
    /// The business day of `settled_at` in the fund's zone, fixed when
    /// recorded: the day it is reconciled on.
    pub settled_day: BusinessDay,
    /// The configured name of the token that settled it (`open` in open
    /// mode; empty for settlements recorded before names were kept).
    pub settled_by: String,
    /// Referred to temporary assistance, and why; decided once, when settled.
    pub referral: Option<ReferralReason>,
    /// Its cancellation, if it was reversed (for an application: rejected
    /// or withdrawn).
    pub reversal: Option<Reversal>,
    /// Set when it is an application rather than a window settlement.
    pub application: Option<Application>,
    /// The top-up application that, while pending or approved, stands in
    /// this window settlement's place in the running total.
    pub superseded_by: Option<SettlementId>,
}

/// A settlement as stored: today's fields in their first order, then what
/// the 2021 framework added.
#[derive(Clone, Serialize, Deserialize)]
pub struct SettlementRecord {
    id: SettlementId,
    claim: Claim,
    outcome: Outcome,
    settled_at: Timestamp,
    settled_day: BusinessDay,
    settled_by: String,
    referral: Option<ReferralReason>,
    reversal: Option<Reversal>,
    /// Absent from records stored before (JSON rows read it as the default).
    #[serde(default)]
    terms: SettlementTerms,
}

/// What a settlement record carries after its first fields.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SettlementTerms {
    claim_kind: ClaimKind,
    breakdown: Option<Breakdown>,
    /// Absent from records stored before applications (JSON rows read it
    /// as the default; the embedded store's layout 3 records are read as
    /// `store::legacy::SettlementV3`).
    #[serde(default)]
    application: Option<Application>,
    /// See [`Settlement::superseded_by`]; written with the application.
    #[serde(default)]
    superseded_by: Option<SettlementId>,
}

impl From<Settlement> for SettlementRecord {
    fn from(s: Settlement) -> SettlementRecord {
        let terms = SettlementTerms {
            claim_kind: s.claim.kind(),
            breakdown: s.outcome.breakdown.clone(),
            application: s.application,
            superseded_by: s.superseded_by,
        };
        SettlementRecord {
            id: s.id,
            claim: s.claim,
            outcome: s.outcome,
            settled_at: s.settled_at,
            settled_day: s.settled_day,
            settled_by: s.settled_by,
            referral: s.referral,
            reversal: s.reversal,
            terms,
        }
    }
}

impl From<SettlementRecord> for Settlement {
    fn from(r: SettlementRecord) -> Settlement {
        let mut outcome = r.outcome;
        outcome.breakdown = r.terms.breakdown;
        Settlement {
            id: r.id,
            claim: r.claim.with_kind(r.terms.claim_kind),
            outcome,
            settled_at: r.settled_at,
            settled_day: r.settled_day,
            settled_by: r.settled_by,
            referral: r.referral,
            reversal: r.reversal,
            application: r.terms.application,
            superseded_by: r.terms.superseded_by,
        }
    }
}

impl Settlement {
    /// True when it counts in its patient's running total: not reversed
    /// (nor an application rejected or withdrawn), and not a window
    /// settlement a top-up application stands in for.
    pub fn counts(&self) -> bool {
        self.reversal.is_none() && self.superseded_by.is_none()
    }

    /// True when its patient was enrolled in `region` (a city takes in its
    /// counties) when it was settled; never for a patient on no roster.
    pub fn enrolled_in(&self, region: RegionCode) -> bool {
        self.outcome
            .cap
            .as_ref()
            .is_some_and(|cap| region.covers(cap.region))
    }

    /// Where it was settled: at the window, or on application.
    pub fn channel(&self) -> Channel {
        match self.application {
            Some(_) => Channel::Application,
            None => Channel::Window,
        }
    }

    /// Where an application stands; `None` for a window settlement.
    pub fn application_state(&self) -> Option<ApplicationState> {
        let application = self.application.as_ref()?;
        Some(match (&application.approval, application.closing) {
            (Some(_), _) => ApplicationState::Approved,
            (None, Some(Closing::Rejected)) => ApplicationState::Rejected,
            (None, Some(Closing::Withdrawn)) => ApplicationState::Withdrawn,
            (None, None) => ApplicationState::Pending,
        })
    }

    /// Settled, or reversed.
    pub fn status(&self) -> SettlementStatus {
        match self.reversal {
            Some(_) => SettlementStatus::Reversed,
            None => SettlementStatus::Settled,
        }
    }

    /// The business days it belongs to: the day it was settled, and the day
    /// it was reversed when that is another one.
    pub fn business_days(&self) -> impl Iterator<Item = BusinessDay> + use<> {
        let reversed = self
            .reversal
            .as_ref()
            .map(|r| r.day)
            .filter(|day| *day != self.settled_day);
        std::iter::once(self.settled_day).chain(reversed)
    }

    /// The region whose referral list shows it: its cap's region while it
    /// is referred to temporary assistance and not reversed.
    pub fn listed_referral_region(&self) -> Option<RegionCode> {
        match (&self.referral, &self.outcome.cap, &self.reversal) {
            (Some(_), Some(cap), None) => Some(cap.region),
            _ => None,
        }
    }
}

/// A patient's running total for one cap year. It always equals the sum over
/// the year's settlements that [count](Settlement::counts) (of what each
/// consumed).
///
/// The fields after `patient_pays` came with the 2021 framework: a total
/// stored before them ends there (see `store::legacy`), and they are zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Assistance charged to the annual cap by settlements that are not
    /// reversed (tilted assistance has a cap of its own).
    pub used: Money,
    /// Settlements that are not reversed, zero amounts included.
    pub settlement_count: u32,
    /// What the patient paid over the settlements that are not reversed.
    pub patient_pays: Money,
    /// The deductible consumed so far.
    #[serde(default)]
    pub deductible_used: Money,
    /// The cumulative assisted base: the position on the ratio bands.
    #[serde(default)]
    pub base: Money,
    /// Assistance charged on outpatient claims (against the sub-cap).
    #[serde(default)]
    pub outpatient_used: Money,
    /// Tilted assistance paid.
    #[serde(default)]
    pub tilt_used: Money,
    /// The year's remaining in-scope out-of-pocket cost after the cap charged.
    #[serde(default)]
    pub burden: Money,
}

impl Usage {
    /// The total after a new settlement of `outcome`; `None` on overflow.
    pub fn charge(self, outcome: &Outcome) -> Option<Usage> {
        let c = outcome.consumed();
        Some(Usage {
            used: self.used.checked_add(c.cap_charged)?,
            settlement_count: self.settlement_count.checked_add(1)?,
            patient_pays: self.patient_pays.checked_add(outcome.patient_pays)?,
            deductible_used: self.deductible_used.checked_add(c.deductible)?,
            base: self.base.checked_add(c.base)?,
            outpatient_used: self.outpatient_used.checked_add(c.outpatient)?,
            tilt_used: self.tilt_used.checked_add(c.tilt)?,
            burden: self.burden.checked_add(c.burden)?,
        })
    }

    /// The total after a settlement of `outcome` is reversed: exactly what
    /// it consumed, deductible included, goes back. `None` when the total
    /// does not hold it, which would mean the ledger is corrupt.
    pub fn refund(self, outcome: &Outcome) -> Option<Usage> {
        let c = outcome.consumed();
        Some(Usage {
            used: self.used.checked_sub(c.cap_charged)?,
            settlement_count: self.settlement_count.checked_sub(1)?,
            patient_pays: self.patient_pays.checked_sub(outcome.patient_pays)?,
            deductible_used: self.deductible_used.checked_sub(c.deductible)?,
            base: self.base.checked_sub(c.base)?,
            outpatient_used: self.outpatient_used.checked_sub(c.outpatient)?,
            tilt_used: self.tilt_used.checked_sub(c.tilt)?,
            burden: self.burden.checked_sub(c.burden)?,
        })
    }
}

/// A cap year of one patient: the key of a running total.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PatientYear {
    /// The patient.
    pub patient_id: super::ResidentId,
    /// The cap year.
    pub year: Year,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settlement_ids_round_trip_and_sort_as_text() {
        let id = SettlementId::parse("42").unwrap();
        assert_eq!(id.to_string(), "0000000000000042");
        assert_eq!(SettlementId::parse(&id.to_string()).unwrap(), id);
        assert!(id.next().to_string() > id.to_string());
        for bad in ["", "0", "-1", "abc", "1.0", "99999999999999999999999"] {
            assert!(
                SettlementId::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn usage_charges_and_refunds_exactly() {
        let amount = Money::parse("7350.00").unwrap();
        let outcome = Outcome {
            eligible: true,
            categories: Vec::new(),
            ineligible_reason: None,
            in_scope_out_of_pocket: amount,
            assistance: amount,
            patient_pays: Money::parse("11150.00").unwrap(),
            capped: false,
            cap: None,
            breakdown: None,
        };
        let charged = Usage::default().charge(&outcome).unwrap();
        assert_eq!(charged.used, amount);
        assert_eq!(charged.settlement_count, 1);
        assert_eq!(charged.patient_pays.to_string(), "11150.00");
        assert_eq!(charged.refund(&outcome).unwrap(), Usage::default());
        assert_eq!(Usage::default().refund(&outcome), None);
    }

    #[test]
    fn timestamps_print_as_rfc3339() {
        let at = Timestamp::from_unix_micros(1_764_361_200_123_456);
        assert_eq!(at.to_string(), "2025-11-28T20:20:00.123456Z");
    }
}
