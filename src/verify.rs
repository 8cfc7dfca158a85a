//! `medassist verify`: the offline consistency check of a data directory.
//!
//! Run it after any incident, with the service stopped. It proves the
//! promises of the ledger from the stored data alone:
//!
//! - every claim key points to exactly one settlement, and that settlement
//!   back to it; every settlement is in its patient-year index, and in the
//!   day index (by hospital and for all) under each of its business days,
//!   and nowhere else; every referred settlement that is not reversed is in
//!   the referral index under its day and region, and nothing else is;
//! - every running total equals the sum of its year's settled (not
//!   reversed) settlements, and its count their number;
//! - no total exceeds the cap of the policy recorded on its settlements, and
//!   each settlement's own arithmetic adds up;
//! - the counters (next settlement number, last commit) are ahead of
//!   everything stored, and the record counts agree.
//!
//! Every scan streams; memory grows with the number of patient-years only.

use std::collections::{HashMap, HashSet};

use crate::{
    domain::{Money, ResidentId, Settlement, Usage, Year},
    store::{Scan, StoreError},
};

/// Discrepancies listed in full; beyond this only their number is kept.
const LISTED_MAX: usize = 100;

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Settlements read.
    pub settlements: u64,
    /// Of those, reversed.
    pub reversed: u64,
    /// Claim-key index entries read.
    pub claim_keys: u64,
    /// Patient-year index entries read.
    pub index_entries: u64,
    /// Day index entries read (by hospital and for all hospitals).
    pub day_entries: u64,
    /// Referral index entries read.
    pub referral_entries: u64,
    /// Running totals read.
    pub patient_years: u64,
    /// Roster records read.
    pub persons: u64,
    /// Assistance of all settled (not reversed) settlements.
    pub assistance_total: Money,
    /// The first discrepancies found, in words.
    pub discrepancies: Vec<String>,
    /// How many discrepancies there were in all.
    pub discrepancy_count: u64,
}

impl VerifyReport {
    /// True when nothing disagreed.
    pub fn is_consistent(&self) -> bool {
        self.discrepancy_count == 0
    }

    fn found(&mut self, discrepancy: String) {
        self.discrepancy_count += 1;
        if self.discrepancies.len() < LISTED_MAX {
            self.discrepancies.push(discrepancy);
        }
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checked {} settlements ({} reversed), {} claim keys, {} index entries, {} day index entries, {} patient-years, {} roster records",
            self.settlements,
            self.reversed,
            self.claim_keys,
            self.index_entries,
            self.day_entries,
            self.patient_years,
            self.persons
        )?;
        writeln!(
            f,
            "assistance paid by settled claims: {}",
            self.assistance_total
        )?;
        if self.is_consistent() {
            return writeln!(f, "consistent");
        }
        for discrepancy in &self.discrepancies {
            writeln!(f, "DISCREPANCY: {discrepancy}")?;
        }
        if self.discrepancy_count > self.discrepancies.len() as u64 {
            writeln!(
                f,
                "... and {} more",
                self.discrepancy_count - self.discrepancies.len() as u64
            )?;
        }
        writeln!(f, "INCONSISTENT: {} discrepancies", self.discrepancy_count)
    }
}

/// The sum a running total should hold, rebuilt from the settlements.
#[derive(Default)]
struct Expected {
    used: Money,
    count: u32,
    patient_pays: Money,
    /// The largest cap recorded on the year's settled claims: a cap may be
    /// lowered by a later policy, never so that earlier payments break it.
    cap: Option<Money>,
    /// The whole running total as the settlements' consumption adds up
    /// (deductible, band position, outpatient, tilted assistance, burden).
    total: Option<Usage>,
}

