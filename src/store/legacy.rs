//! The layout before business days and names (schema version 1), kept only
//! to read an older store once and bring it up to date.
//!
//! Version 1 stored `Settlement` without `settled_day`, `settled_by`,
//! `referral` and the reversal's `day` and `by`, `Usage` without
//! `patient_pays`, and had no day or referral index. postcard is not
//! self-describing, so those records cannot be read with today's types: at
//! start-up, an older store first replays its journal in the old encoding
//! (writing what version 1 wrote), then every settlement is rewritten in the
//! new encoding with its days worked out from `settled_at` and `reversed_at`
//! in the configured zone, and the day index is built. Names were never
//! recorded before, so they stay empty.

use serde::{Deserialize, Serialize};

use crate::domain::{
    Breakdown, BusinessDay, Claim, ClaimKind, Money, Outcome, Person, Reason, ResidentId, Reversal,
    Settlement, SettlementId, Timestamp, Usage, UtcOffset, Year,
};

use super::CommitNumber;

/// The schema version this module reads.
pub const VERSION: u32 = 1;

/// A settlement as version 1 stored it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettlementV1 {
    /// The settlement's number.
    pub id: SettlementId,
    /// The claim.
    pub claim: Claim,
    /// What the rules decided.
    pub outcome: Outcome,
    /// When it was recorded.
    pub settled_at: Timestamp,
    /// Its cancellation.
    pub reversal: Option<ReversalV1>,
}

/// A reversal as version 1 stored it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReversalV1 {
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: Reason,
}

/// A journal record of version 1.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchV1 {
    /// The commit's number.
    pub commit: CommitNumber,
    /// The settlement counter after it.
    pub next_settlement_id: SettlementId,
    /// Settlements written.
    pub settlements: Vec<SettlementV1>,
    /// Running totals written.
    pub usages: Vec<(ResidentId, Year, UsageV1)>,
    /// Roster records written.
    pub persons: Vec<Person>,
}

/// A journal record (or snapshot record) of layout version 2 written before
/// commits carried audit records: [`BatchV2`] without them. postcard is not
/// self-describing, so such a payload is told apart by failing to decode as
/// a [`BatchV2`] (it ends where the audit records would begin).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchWithoutAudit {
    /// The commit's number.
    pub commit: CommitNumber,
    /// The settlement counter after it.
    pub next_settlement_id: SettlementId,
    /// Settlements created or changed.
    pub settlements: Vec<SettlementV2>,
    /// Running totals changed.
    pub usages: Vec<(ResidentId, Year, UsageV2)>,
    /// Roster records written.
    pub persons: Vec<Person>,
}

impl BatchWithoutAudit {
    /// The batch in today's form, with no audit record.
    pub fn upgrade(self) -> crate::store::Batch {
        BatchV2 {
            commit: self.commit,
            next_settlement_id: self.next_settlement_id,
            settlements: self.settlements,
            usages: self.usages,
            persons: self.persons,
            audit: Vec::new(),
        }
        .upgrade()
    }
}

/// The first number of a batch of layout 3: the 2021 framework's fields,
/// before settlements carried applications.
pub const BATCH_TAG_V3: u64 = u64::MAX;

/// A journal record (or snapshot record) of layout 3: today's batch, with
/// settlements as layout 3 stored them. It begins with [`BATCH_TAG_V3`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchV3 {
    /// [`BATCH_TAG_V3`].
    pub tag: u64,
    /// The commit's number.
    pub commit: CommitNumber,
    /// The settlement counter after it.
    pub next_settlement_id: SettlementId,
    /// Settlements created or changed.
    pub settlements: Vec<SettlementV3>,
    /// Running totals changed (the same as today's).
    pub usages: Vec<(ResidentId, Year, Usage)>,
    /// Roster records written.
    pub persons: Vec<Person>,
    /// Audit records sealed with the commit.
    pub audit: Vec<crate::audit::Record>,
}

