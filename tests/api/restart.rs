//! Data survives a restart on the same directory.

use medassist::{config::Config, grpc::pb};

use crate::helpers::*;

/// Proves settlements, reversals, totals and the roster are read back
/// identically after a graceful restart, that retries still replay, and that
/// settlement numbers keep increasing.
#[tokio::test]
async fn data_survives_a_restart() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 61).await;
    let (kept, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "D-1"))
            .await,
    );
    settled(
        server
            .settlements()
            .settle(claim_paying_7000(&patient, "D-2"))
            .await,
    );
    let reverse = pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: "D-2".into(),
        reason: "wrong patient".into(),
    };
    let (reversed, _) = settled(server.settlements().reverse(reverse.clone()).await);
    let usage_request = pb::GetAnnualUsageRequest {
        patient_id: patient.clone(),
        year: 2026,
    };
    let usage_before = server
        .usage()
        .get_annual_usage(usage_request.clone())
        .await
        .unwrap()
        .into_inner();
    let person_before = server
        .roster()
        .get_person(pb::GetPersonRequest {
            patient_id: patient.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    let dir = server.stop().await;
    let server = TestServer::start_with(dir, Config::default()).await;

    let get = |claim: &str| pb::GetSettlementRequest {
        hospital_id: "H001".into(),
        claim_id: claim.into(),
        ..Default::default()
    };
    assert_eq!(
        server
            .settlements()
            .get_settlement(get("D-1"))
            .await
            .unwrap()
            .into_inner(),
        kept
    );
    assert_eq!(
        server
            .settlements()
            .get_settlement(get("D-2"))
            .await
            .unwrap()
            .into_inner(),
        reversed
    );
    assert_eq!(
        server
            .usage()
            .get_annual_usage(usage_request)
            .await
            .unwrap()
            .into_inner(),
        usage_before
    );
    assert_eq!(
        server
            .roster()
            .get_person(pb::GetPersonRequest {
                patient_id: patient.clone()
            })
            .await
            .unwrap()
            .into_inner(),
        person_before
    );
    let (replay, replayed) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "D-1"))
            .await,
    );
    assert!(replayed);
    assert_eq!(replay, kept);
    let (again, replayed) = settled(server.settlements().reverse(reverse).await);
    assert!(replayed);
    assert_eq!(again, reversed);
    let (new, _) = settled(
        server
            .settlements()
            .settle(worked_example(&patient, "D-3"))
            .await,
    );
    assert!(
        new.settlement_id > reversed.settlement_id,
        "numbers continue after a restart"
    );
    assert_eq!(new.used_before, "7350.00");
    server.stop().await;
}

/// Proves a retry replays the stored settlement even after a restart under a
/// policy file that no longer covers the patient's region and year: the key
/// keeps its first answer whatever the configuration says now.
#[tokio::test]
async fn a_retry_replays_after_its_policy_is_gone() {
    let server = TestServer::start().await;
    let patient = server.enroll("1960-01-01", 62).await;
    let request = worked_example(&patient, "P-GONE");
    let (first, _) = settled(server.settlements().settle(request.clone()).await);
    let dir = server.stop().await;

    let only_later_years = Config::parse(
        r#"
        [[policy]]
        region_code = "320600"
        year = 2027
        assistance_ratio = "0.70"
        cap_fraction = "0.50"
        basic_insurance_annual_cap = "300000.00"
        "#,
    )
    .unwrap();
    let server = TestServer::start_with(dir, only_later_years).await;
    let (again, replayed) = settled(server.settlements().settle(request.clone()).await);
    assert!(replayed);
    assert_eq!(again, first);
    let changed = pb::SettleRequest {
        total_cost: "50000.01".into(),
        ..request
    };
    let status = server.settlements().settle(changed).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    let new_claim = worked_example(&patient, "P-NEW");
    let status = server.settlements().settle(new_claim).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    server.stop().await;
}