/// Checks every promise of the stored data; storage errors that stop the
/// scan altogether are returned as errors, damaged records as discrepancies.
pub fn verify(store: &dyn Scan) -> Result<VerifyReport, StoreError> {
    let meta = store.meta()?;
    let mut report = VerifyReport::default();
    let mut indexed: HashSet<u64> = HashSet::new();
    for entry in store.scan_patient_year_index() {
        report.index_entries += 1;
        match entry {
            Ok((_, _, id)) => {
                indexed.insert(id.get());
            }
            Err(error) => report.found(format!("patient-year index: {error}")),
        }
    }
    let mut expected: HashMap<(ResidentId, Year), Expected> = HashMap::new();
    let (mut id_max, mut commit_max) = (0, 0);
    let mut day_entries_expected = 0u64;
    let mut referrals_expected = 0u64;
    for read in store.scan_settlements() {
        report.settlements += 1;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                report.found(format!("settlement: {error}"));
                continue;
            }
        };
        let settlement = &read.value;
        id_max = id_max.max(settlement.id.get());
        commit_max = commit_max.max(read.commit);
        check_settlement(store, settlement, &indexed, &mut report)?;
        // An `H` and a `D` entry for each of its days.
        day_entries_expected += 2 * settlement.business_days().count() as u64;
        if settlement.listed_referral_region().is_some() {
            referrals_expected += 1;
        }
        let key = (
            settlement.claim.patient_id().clone(),
            settlement.claim.year(),
        );
        let sum = expected.entry(key).or_default();
        if settlement.counts() {
            sum.count += 1;
            let consumed = settlement.outcome.consumed();
            sum.used = add(sum.used, consumed.cap_charged, &mut report);
            sum.total = sum.total.unwrap_or_default().charge(&settlement.outcome);
            if sum.total.is_none() {
                report.found(format!("{}: the running total overflows", settlement.id));
            }
            sum.patient_pays = add(
                sum.patient_pays,
                settlement.outcome.patient_pays,
                &mut report,
            );
            report.assistance_total = add(
                report.assistance_total,
                settlement.outcome.assistance,
                &mut report,
            );
            if let Some(cap) = &settlement.outcome.cap {
                sum.cap = sum.cap.max(Some(cap.annual_cap));
            }
        } else {
            report.reversed += 1;
        }
    }
    check_claim_index(store, &mut report)?;
    check_day_index(store, &mut report)?;
    check_referral_index(store, &mut report)?;
    if report.referral_entries != referrals_expected {
        report.found(format!(
            "{} referral index entries for {referrals_expected} referred settlements not reversed",
            report.referral_entries
        ));
    }
    // Every entry read was found to belong to a day of its settlement, and
    // keys are unique: equal counts mean every expected entry is there.
    if report.day_entries != day_entries_expected {
        report.found(format!(
            "{} day index entries, but the settlements' days call for {day_entries_expected}",
            report.day_entries
        ));
    }
    check_usages(store, expected, &mut commit_max, &mut report);
    for person in store.scan_persons() {
        report.persons += 1;
        match person {
            Ok(read) => commit_max = commit_max.max(read.commit),
            Err(error) => report.found(format!("roster record: {error}")),
        }
    }
    if meta.next_settlement_id.get() <= id_max {
        report.found(format!(
            "the next settlement number {} is not above the largest stored, {id_max}",
            meta.next_settlement_id
        ));
    }
    if meta.last_commit < commit_max {
        report.found(format!(
            "the last commit {} is behind a stored record's commit {commit_max}",
            meta.last_commit
        ));
    }
    for (what, count) in [
        ("claim keys", report.claim_keys),
        ("index entries", report.index_entries),
    ] {
        if count != report.settlements {
            report.found(format!(
                "{count} {what} for {} settlements",
                report.settlements
            ));
        }
    }
    Ok(report)
}

fn add(a: Money, b: Money, report: &mut VerifyReport) -> Money {
    a.checked_add(b).unwrap_or_else(|| {
        report.found(format!("a sum overflows: {a} + {b}"));
        Money::MAX
    })
}

