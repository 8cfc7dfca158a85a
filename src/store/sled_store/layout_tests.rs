//! Data written before the 2021 framework's fields still loads: settlements
//! and running totals in the tree, and batches in the journal and in
//! snapshots, each read as it was written and brought up to date; and what
//! is written now reads back whole, through a store that is closed and
//! opened again. Settlements written before applications load as window
//! settlements. A layout 2 or 3 store is marked 4, so builds that would drop
//! the newer fields refuse it; a newer layout is refused, and nothing
//! rebuilt.
//! A commit's keys are written in the order readers rely on.

use super::*;
use crate::store::legacy::TermsV3;
use crate::{
    domain::{
        Application, Approval, Claim, ClaimInput, ClaimKind, ClaimKindSent, Date, Outcome,
        PaymentRef, Reason, RegionCode, Timestamp, TopUp, UtcOffset,
    },
    rules,
};

fn claim(kind: ClaimKind) -> Claim {
    let codes = vec!["N18".to_owned()];
    let patient = ResidentId::compose(
        RegionCode::parse("320602").unwrap(),
        Date::parse("1960-01-01").unwrap(),
        7,
    );
    Claim::parse(&ClaimInput {
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
        claim_kind: ClaimKindSent::Known(kind),
    })
    .unwrap()
}

/// A settlement of today, with a breakdown, of an outpatient claim.
fn today() -> Settlement {
    let claim = claim(ClaimKind::OutpatientChronic);
    let outcome = rules::apply_cap(&claim, &rules::assess(&claim, None), Money::ZERO);
    assert!(outcome.breakdown.is_some());
    let at = Timestamp::from_unix_micros(1_767_225_600_000_000);
    Settlement {
        id: SettlementId::new(9),
        claim,
        outcome,
        settled_at: at,
        settled_day: BusinessDay::of(at, UtcOffset::CHINA),
        settled_by: "his".into(),
        referral: None,
        reversal: None,
        application: None,
        superseded_by: None,
    }
}

/// An approved top-up application, as layout 4 stores it (and marked as
/// superseded, which only window settlements are, to carry every field).
fn applied() -> Settlement {
    let now = today();
    Settlement {
        application: Some(Application {
            documents: Reason::parse("case 7, scanned bills").unwrap(),
            submitted_by: "token:0123456789abcdef".into(),
            approval: Some(Approval {
                at: now.settled_at,
                day: now.settled_day,
                by: "reviewer".into(),
                payment_ref: PaymentRef::parse("PAY-7").unwrap(),
            }),
            closing: None,
            top_up: Some(TopUp {
                settlement_id: SettlementId::new(3),
                key: now.claim.key().clone(),
                window_paid: Money::parse("120.50").unwrap(),
            }),
        }),
        superseded_by: Some(SettlementId::new(11)),
        ..now
    }
}

/// The same settlement as layout 3 stored it, before applications.
fn before_applications(settlement: &Settlement) -> SettlementV3 {
    SettlementV3(
        SettlementV2 {
            claim: settlement.claim.clone(),
            outcome: settlement.outcome.clone(),
            ..before(settlement)
        },
        TermsV3 {
            claim_kind: settlement.claim.kind(),
            breakdown: settlement.outcome.breakdown.clone(),
        },
    )
}

/// The same settlement as layout 2 stored it before the framework.
fn before(settlement: &Settlement) -> SettlementV2 {
    SettlementV2 {
        id: settlement.id,
        claim: settlement.claim.clone().with_kind(ClaimKind::Inpatient),
        outcome: Outcome {
            breakdown: None,
            ..settlement.outcome.clone()
        },
        settled_at: settlement.settled_at,
        settled_day: settlement.settled_day,
        settled_by: settlement.settled_by.clone(),
        referral: settlement.referral,
        reversal: settlement.reversal.clone(),
    }
}

fn usage_v2() -> UsageV2 {
    UsageV2 {
        used: Money::parse("7350").unwrap(),
        settlement_count: 1,
        patient_pays: Money::parse("11150").unwrap(),
    }
}

