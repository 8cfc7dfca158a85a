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