impl BatchV3 {
    /// Today's batch: its settlements are window settlements.
    pub fn upgrade(self) -> crate::store::Batch {
        crate::store::Batch {
            commit: self.commit,
            next_settlement_id: self.next_settlement_id,
            settlements: self
                .settlements
                .into_iter()
                .map(SettlementV3::upgrade)
                .collect(),
            usages: self.usages,
            persons: self.persons,
            audit: self.audit,
        }
    }
}

/// A settlement as layout 3 stored it: layout 2's fields, then the 2021
/// framework's (claim kind and breakdown), without an application. postcard
/// writes the two parts one after the other, as one record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettlementV3(pub SettlementV2, pub TermsV3);

/// What layout 3 appended to a settlement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TermsV3 {
    /// The claim's kind.
    pub claim_kind: ClaimKind,
    /// How it was worked out.
    pub breakdown: Option<Breakdown>,
}

impl SettlementV3 {
    /// Today's settlement: a window settlement.
    pub fn upgrade(self) -> Settlement {
        let SettlementV3(settlement, terms) = self;
        let mut settlement = settlement.upgrade();
        settlement.claim = settlement.claim.with_kind(terms.claim_kind);
        settlement.outcome.breakdown = terms.breakdown;
        settlement
    }
}

/// A journal record (or snapshot record) of layout version 2 written before
/// the 2021 framework: settlements without claim kind and breakdown,
/// running totals without deductible, bands, outpatient, tilt and burden.
/// Later batches begin with [`BATCH_TAG_V3`] or [`crate::store::BATCH_TAG`],
/// which no commit number of these ever was, so they are told apart by their
/// first number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchV2 {
    /// The commit's number.
    pub commit: CommitNumber,
    /// The settlement counter after it.
    pub next_settlement_id: SettlementId,
    /// Settlements created or changed.
    pub settlements: Vec<SettlementV2>,
    /// Running totals changed.
    pub usages: Vec<(ResidentId, Year, UsageV2)>,
    /// Roster records written.
    pub persons: Vec<Person>,
    /// Audit records sealed with the commit.
    pub audit: Vec<crate::audit::Record>,
}

impl BatchV2 {
    /// The batch in today's form.
    pub fn upgrade(self) -> crate::store::Batch {
        crate::store::Batch {
            commit: self.commit,
            next_settlement_id: self.next_settlement_id,
            settlements: self
                .settlements
                .into_iter()
                .map(SettlementV2::upgrade)
                .collect(),
            usages: self
                .usages
                .into_iter()
                .map(|(patient, year, usage)| (patient, year, usage.upgrade()))
                .collect(),
            persons: self.persons,
            audit: self.audit,
        }
    }
}

/// A settlement as layout version 2 stored it before the 2021 framework:
/// today's record up to where the claim kind and breakdown begin (an
/// inpatient claim, no breakdown).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettlementV2 {
    /// The settlement's number.
    pub id: SettlementId,
    /// The claim (its kind was not recorded: inpatient).
    pub claim: Claim,
    /// What the rules decided (no breakdown).
    pub outcome: Outcome,
    /// When it was recorded.
    pub settled_at: Timestamp,
    /// Its business day.
    pub settled_day: BusinessDay,
    /// Who settled it.
    pub settled_by: String,
    /// Its referral.
    pub referral: Option<crate::domain::ReferralReason>,
    /// Its cancellation.
    pub reversal: Option<Reversal>,
}

impl SettlementV2 {
    /// The settlement in today's form: an inpatient claim without breakdown,
    /// which consumed its assistance from the cap and nothing else.
    pub fn upgrade(self) -> Settlement {
        Settlement {
            id: self.id,
            claim: self.claim,
            outcome: self.outcome,
            settled_at: self.settled_at,
            settled_day: self.settled_day,
            settled_by: self.settled_by,
            referral: self.referral,
            reversal: self.reversal,
            application: None,
            superseded_by: None,
        }
    }
}