fn check_settlement(
    store: &dyn Scan,
    settlement: &Settlement,
    indexed: &HashSet<u64>,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let id = settlement.id;
    let key = settlement.claim.key();
    match store.settlement_by_claim(key) {
        Ok(Some(found)) if found.value.id == id => {}
        Ok(Some(found)) => report.found(format!(
            "settlement {id}: its claim key {}/{} points to settlement {}",
            key.hospital_id, key.claim_id, found.value.id
        )),
        Ok(None) => report.found(format!("settlement {id}: its claim key is not indexed")),
        Err(StoreError::Corrupt(error)) => report.found(format!("settlement {id}: {error}")),
        Err(error) => return Err(error),
    }
    if !indexed.contains(&id.get()) {
        report.found(format!(
            "settlement {id} is missing from its patient-year index"
        ));
    }
    let claim = &settlement.claim;
    let outcome = &settlement.outcome;
    let paid = [
        claim.insurance_paid(),
        outcome.assistance,
        outcome.patient_pays,
    ]
    .into_iter()
    .try_fold(Money::ZERO, Money::checked_add);
    if paid != Some(claim.total_cost()) {
        report.found(format!(
            "settlement {id}: insurance, assistance and patient do not add up to the total"
        ));
    }
    if outcome.assistance > outcome.in_scope_out_of_pocket {
        report.found(format!(
            "settlement {id}: assistance exceeds the out-of-pocket cost"
        ));
    }
    match &outcome.cap {
        Some(cap) => {
            let room = cap.annual_cap.saturating_sub(cap.used_before);
            // Tilted assistance is paid beyond the cap, from a cap of its own.
            let consumed = outcome.consumed();
            let charged = outcome.assistance.saturating_sub(consumed.tilt);
            if consumed.cap_charged.checked_add(consumed.tilt) != Some(outcome.assistance) {
                report.found(format!(
                    "settlement {id}: the cap charged and tilted assistance do not add up to the assistance"
                ));
            }
            if charged > room || cap.remaining_after != room.saturating_sub(charged) {
                report.found(format!("settlement {id}: the cap arithmetic does not hold"));
            }
        }
        None if outcome.assistance != Money::ZERO => {
            report.found(format!("settlement {id}: paid without a cap"));
        }
        None => {}
    }
    Ok(())
}