/// Proves a settlement and a running total stored before the framework
/// read back as an inpatient claim without breakdown and a total that
/// consumed nothing else, a settlement stored before applications as a
/// window settlement, while today's (an application too) read back whole.
#[test]
fn tree_values_of_both_layouts_load() {
    let now = today();
    let old = before(&now);
    let read: Versioned<Settlement> = versioned(&encode(&(5u64, &old)).unwrap()).unwrap();
    assert_eq!(read.commit, 5);
    assert_eq!(read.value.claim.kind(), ClaimKind::Inpatient);
    assert_eq!(read.value.outcome.breakdown, None);
    assert_eq!(
        read.value.outcome.consumed().cap_charged,
        now.outcome.assistance
    );
    let read: Versioned<Settlement> = versioned(&encode(&(6u64, &now)).unwrap()).unwrap();
    assert_eq!((read.commit, read.value), (6, now.clone()));
    let read: Versioned<Settlement> =
        versioned(&encode(&(7u64, before_applications(&now))).unwrap()).unwrap();
    assert_eq!(
        (read.commit, read.value),
        (7, now),
        "a layout 3 record is a window settlement"
    );
    let read: Versioned<Settlement> = versioned(&encode(&(8u64, applied())).unwrap()).unwrap();
    assert_eq!((read.commit, read.value), (8, applied()));

    let read: Versioned<Usage> = versioned(&encode(&(3u64, usage_v2())).unwrap()).unwrap();
    assert_eq!(read.value.used.to_string(), "7350.00");
    assert_eq!(read.value.deductible_used, Money::ZERO);
    let full = Usage {
        deductible_used: Money::parse("500").unwrap(),
        base: Money::parse("9500").unwrap(),
        burden: Money::parse("1").unwrap(),
        ..usage_v2().upgrade()
    };
    let read: Versioned<Usage> = versioned(&encode(&(4u64, full)).unwrap()).unwrap();
    assert_eq!(read.value, full);
    // Damage is still damage, not an old layout.
    assert!(versioned::<Settlement>(&[1, 2, 3]).is_err());
}

/// Proves journal (and snapshot) records of every layout decode: today's by
/// its tag (an application included), layout 3's by its own, one written
/// before the framework, and one before audit records.
#[test]
fn batches_of_every_layout_decode() {
    let now = today();
    let patient = now.claim.patient_id().clone();
    let year = now.claim.year();
    let mut batch = Batch::after(Meta {
        last_commit: 41,
        next_settlement_id: SettlementId::new(9),
    });
    batch.settlements.push(now.clone());
    batch.usages.push((
        patient.clone(),
        year,
        Usage::default().charge(&now.outcome).unwrap(),
    ));
    batch.settlements.push(applied());
    let read = decode_batch(&encode(&batch).unwrap()).unwrap();
    assert_eq!(read.commit, 42);
    assert_eq!(read.settlements, vec![now.clone(), applied()]);
    assert_eq!(read.usages, batch.usages);

    let layout_3 = BatchV3 {
        tag: BATCH_TAG_V3,
        commit: 42,
        next_settlement_id: SettlementId::new(10),
        settlements: vec![before_applications(&now)],
        usages: batch.usages.clone(),
        persons: Vec::new(),
        audit: Vec::new(),
    };
    let read = decode_batch(&encode(&layout_3).unwrap()).unwrap();
    assert_eq!(read.settlements, vec![now.clone()]);
    assert_eq!(read.usages, batch.usages);

    let old = BatchV2 {
        commit: 42,
        next_settlement_id: SettlementId::new(10),
        settlements: vec![before(&now)],
        usages: vec![(patient.clone(), year, usage_v2())],
        persons: Vec::new(),
        audit: Vec::new(),
    };
    let read = decode_batch(&encode(&old).unwrap()).unwrap();
    assert_eq!(read.commit, 42);
    assert_eq!(read.settlements[0].claim.kind(), ClaimKind::Inpatient);
    assert_eq!(read.settlements[0].outcome.breakdown, None);
    assert_eq!(read.usages[0].2, usage_v2().upgrade());

    let older = BatchWithoutAudit {
        commit: 43,
        next_settlement_id: SettlementId::new(10),
        settlements: vec![before(&now)],
        usages: vec![(patient, year, usage_v2())],
        persons: Vec::new(),
    };
    let read = decode_batch(&encode(&older).unwrap()).unwrap();
    assert_eq!((read.commit, read.settlements.len()), (43, 1));
    assert!(read.audit.is_empty());
}

