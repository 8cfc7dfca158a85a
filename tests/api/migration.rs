//! A data directory written by the previous version (layout 1: no business
//! days, names, referrals or payments total; one commit only in its journal)
//! served by the real binary: brought up to date once at start-up, saying so
//! in the log, then reconciled, exported and verified through real clients.

use medassist::{
    domain::{
        Claim, ClaimInput, EnrollmentInput, EnrollmentKind, ExitKind, Money, Person, PersonInput,
        PolicyBook, Reason, RegionCode, ResidentId, SettlementId, Year,
    },
    grpc::pb::{self, reconciliation_service_client::ReconciliationServiceClient},
    rules,
    store::{
        SledStore,
        legacy::{BatchV1, ReversalV1, SettlementV1, UsageV1},
    },
};

use crate::helpers::*;

fn person(id: &ResidentId) -> Person {
    Person::parse(&PersonInput {
        patient_id: id.as_str(),
        name: "张三",
        region_code: "320602",
        enrollments: vec![EnrollmentInput {
            kind: Some(EnrollmentKind::Dibao),
            valid_from: "2020-01-01",
            valid_to: "",
            exit: Some(ExitKind::Plain),
        }],
        psychiatric_disability_grade: 0,
        paralysis_certified: false,
    })
    .unwrap()
}

/// The worked example (7,350.00 of assistance, 11,150.00 left to pay) as
/// version 1 recorded it, on top of `used` of the year's cap.
fn old(id: u64, hospital: &str, patient: &ResidentId, used: Money, moment: &str) -> SettlementV1 {
    let codes = vec!["N18.500".to_owned()];
    let claim = Claim::parse(&ClaimInput {
        hospital_id: hospital,
        claim_id: &format!("OLD-{id}"),
        patient_id: patient.as_str(),
        admission_date: "2026-03-01",
        discharge_date: "2026-03-20",
        diagnosis_codes: &codes,
        total_cost: "50000.00",
        in_scope_cost: "42000.00",
        basic_insurance_paid: "25200.00",
        critical_illness_paid: "6300.00",
        claim_kind: Default::default(),
    })
    .unwrap();
    let book = PolicyBook::builtin();
    let policy = book
        .lookup(RegionCode::parse("320602").unwrap(), claim.year())
        .unwrap();
    let roster = person(patient);
    let outcome = rules::apply_cap(
        &claim,
        &rules::assess(&claim, Some((&roster, policy))),
        used,
    );
    SettlementV1 {
        id: SettlementId::new(id),
        claim,
        outcome,
        settled_at: at(moment),
        reversal: None,
    }
}

fn seven_350(count: u32) -> UsageV1 {
    UsageV1 {
        used: Money::from_fen(735_000 * i64::from(count)).unwrap(),
        settlement_count: count,
    }
}

fn totals(settled: i32, assistance: &str, reversed: i32, reversed_total: &str) -> pb::DayTotals {
    pb::DayTotals {
        settled_count: settled,
        assistance_total: assistance.into(),
        reversed_count: reversed,
        reversed_total: reversed_total.into(),
    }
}

