//! Settlements, their outcomes, and the running total of a patient's year.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{BusinessDay, Claim, Money, ParseError, PolicyId, Reason, RegionCode, Year};

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

/// Whether a recorded settlement still counts against the cap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SettlementStatus {
    /// Charged to the annual cap.
    Settled,
    /// Cancelled: its amount went back to the cap.
    Reversed,
}

/// A recorded settlement: the claim, what was paid and why, and when.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
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
    /// Its cancellation, if it was reversed.
    pub reversal: Option<Reversal>,
}

impl Settlement {
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

    /// What this settlement charges to its year now: its assistance while
    /// settled, nothing once reversed.
    pub fn charged(&self) -> Money {
        match self.status() {
            SettlementStatus::Settled => self.outcome.assistance,
            SettlementStatus::Reversed => Money::ZERO,
        }
    }
}

/// A patient's running total for one cap year. It always equals the sum over
/// the year's settlements that are not reversed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Assistance paid by settlements that are not reversed.
    pub used: Money,
    /// Settlements that are not reversed, zero amounts included.
    pub settlement_count: u32,
    /// What the patient paid over the settlements that are not reversed.
    pub patient_pays: Money,
}

impl Usage {
    /// The total after a new settlement of `outcome`; `None` on overflow.
    pub fn charge(self, outcome: &Outcome) -> Option<Usage> {
        Some(Usage {
            used: self.used.checked_add(outcome.assistance)?,
            settlement_count: self.settlement_count.checked_add(1)?,
            patient_pays: self.patient_pays.checked_add(outcome.patient_pays)?,
        })
    }

    /// The total after a settlement of `outcome` is reversed; `None` when
    /// the total does not hold it, which would mean the ledger is corrupt.
    pub fn refund(self, outcome: &Outcome) -> Option<Usage> {
        Some(Usage {
            used: self.used.checked_sub(outcome.assistance)?,
            settlement_count: self.settlement_count.checked_sub(1)?,
            patient_pays: self.patient_pays.checked_sub(outcome.patient_pays)?,
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
