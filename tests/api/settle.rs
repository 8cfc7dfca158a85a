//! Quotes, settlements, replays and reversals through the real server.

use medassist::grpc::pb;
use tonic::Code;

use crate::helpers::*;

/// Proves the worked example of DOMAIN.md end to end: the quote changes
/// nothing, the settlement pays 7,350.00 and is readable by number and by key.
#[tokio::test]
async fn the_worked_example_end_to_end() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 11).await;
    let request = worked_example(&patient, "C-0001");

    let (quote, answer) = settled_as(server.settlements().pre_settle(request.clone()).await);
    assert_eq!(answer, pb::SettleAnswer::Quoted);
    assert_eq!(quote.status(), pb::SettlementStatus::Quote);
    assert_eq!(quote.settlement_id, "");
    assert_eq!(quote.settled_at, None);
    assert_eq!(quote.assistance_amount, "7350.00");
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("0.00", 0),
        "a quote records nothing"
    );

    let (settlement, answer) = settled_as(server.settlements().settle(request).await);
    assert_eq!(answer, pb::SettleAnswer::Settled);
    assert_eq!(settlement.status(), pb::SettlementStatus::Settled);
    assert!(settlement.eligible);
    assert_eq!(
        settlement.categories().collect::<Vec<_>>(),
        [pb::Category::MajorDisease]
    );
    assert_eq!(
        settlement.ineligible_reason(),
        pb::IneligibleReason::Unspecified
    );
    assert_eq!(settlement.in_scope_out_of_pocket, "10500.00");
    assert_eq!(settlement.assistance_amount, "7350.00");
    assert_eq!(settlement.patient_pays, "11150.00");
    assert!(!settlement.capped);
    assert_eq!(settlement.annual_cap, "150000.00");
    assert_eq!(settlement.used_before, "0.00");
    assert_eq!(settlement.remaining_after, "142650.00");
    assert!(
        settlement.policy_id.starts_with("320600-1900-"),
        "{}",
        settlement.policy_id
    );
    assert_eq!(settlement.region_code, "320602");
    assert_eq!(settlement.year, 2026);
    assert!(settlement.settled_at.is_some());
    assert_eq!(settlement.total_cost, "50000.00");
    assert_eq!(quote.assistance_amount, settlement.assistance_amount);

    let by_id = server
        .settlements()
        .get_settlement(pb::GetSettlementRequest {
            settlement_id: settlement.settlement_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let by_key = server
        .settlements()
        .get_settlement(pb::GetSettlementRequest {
            hospital_id: "H001".into(),
            claim_id: "C-0001".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id, settlement);
    assert_eq!(by_key, settlement);
}

/// Proves the cap: with 148,000.00 already used, the worked example pays the
/// 2,000.00 left and is marked capped.
#[tokio::test]
async fn the_worked_example_near_the_cap() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 12).await;
    // 0.70 x 211,428.57 = 147,999.999 -> 148,000.00 after rounding up.
    let large = pb::SettleRequest {
        total_cost: "211428.57".into(),
        in_scope_cost: "211428.57".into(),
        basic_insurance_paid: "0".into(),
        critical_illness_paid: "0".into(),
        ..worked_example(&patient, "C-big")
    };
    let (first, _) = settled(server.settlements().settle(large).await);
    assert_eq!(first.assistance_amount, "148000.00");
    let (second, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "C-2"))
            .await,
    );
    assert_eq!(second.used_before, "148000.00");
    assert_eq!(second.assistance_amount, "2000.00");
    assert!(second.capped);
    assert_eq!(second.patient_pays, "16500.00");
    assert_eq!(second.remaining_after, "0.00");
    let (third, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "C-3"))
            .await,
    );
    assert_eq!(
        (third.assistance_amount.as_str(), third.capped),
        ("0.00", true)
    );
    assert!(
        third.eligible,
        "a used-up cap is a settlement with amount 0, not an error"
    );
}

/// Proves a settlement is recorded once: the same request replays it (also
/// when written differently but meaning the same), a changed one is refused.
#[tokio::test]
async fn replays_and_conflicting_replays() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 13).await;
    let request = worked_example(&patient, "C-7");
    let (first, _) = settled(server.settlements().settle(request.clone()).await);

    let (again, replayed) = settled(server.settlements().settle(request.clone()).await);
    assert!(replayed);
    assert_eq!(again, first);
    let same_meaning = pb::SettleRequest {
        total_cost: "50000".into(),
        diagnosis_codes: vec!["n18.500".into(), "N18.500".into()],
        ..request.clone()
    };
    let (again, replayed) = settled(server.settlements().settle(same_meaning).await);
    assert!(replayed);
    assert_eq!(again, first);

    let changed = pb::SettleRequest {
        total_cost: "50000.01".into(),
        ..request
    };
    let status = server.settlements().settle(changed).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains(&first.settlement_id),
        "{}",
        status.message()
    );

    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("7350.00", 1)
    );
}