/// A running total as layout version 2 stored it before the 2021 framework.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct UsageV2 {
    /// Assistance of the settlements that are not reversed.
    pub used: Money,
    /// Their number.
    pub settlement_count: u32,
    /// What the patient paid over them.
    pub patient_pays: Money,
}

impl UsageV2 {
    /// The total in today's form: nothing of a deductible, band, outpatient
    /// sub-cap or tilt consumed, as no settlement then consumed any.
    pub fn upgrade(self) -> Usage {
        Usage {
            used: self.used,
            settlement_count: self.settlement_count,
            patient_pays: self.patient_pays,
            ..Usage::default()
        }
    }
}

/// A running total as version 1 stored it: without what the patient paid.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct UsageV1 {
    /// Assistance of the settlements that are not reversed.
    pub used: Money,
    /// Their number.
    pub settlement_count: u32,
}

impl UsageV1 {
    /// The total in today's form, given what the patient paid over the
    /// settlements that are not reversed.
    pub fn upgrade(self, patient_pays: Money) -> Usage {
        Usage {
            used: self.used,
            settlement_count: self.settlement_count,
            patient_pays,
            ..Usage::default()
        }
    }
}

impl SettlementV1 {
    /// The settlement in today's form: its days in the zone `offset`, no names.
    pub fn upgrade(self, offset: UtcOffset) -> Settlement {
        Settlement {
            id: self.id,
            claim: self.claim,
            outcome: self.outcome,
            settled_at: self.settled_at,
            settled_day: BusinessDay::of(self.settled_at, offset),
            settled_by: String::new(),
            // Referral did not exist: an old settlement is not referred.
            referral: None,
            reversal: self.reversal.map(|r| Reversal {
                at: r.at,
                reason: r.reason,
                day: BusinessDay::of(r.at, offset),
                by: String::new(),
            }),
            application: None,
            superseded_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves an old record decodes with these types and upgrades with its
    /// days in the fund's zone, by encoding one the way version 1 did.
    #[test]
    fn a_version_1_record_upgrades_with_its_days() {
        let codes = vec!["N18".to_owned()];
        let patient = ResidentId::compose(
            crate::domain::RegionCode::parse("320602").unwrap(),
            crate::domain::Date::parse("1960-01-01").unwrap(),
            11,
        );
        let claim = Claim::parse(&crate::domain::ClaimInput {
            hospital_id: "H001",
            claim_id: "C-1",
            patient_id: patient.as_str(),
            admission_date: "2026-03-01",
            discharge_date: "2026-03-20",
            diagnosis_codes: &codes,
            total_cost: "50000",
            in_scope_cost: "42000",
            basic_insurance_paid: "25200",
            critical_illness_paid: "6300",
            claim_kind: Default::default(),
        })
        .unwrap();
        let outcome = crate::rules::apply_cap(
            &claim,
            &crate::rules::assess(&claim, None),
            crate::domain::Money::ZERO,
        );
        // 2025-11-30T16:00:00Z is 2025-12-01 in Beijing; reversed 8 hours later.
        let at = Timestamp::from_unix_micros(1_764_518_400_000_000);
        let later = Timestamp::from_unix_micros(1_764_518_400_000_000 + 8 * 3_600_000_000);
        let old = SettlementV1 {
            id: SettlementId::new(7),
            claim,
            outcome,
            settled_at: at,
            reversal: Some(ReversalV1 {
                at: later,
                reason: Reason::parse("duplicate bill").unwrap(),
            }),
        };
        let bytes = postcard::to_stdvec(&(3u64, &old)).unwrap();
        let (commit, read): (u64, SettlementV1) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read.clone().upgrade(UtcOffset::CHINA).referral, None);
        assert_eq!(commit, 3);
        let new = read.upgrade(UtcOffset::CHINA);
        assert_eq!(new.settled_day.to_string(), "2025-12-01");
        let reversal = new.reversal.as_ref().unwrap();
        assert_eq!(reversal.day.to_string(), "2025-12-01");
        assert_eq!((new.settled_by.as_str(), reversal.by.as_str()), ("", ""));
    }
}