fn check_claim_index(store: &dyn Scan, report: &mut VerifyReport) -> Result<(), StoreError> {
    for entry in store.scan_claim_index() {
        report.claim_keys += 1;
        let (key, id) = match entry {
            Ok(entry) => entry,
            Err(error) => {
                report.found(format!("claim index: {error}"));
                continue;
            }
        };
        match store.settlement(id) {
            Ok(Some(found)) if found.value.claim.key() == &key => {}
            Ok(Some(_)) => report.found(format!(
                "claim {}/{} points to settlement {id}, which has another key",
                key.hospital_id, key.claim_id
            )),
            Ok(None) => report.found(format!(
                "claim {}/{} points to missing settlement {id}",
                key.hospital_id, key.claim_id
            )),
            Err(StoreError::Corrupt(error)) => report.found(format!("settlement {id}: {error}")),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn check_day_index(store: &dyn Scan, report: &mut VerifyReport) -> Result<(), StoreError> {
    for entry in store.scan_day_index() {
        report.day_entries += 1;
        let (hospital, day, id) = match entry {
            Ok(entry) => entry,
            Err(error) => {
                report.found(format!("day index: {error}"));
                continue;
            }
        };
        let settlement = match store.settlement(id) {
            Ok(Some(found)) => found.value,
            Ok(None) => {
                report.found(format!("day {day} points to missing settlement {id}"));
                continue;
            }
            Err(StoreError::Corrupt(error)) => {
                report.found(format!("settlement {id}: {error}"));
                continue;
            }
            Err(error) => return Err(error),
        };
        let own = &settlement.claim.key().hospital_id;
        if hospital.as_ref().is_some_and(|h| h != own) {
            report.found(format!(
                "settlement {id} of hospital {own} is indexed under another hospital"
            ));
        } else if !settlement.business_days().any(|d| d == day) {
            report.found(format!(
                "settlement {id} is indexed under day {day}, which is not one of its days"
            ));
        }
    }
    Ok(())
}

fn check_referral_index(store: &dyn Scan, report: &mut VerifyReport) -> Result<(), StoreError> {
    for entry in store.scan_referral_index() {
        report.referral_entries += 1;
        let (day, id, region) = match entry {
            Ok(entry) => entry,
            Err(error) => {
                report.found(format!("referral index: {error}"));
                continue;
            }
        };
        let settlement = match store.settlement(id) {
            Ok(Some(found)) => found.value,
            Ok(None) => {
                report.found(format!("referral index points to missing settlement {id}"));
                continue;
            }
            Err(StoreError::Corrupt(error)) => {
                report.found(format!("settlement {id}: {error}"));
                continue;
            }
            Err(error) => return Err(error),
        };
        let listed =
            settlement.settled_day == day && settlement.listed_referral_region() == Some(region);
        if !listed {
            report.found(format!(
                "settlement {id} is in the referral index under {day} and {region}, but is \
                 not a referral of that day and region that stands"
            ));
        }
    }
    Ok(())
}

fn check_usages(
    store: &dyn Scan,
    mut expected: HashMap<(ResidentId, Year), Expected>,
    commit_max: &mut u64,
    report: &mut VerifyReport,
) {
    for entry in store.scan_usages() {
        report.patient_years += 1;
        let (patient, year, read) = match entry {
            Ok(entry) => entry,
            Err(error) => {
                report.found(format!("running total: {error}"));
                continue;
            }
        };
        *commit_max = (*commit_max).max(read.commit);
        let usage = read.value;
        let sum = expected
            .remove(&(patient.clone(), year))
            .unwrap_or_default();
        if usage.used != sum.used || usage.settlement_count != sum.count {
            report.found(format!(
                "{patient} in {year}: running total {} over {} settlements, but the settlements hold {} over {}",
                usage.used, usage.settlement_count, sum.used, sum.count
            ));
        }
        if let Some(total) = sum.total
            && (
                usage.deductible_used,
                usage.base,
                usage.outpatient_used,
                usage.tilt_used,
                usage.burden,
            ) != (
                total.deductible_used,
                total.base,
                total.outpatient_used,
                total.tilt_used,
                total.burden,
            )
        {
            report.found(format!(
                "{patient} in {year}: the running total's deductible, bands, outpatient, tilt or \
                 burden ({} / {} / {} / {} / {}) is not what its settlements consumed \
                 ({} / {} / {} / {} / {})",
                usage.deductible_used,
                usage.base,
                usage.outpatient_used,
                usage.tilt_used,
                usage.burden,
                total.deductible_used,
                total.base,
                total.outpatient_used,
                total.tilt_used,
                total.burden
            ));
        }
        if usage.patient_pays != sum.patient_pays {
            report.found(format!(
                "{patient} in {year}: the patient paid {} by the running total, {} by the settlements",
                usage.patient_pays, sum.patient_pays
            ));
        }
        if usage.used > sum.cap.unwrap_or(Money::ZERO) {
            report.found(format!(
                "{patient} in {year}: {} used exceeds the cap {}",
                usage.used,
                sum.cap.map_or("(none)".to_owned(), |c| c.to_string())
            ));
        }
    }
    for ((patient, year), sum) in expected {
        if sum.count > 0 {
            report.found(format!(
                "{patient} in {year}: {} settled claims but no running total",
                sum.count
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each test builds a store through the ledger's own batches, then
    //! tampers with it through the store (which stores whatever it is
    //! given) and checks that the verifier names the damage.

    use super::*;
    use crate::{
        domain::{
            BusinessDay, Claim, ClaimInput, PolicyBook, RegionCode, Settlement, SettlementId,
            Timestamp, Usage, UtcOffset, dibao_since_2020,
        },
        rules,
        store::{Batch, SledOptions, SledStore, Store},
    };

    fn claim(patient: &str, claim_id: &str) -> Claim {
        let codes = vec!["N18".to_owned()];
        Claim::parse(&ClaimInput {
            hospital_id: "H001",
            claim_id,
            patient_id: patient,
            admission_date: "2026-03-01",
            discharge_date: "2026-03-20",
            diagnosis_codes: &codes,
            total_cost: "50000",
            in_scope_cost: "42000",
            basic_insurance_paid: "25200",
            critical_illness_paid: "6300",
            claim_kind: Default::default(),
        })
        .unwrap()
    }

    /// A settlement of `claim` charged on top of `used`, as the ledger makes it.
    fn settle(id: u64, claim: Claim, used: Money) -> Settlement {
        let book = PolicyBook::builtin();
        let region = RegionCode::parse("320602").unwrap();
        let policy = book.lookup(region, claim.year()).unwrap();
        let person = dibao_since_2020(claim.patient_id().as_str());
        let assessment = rules::assess(&claim, Some((&person, policy)));
        let outcome = rules::apply_cap(&claim, &assessment, used);
        Settlement {
            id: SettlementId::new(id),
            claim,
            outcome,
            settled_at: Timestamp::from_unix_micros(0),
            settled_day: BusinessDay::of(Timestamp::from_unix_micros(0), UtcOffset::CHINA),
            settled_by: "test".into(),
            referral: None,
            reversal: None,
            application: None,
            superseded_by: None,
        }
    }

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        (dir, store)
    }

    fn commit(
        store: &SledStore,
        settlements: Vec<Settlement>,
        usages: Vec<(ResidentId, Year, Usage)>,
    ) {
        let mut batch = Batch::after(store.meta().unwrap());
        batch.next_settlement_id = settlements
            .iter()
            .map(|s| s.id.next())
            .max()
            .unwrap_or(batch.next_settlement_id);
        batch.settlements = settlements;
        batch.usages = usages;
        store.apply(&batch).unwrap();
        store.flush().unwrap();
    }

    fn patient() -> String {
        crate::domain::resident_id::tests::with_check("32060219600101123")
    }

    fn two_settlements(store: &SledStore) -> (ResidentId, Year) {
        let first = settle(1, claim(&patient(), "A"), Money::ZERO);
        let second = settle(2, claim(&patient(), "B"), first.outcome.assistance);
        let (id, year) = (first.claim.patient_id().clone(), first.claim.year());
        let usage = Usage::default()
            .charge(&first.outcome)
            .unwrap()
            .charge(&second.outcome)
            .unwrap();
        commit(store, vec![first, second], vec![(id.clone(), year, usage)]);
        (id, year)
    }

    #[test]
    fn a_consistent_store_passes() {
        let (_dir, store) = store();
        two_settlements(&store);
        let report = verify(&store).unwrap();
        assert!(report.is_consistent(), "{report}");
        assert_eq!(
            (
                report.settlements,
                report.claim_keys,
                report.index_entries,
                report.patient_years
            ),
            (2, 2, 2, 1)
        );
        assert_eq!(report.assistance_total.to_string(), "14700.00");
        assert!(report.to_string().ends_with("consistent\n"));
    }

    #[test]
    fn a_running_total_that_disagrees_is_named() {
        let (_dir, store) = store();
        let (id, year) = two_settlements(&store);
        let right = store.usage(&id, year).unwrap().unwrap().value;
        let wrong = Usage {
            used: Money::parse("7350").unwrap(),
            settlement_count: 2,
            patient_pays: Money::parse("22300").unwrap(),
            ..right
        };
        commit(&store, Vec::new(), vec![(id, year, wrong)]);
        let report = verify(&store).unwrap();
        assert_eq!(report.discrepancy_count, 1, "{report}");
        assert!(
            report.discrepancies[0].contains("running total 7350.00 over 2 settlements"),
            "{report}"
        );
        assert!(
            !report.to_string().contains(&patient()),
            "the report masks resident IDs"
        );
    }

    #[test]
    fn a_claim_key_used_twice_is_named() {
        let (_dir, store) = store();
        let (id, year) = two_settlements(&store);
        let again = settle(3, claim(&patient(), "A"), Money::ZERO);
        let usage = Usage {
            used: Money::parse("22050").unwrap(),
            settlement_count: 3,
            ..Usage::default()
        };
        commit(&store, vec![again], vec![(id, year, usage)]);
        let report = verify(&store).unwrap();
        let text = report.to_string();
        assert!(text.contains("settlement 0000000000000001: its claim key H001/A points to settlement 0000000000000003"), "{text}");
        assert!(text.contains("2 claim keys for 3 settlements"), "{text}");
    }

    #[test]
    fn overpaid_caps_and_broken_counters_are_named() {
        let (_dir, store) = store();
        let mut overpaid = settle(1, claim(&patient(), "A"), Money::parse("149000").unwrap());
        overpaid.outcome.assistance = Money::parse("7350").unwrap();
        let (id, year) = (overpaid.claim.patient_id().clone(), overpaid.claim.year());
        let usage = Usage {
            used: Money::parse("150001").unwrap(),
            settlement_count: 1,
            ..Usage::default()
        };
        commit(&store, vec![overpaid], vec![(id, year, usage)]);
        let mut rewind = Batch::after(store.meta().unwrap());
        rewind.next_settlement_id = SettlementId::FIRST;
        rewind.persons.push(dibao_since_2020(&patient()));
        store.apply(&rewind).unwrap();
        store.flush().unwrap();
        let text = verify(&store).unwrap().to_string();
        assert!(text.contains("the cap arithmetic does not hold"), "{text}");
        assert!(text.contains("do not add up to the total"), "{text}");
        assert!(text.contains("exceeds the cap 150000.00"), "{text}");
        assert!(text.contains("the next settlement number"), "{text}");
        assert!(text.contains("INCONSISTENT"), "{text}");
    }
}
