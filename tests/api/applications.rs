//! Assistance on application (issue 21, item 3), through real clients: a
//! caseworker submits a stay no window settled; it is worked out as a
//! window settlement would be, reserved against the cap, and paid only when
//! another principal approves it (four eyes), with the payment reference;
//! rejection and withdrawal give the reservation back; a stay is settled
//! once, at the window or on application; the hospital's day totals count
//! its window only, while its day's list shows both with their channel.

use std::sync::Arc;

use medassist::{
    auth::{Access, Role},
    config::Config,
    grpc::pb::{
        self, application_service_client::ApplicationServiceClient,
        reconciliation_service_client::ReconciliationServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
};
use tempfile::TempDir;
use tonic::{
    Code,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::helpers::*;

/// The stays are submitted and decided on this day (the test clock's).
const TODAY: &str = "2026-04-02";

fn applications(
    channel: &Channel,
    token: &'static str,
) -> ApplicationServiceClient<InterceptedService<Channel, impl Interceptor>> {
    ApplicationServiceClient::with_interceptor(channel.clone(), bearer(Some(token)))
}

/// An application for `claim` of `patient` treated at H009, a hospital
/// with no window of its own.
fn stay(patient: &str, claim: &str) -> pb::SubmitApplicationRequest {
    pb::SubmitApplicationRequest {
        claim: Some(pb::SettleRequest {
            hospital_id: "H009".into(),
            ..worked_example(patient, claim)
        }),
        documents: format!("case 2026-{claim}, scanned bills"),
    }
}

fn key(claim: &str) -> (String, String) {
    ("H009".to_owned(), claim.to_owned())
}

fn approval(claim: &str, payment_ref: &str) -> pb::ApproveApplicationRequest {
    let (hospital_id, claim_id) = key(claim);
    pb::ApproveApplicationRequest {
        hospital_id,
        claim_id,
        payment_ref: payment_ref.into(),
    }
}

fn closing(claim: &str, reason: &str) -> pb::CloseApplicationRequest {
    let (hospital_id, claim_id) = key(claim);
    pb::CloseApplicationRequest {
        hospital_id,
        claim_id,
        reason: reason.into(),
    }
}

fn state(settlement: &pb::Settlement) -> pb::ApplicationState {
    settlement.application.as_ref().unwrap().state()
}

/// Proves the workflow end to end, the four-eyes rule, the reservation and
/// its release, a stay never settled twice, region limits and the
/// hospital's day.
#[tokio::test]
async fn an_application_is_reserved_then_paid_by_a_second_pair_of_eyes() {
    let dir = Arc::new(TempDir::new().unwrap());
    let config = {
        let mut c = TestServer::config_for(&dir);
        c.config = Config {
            access: Access::Tokens(vec![
                token_entry("t-h001", Role::Hospital, Some("H001")),
                token_entry("t-h009", Role::Hospital, Some("H009")),
                token_entry("t-roster", Role::RosterAdmin, None),
                token_entry("t-auditor", Role::Auditor, None),
                token_entry("t-metrics", Role::Metrics, None),
                token_entry_in("t-case-a", Role::Caseworker, None, &["320600"]),
                token_entry_in("t-case-b", Role::Caseworker, None, &["320602"]),
                token_entry_in("t-case-out", Role::Caseworker, None, &["320100"]),
            ]),
            ..Config::default()
        };
        c.clock = medassist::clock::ManualClock::new(at("2026-04-02T02:00:00Z"));
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c
    };
    let server = TestServer::launch(Arc::clone(&dir), config, None).await;
    let channel = server.channel();
    let mut roster =
        RosterServiceClient::with_interceptor(channel.clone(), bearer(Some("t-roster")));
    let patient = resident_id("1961-02-03", 41);
    roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .unwrap();
    let used = || async {
        UsageServiceClient::with_interceptor(channel.clone(), bearer(Some("t-auditor")))
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: patient.clone(),
                year: 2026,
            })
            .await
            .unwrap()
            .into_inner()
            .used
    };

    // Submitted: worked out as the window would, and reserved.
    let submitted = applications(&channel, "t-case-a")
        .submit_application(stay(&patient, "A-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submitted.channel(), pb::Channel::Application);
    assert_eq!(state(&submitted), pb::ApplicationState::Pending);
    assert_eq!(submitted.assistance_amount, "7350.00");
    assert_eq!(submitted.settled_by, "test t-case-a");
    assert_eq!(
        submitted.application.as_ref().unwrap().documents,
        "case 2026-A-1, scanned bills"
    );
    assert_eq!(
        used().await,
        "7350.00",
        "the reservation counts against the cap"
    );
    let again = applications(&channel, "t-case-a")
        .submit_application(stay(&patient, "A-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.settlement_id, submitted.settlement_id,
        "a retry answers the same"
    );
    assert_eq!(used().await, "7350.00");

    // A stay is settled once: not by another caseworker, not at the window.
    let twice = applications(&channel, "t-case-b")
        .submit_application(stay(&patient, "A-1"))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice:?}");
    let mut h009 =
        SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some("t-h009")));
    let window = h009
        .settle(pb::SettleRequest {
            hospital_id: "H009".into(),
            ..worked_example(&patient, "A-1")
        })
        .await
        .unwrap_err();
    assert_eq!(window.code(), Code::AlreadyExists, "{window:?}");
    assert!(window.message().contains("on application"), "{window:?}");
    let reversal = h009
        .reverse(pb::ReverseRequest {
            hospital_id: "H009".into(),
            claim_id: "A-1".into(),
            reason: "not ours".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reversal.code(), Code::FailedPrecondition, "{reversal:?}");
    let mut h001 =
        SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some("t-h001")));
    settled(h001.settle(worked_example(&patient, "W-1")).await);
    let over_window = applications(&channel, "t-case-a")
        .submit_application(pb::SubmitApplicationRequest {
            claim: Some(worked_example(&patient, "W-1")),
            documents: "case W-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(over_window.code(), Code::AlreadyExists, "{over_window:?}");
    assert_eq!(used().await, "14700.00");

    // Four eyes: the submitter may neither approve nor reject.
    for refused in [
        applications(&channel, "t-case-a")
            .approve_application(approval("A-1", "PAY-1"))
            .await
            .unwrap_err(),
        applications(&channel, "t-case-a")
            .reject_application(closing("A-1", "looks wrong"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("four eyes"), "{refused:?}");
    }
    let outside = applications(&channel, "t-case-out")
        .approve_application(approval("A-1", "PAY-1"))
        .await
        .unwrap_err();
    assert_eq!(
        outside.code(),
        Code::NotFound,
        "another region's caseworker sees nothing"
    );
    let approved = applications(&channel, "t-case-b")
        .approve_application(approval("A-1", "PAY-2026-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&approved), pb::ApplicationState::Approved);
    let record = approved.application.as_ref().unwrap();
    assert_eq!(
        (
            record.approved_by.as_str(),
            record.payment_ref.as_str(),
            record.approved_day.as_str()
        ),
        ("test t-case-b", "PAY-2026-0001", TODAY)
    );
    assert_eq!(approved.status(), pb::SettlementStatus::Settled);
    let replayed = applications(&channel, "t-case-b")
        .approve_application(approval("A-1", "PAY-2026-0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, approved, "a retried approval approves once");
    for late in [
        applications(&channel, "t-case-b")
            .approve_application(approval("A-1", "PAY-OTHER"))
            .await
            .unwrap_err(),
        applications(&channel, "t-case-a")
            .withdraw_application(closing("A-1", "changed mind"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    }
    assert_eq!(
        used().await,
        "14700.00",
        "approval moves nothing: it was reserved"
    );

    // Rejected and withdrawn applications give the reservation back.
    for (claim, decider, expected) in [
        ("A-2", "t-case-b", pb::ApplicationState::Rejected),
        ("A-3", "t-case-a", pb::ApplicationState::Withdrawn),
    ] {
        applications(&channel, "t-case-a")
            .submit_application(stay(&patient, claim))
            .await
            .unwrap();
        assert_eq!(used().await, "22050.00", "{claim} reserved");
        let mut client = applications(&channel, decider);
        let closed = match expected {
            pb::ApplicationState::Rejected => {
                client.reject_application(closing(claim, "no bills")).await
            }
            _ => {
                client
                    .withdraw_application(closing(claim, "paid elsewhere"))
                    .await
            }
        }
        .unwrap()
        .into_inner();
        assert_eq!(state(&closed), expected);
        assert_eq!(closed.status(), pb::SettlementStatus::Reversed);
        assert_eq!(closed.reversed_by, format!("test {decider}"));
        assert_eq!(used().await, "14700.00", "{claim} released");
    }
    let out_of_region = applications(&channel, "t-case-out")
        .submit_application(stay(&patient, "A-4"))
        .await
        .unwrap_err();
    assert_eq!(out_of_region.code(), Code::NotFound);

    // The hospital's day counts its window; the list shows both channels.
    let mut reconciliation =
        ReconciliationServiceClient::with_interceptor(channel.clone(), bearer(Some("t-auditor")));
    let zero = pb::DayTotals {
        settled_count: 0,
        assistance_total: "0.00".into(),
        reversed_count: 0,
        reversed_total: "0.00".into(),
    };
    let h009_day = reconciliation
        .reconcile_day(pb::ReconcileDayRequest {
            hospital_id: "H009".into(),
            date: TODAY.into(),
            hospital_totals: Some(zero),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(h009_day.matched, "{h009_day:?}");
    let listed = reconciliation
        .list_day_settlements(pb::ListDaySettlementsRequest {
            hospital_id: "H009".into(),
            date: TODAY.into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .settlements;
    let channels: Vec<_> = listed
        .iter()
        .map(|s| (s.claim_id.as_str(), s.channel()))
        .collect();
    assert_eq!(
        channels,
        vec![
            ("A-1", pb::Channel::Application),
            ("A-2", pb::Channel::Application),
            ("A-3", pb::Channel::Application),
        ]
    );
    let h001 = reconciliation
        .list_day_settlements(pb::ListDaySettlementsRequest {
            hospital_id: "H001".into(),
            date: TODAY.into(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .settlements;
    assert_eq!(h001[0].channel(), pb::Channel::Window);

    // Each step counted once, retries not at all; applications are not
    // window settlements.
    let metrics =
        crate::transit::http_get(server.metrics_addr.unwrap(), "/metrics", Some("t-metrics")).await;
    for (event, count) in [
        ("submitted", 3),
        ("approved", 1),
        ("rejected", 1),
        ("withdrawn", 1),
    ] {
        let series = format!("medassist_applications_total{{event=\"{event}\"}}");
        assert_eq!(crate::edge::metric(&metrics, &series), count, "{series}");
    }
    let paid = "medassist_settlements_total{outcome=\"paid\"}";
    assert_eq!(crate::edge::metric(&metrics, paid), 1, "W-1 only");
    let dir = server.stop().await;
    let report = verify_dir(&dir);
    assert!(report.is_consistent(), "{report}");
}