/// Proves an older store is brought up to date once at start-up (the log
/// says so), with its journal's last commit replayed in the old encoding:
/// the day index answers for its settlements by the business day of their
/// moments in Beijing (15:59:59 and 16:00:00 UTC fall on two days, a
/// reversal on its own day), payment totals are rebuilt, and `verify` finds
/// the store consistent.
#[tokio::test]
async fn a_store_of_the_previous_version_is_migrated_and_reconciles() {
    let dir = tempfile::TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let a = ResidentId::parse(&resident_id("1960-01-01", 901)).unwrap();
    let b = ResidentId::parse(&resident_id("1961-01-01", 902)).unwrap();
    let year = Year::parse(2026).unwrap();
    let first = old(1, "H001", &a, Money::ZERO, "2026-11-30T15:59:59Z");
    let mut second = old(2, "H001", &b, Money::ZERO, "2026-11-30T16:00:00Z");
    second.reversal = Some(ReversalV1 {
        at: at("2026-12-02T01:00:00Z"),
        reason: Reason::parse("duplicate bill").unwrap(),
    });
    let third = old(
        3,
        "H002",
        &a,
        first.outcome.assistance,
        "2026-11-30T10:00:00Z",
    );
    let in_tree = BatchV1 {
        commit: 1,
        next_settlement_id: SettlementId::new(3),
        settlements: vec![first, second],
        usages: vec![
            (a.clone(), year, seven_350(1)),
            (b.clone(), year, UsageV1::default()),
        ],
        persons: vec![person(&a), person(&b)],
    };
    let in_journal = BatchV1 {
        commit: 2,
        next_settlement_id: SettlementId::new(4),
        settlements: vec![third],
        usages: vec![(a.clone(), year, seven_350(2))],
        persons: Vec::new(),
    };
    SledStore::write_version_1(&data_dir, &[in_tree], &[in_journal]).unwrap();

    let server = ServerProcess::start(&data_dir, &[]).await;
    let mut reconciliation = ReconciliationServiceClient::new(server.channel.clone());
    let mut reconcile = async |hospital: &str, date: &str| {
        reconciliation
            .reconcile_day(pb::ReconcileDayRequest {
                hospital_id: hospital.into(),
                date: date.into(),
                hospital_totals: Some(totals(0, "0", 0, "0")),
            })
            .await
            .unwrap()
            .into_inner()
            .fund_totals
            .unwrap()
    };
    assert_eq!(
        reconcile("H001", "2026-11-30").await,
        totals(1, "7350.00", 0, "0.00")
    );
    assert_eq!(
        reconcile("H001", "2026-12-01").await,
        totals(1, "7350.00", 0, "0.00")
    );
    assert_eq!(
        reconcile("H001", "2026-12-02").await,
        totals(0, "0.00", 1, "7350.00")
    );
    assert_eq!(
        reconcile("H002", "2026-11-30").await,
        totals(1, "7350.00", 0, "0.00"),
        "the commit only in the journal was replayed and indexed"
    );
    let mut export = ReconciliationServiceClient::new(server.channel.clone())
        .export_settlements(pb::ExportSettlementsRequest {
            from_date: "2026-11-30".into(),
            to_date: "2026-12-02".into(),
            hospital_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut exported = Vec::new();
    while let Some(s) = export.message().await.unwrap() {
        assert_eq!(s.settled_by, "", "names were never recorded");
        assert!(!s.referred, "referral did not exist");
        exported.push(s.settlement_id);
    }
    assert_eq!(
        exported,
        ["0000000000000001", "0000000000000002", "0000000000000003"]
    );
    let usage =
        medassist::grpc::pb::usage_service_client::UsageServiceClient::new(server.channel.clone())
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: a.as_str().to_owned(),
                year: 2026,
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        usage.patient_pays_total, "22300.00",
        "rebuilt from the settlements"
    );

    drop((export, reconcile));
    let log = server.terminate().await.join("\n");
    assert!(log.contains("store written with layout version 1"), "{log}");
    assert!(
        log.contains("store brought up to layout version 4"),
        "{log}"
    );
    let report = verify_dir(&dir);
    assert!(report.is_consistent(), "{report}");
    assert_eq!(report.day_entries, 8);

    let again = ServerProcess::start(&data_dir, &[]).await;
    // Served from the migrated store after a restart, without migrating again.
    let still = ReconciliationServiceClient::new(again.channel.clone())
        .reconcile_day(pb::ReconcileDayRequest {
            hospital_id: "H001".into(),
            date: "2026-11-30".into(),
            hospital_totals: Some(totals(1, "7350", 0, "0")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(still.matched);
    let log = again.terminate().await.join("\n");
    assert!(!log.contains("layout version 1"), "migrated once: {log}");
}