/// Proves a reversal gives its amount back to the cap for later claims, keeps
/// the record, replays when repeated, and that the key stays used.
#[tokio::test]
async fn reverse_and_reuse_of_the_cap() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 14).await;
    let mut settlements = server.settlements();
    // 0.70 x 300,000.00 = 210,000.00, cut to the 150,000.00 cap.
    let big = pb::SettleRequest {
        total_cost: "300000.00".into(),
        in_scope_cost: "300000.00".into(),
        basic_insurance_paid: "0".into(),
        critical_illness_paid: "0".into(),
        ..worked_example(&patient, "A")
    };
    let (a, _) = settled(settlements.settle(big.clone()).await);
    assert_eq!(
        (a.assistance_amount.as_str(), a.capped),
        ("150000.00", true)
    );
    let (b, _) = settled(settlements.settle(claim_paying_7000(&patient, "B")).await);
    assert_eq!((b.assistance_amount.as_str(), b.capped), ("0.00", true));

    let reverse = pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: "A".into(),
        reason: "bill corrected".into(),
    };
    let (reversed, answer) = settled_as(settlements.reverse(reverse.clone()).await);
    assert_eq!(answer, pb::SettleAnswer::Reversed);
    assert_eq!(reversed.status(), pb::SettlementStatus::Reversed);
    assert_eq!(reversed.reverse_reason, "bill corrected");
    assert!(reversed.reversed_at.is_some());
    assert_eq!(
        reversed.assistance_amount, a.assistance_amount,
        "the record keeps what was paid"
    );
    assert_eq!(reversed.settlement_id, a.settlement_id);

    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(usage.used, "0.00");
    assert_eq!(usage.remaining, "150000.00");
    assert_eq!(
        usage.settlement_count, 1,
        "B still counts, with its zero amount"
    );

    let (c, _) = settled(settlements.settle(claim_paying_7000(&patient, "C")).await);
    assert_eq!((c.assistance_amount.as_str(), c.capped), ("7000.00", false));
    assert_eq!(c.used_before, "0.00");

    let (again, answer) = settled_as(settlements.reverse(reverse).await);
    assert_eq!(answer, pb::SettleAnswer::AlreadyReversed);
    assert_eq!(again, reversed);
    let (replay_of_a, answer) = settled_as(settlements.settle(big).await);
    assert_eq!(
        answer,
        pb::SettleAnswer::AlreadyReversed,
        "the key is used forever, and its replay is not read as a payment"
    );
    assert_eq!(replay_of_a.status(), pb::SettlementStatus::Reversed);

    let unknown = pb::ReverseRequest {
        claim_id: "nope".into(),
        ..reversed_request()
    };
    assert_eq!(
        settlements.reverse(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!(
        (usage.used.as_str(), usage.settlement_count),
        ("7000.00", 2)
    );
}

fn reversed_request() -> pb::ReverseRequest {
    pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: "A".into(),
        reason: "duplicate".into(),
    }
}

/// Proves a patient off the roster is settled (and recorded) as not enrolled
/// with nothing paid and no cap fields.
#[tokio::test]
async fn a_patient_off_the_roster_is_settled_as_not_enrolled() {
    let server = TestServer::start().await;
    let stranger = resident_id("1960-01-01", 15);
    let (settlement, _) = settled(
        server
            .settlements()
            .settle(worked_example(&stranger, "X-1"))
            .await,
    );
    assert!(!settlement.eligible);
    assert_eq!(
        settlement.ineligible_reason(),
        pb::IneligibleReason::NotEnrolled
    );
    assert_eq!(settlement.assistance_amount, "0.00");
    assert_eq!(settlement.patient_pays, "18500.00");
    for empty in [
        &settlement.annual_cap,
        &settlement.used_before,
        &settlement.remaining_after,
        &settlement.policy_id,
        &settlement.region_code,
    ] {
        assert_eq!(empty, "");
    }
    assert!(
        !settlement.settlement_id.is_empty(),
        "it is recorded like any other"
    );
    let status = server
        .usage()
        .get_annual_usage(pb::GetAnnualUsageRequest {
            patient_id: stranger,
            year: 2026,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// Proves "no qualifying category" is a recorded settlement with its reason
/// and a zero amount that still counts.
#[tokio::test]
async fn no_qualifying_category_is_a_normal_settlement() {
    let server = TestServer::start().await;
    let patient = server.enroll("1970-06-01", 16).await;
    let flu = pb::SettleRequest {
        diagnosis_codes: vec!["J10.1".into()],
        ..worked_example(&patient, "F-1")
    };
    let (settlement, _) = settled(server.settlements().settle(flu).await);
    assert!(!settlement.eligible);
    assert_eq!(
        settlement.ineligible_reason(),
        pb::IneligibleReason::NoQualifyingCategory
    );
    assert_eq!(settlement.assistance_amount, "0.00");
    assert_eq!(settlement.annual_cap, "150000.00");
    let usage = server.annual_usage(&patient, 2026).await;
    assert_eq!((usage.used.as_str(), usage.settlement_count), ("0.00", 1));
}

/// Proves a roster region without a policy is FAILED_PRECONDITION naming it.
#[tokio::test]
async fn a_region_without_a_policy_is_a_failed_precondition() {
    let server = TestServer::start().await;
    let patient = resident_id("1960-01-01", 17);
    let person = pb::Person {
        region_code: "320500".into(),
        ..dibao_person(&patient)
    };
    server
        .roster()
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(person),
        })
        .await
        .unwrap();
    let status = server
        .settlements()
        .settle(worked_example(&patient, "S-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("320500"), "{}", status.message());
    let status = server
        .settlements()
        .pre_settle(worked_example(&patient, "S-1"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}