/// Proves what the ledger writes now reads back whole after the store is
/// closed and opened again: the claim's kind, the breakdown and the whole
/// running total.
#[test]
fn today_s_records_survive_a_restart() {
    let dir = tempfile::TempDir::new().unwrap();
    let now = today();
    let key = (now.claim.patient_id().clone(), now.claim.year());
    let usage = Usage {
        deductible_used: Money::parse("12.34").unwrap(),
        ..Usage::default().charge(&now.outcome).unwrap()
    };
    {
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        let mut batch = Batch::after(store.meta().unwrap());
        batch.next_settlement_id = now.id.next();
        batch.settlements.push(now.clone());
        batch.usages.push((key.0.clone(), key.1, usage));
        store.apply(&batch).unwrap();
        store.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    assert_eq!(store.settlement(now.id).unwrap().unwrap().value, now);
    assert_eq!(store.usage(&key.0, key.1).unwrap().unwrap().value, usage);
}

/// Proves rows of the shared store (JSON) written before the framework read
/// back the same way: a settlement without its `terms`, a running total
/// without its new fields.
#[test]
fn json_rows_written_before_load() {
    let now = today();
    let old = serde_json::to_value(before(&now)).unwrap();
    assert!(old.get("terms").is_none());
    let read: Settlement = serde_json::from_value(old).unwrap();
    assert_eq!(read.claim.kind(), ClaimKind::Inpatient);
    assert_eq!(read.outcome.breakdown, None);
    let json = serde_json::to_value(&now).unwrap();
    assert_eq!(serde_json::from_value::<Settlement>(json).unwrap(), now);
    let old = serde_json::to_value(usage_v2()).unwrap();
    let read: Usage = serde_json::from_value(old).unwrap();
    assert_eq!(read, usage_v2().upgrade());
}

/// Sets the layout version of the closed store in `dir`, as the build that
/// wrote it would have.
fn set_layout(dir: &Path, version: u32) {
    assert!(recovery::await_sled_released(dir));
    let db = open_sled(dir, SledOptions::default()).unwrap();
    db.insert(META_SCHEMA, encode(&version).unwrap()).unwrap();
    db.flush().unwrap();
}

/// The layout version sled holds in `dir`, and whether it holds settlement `id`.
fn layout_of(dir: &Path, id: SettlementId) -> (u32, bool) {
    assert!(recovery::await_sled_released(dir));
    let db = open_sled(dir, SledOptions::default()).unwrap();
    let held = db.get(settlement_key(id)).unwrap().is_some();
    (stored_schema(&db).unwrap(), held)
}

/// Proves a store of layout 2 or 3 is marked 4 when this build opens it,
/// with its records read as before, and that a layout newer than this
/// build's is refused by name as unsupported, not taken for damage: sled's
/// files are neither rebuilt nor removed.
#[test]
fn layouts_2_and_3_are_marked_4_and_a_newer_one_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let now = today();
    {
        let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
        let mut batch = Batch::after(store.meta().unwrap());
        batch.next_settlement_id = now.id.next();
        batch.settlements.push(now.clone());
        store.apply(&batch).unwrap();
        store.flush().unwrap();
    }
    for older in [BEFORE_CLASSES, BEFORE_APPLICATIONS] {
        set_layout(dir.path(), older);
        {
            let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
            assert_eq!(store.settlement(now.id).unwrap().unwrap().value, now);
        }
        assert_eq!(layout_of(dir.path(), now.id), (SCHEMA_VERSION, true));
    }

    set_layout(dir.path(), SCHEMA_VERSION + 1);
    let refused = SledStore::open(dir.path(), SledOptions::default())
        .err()
        .expect("a newer layout is refused");
    assert!(matches!(refused, StoreError::Unsupported(_)), "{refused}");
    assert!(
        refused.to_string().contains("layout version 5"),
        "{refused}"
    );
    assert_eq!(layout_of(dir.path(), now.id), (SCHEMA_VERSION + 1, true));
}

/// Proves the order `Writes` promises its readers, now that a commit is
/// written key by key and a reader may see part of one: a settlement's
/// record before every index entry that points to it (claim, patient-year,
/// hospital-day, day, referral), and the meta keys (the last commit) after
/// every other key of the commit.
#[test]
fn a_commit_writes_each_record_before_its_index_entries_and_the_commit_number_last() {
    // Referred, so it has every kind of index entry.
    let mut settlement = today();
    settlement.referral = Some(crate::domain::ReferralReason::CapReached);
    let patient = settlement.claim.patient_id().clone();
    let year = settlement.claim.year();
    let batch = Batch {
        commit: 7,
        next_settlement_id: SettlementId::new(10),
        settlements: vec![settlement.clone()],
        usages: vec![(patient.clone(), year, Usage::default())],
        persons: Vec::new(),
        audit: Vec::new(),
    };
    let writes = SledStore::writes_of(&batch).unwrap();
    let keys: Vec<&[u8]> = writes.0.iter().map(|(key, _)| key.as_ref()).collect();
    let at = |key: &[u8]| {
        keys.iter()
            .position(|k| *k == key)
            .unwrap_or_else(|| panic!("{key:?} is not written"))
    };
    let record = at(&settlement_key(settlement.id));
    let mut index = patient_year_key(&patient, year);
    index.extend_from_slice(&settlement.id.get().to_be_bytes());
    let mut pointers = vec![claim_key(settlement.claim.key()), index];
    pointers.extend(day_keys(&settlement));
    pointers.push(referral_key(settlement.settled_day, settlement.id));
    assert_eq!(
        pointers.len(),
        5,
        "claim, patient-year, two day entries, referral"
    );
    for pointer in pointers {
        assert!(
            record < at(&pointer),
            "{pointer:?} is written before its record"
        );
    }
    let n = keys.len();
    assert_eq!(&keys[n - 2..], [META_COMMIT, META_NEXT_ID]);
    assert!(keys[..n - 2].iter().all(|k| !k.starts_with(b"M")));
}
