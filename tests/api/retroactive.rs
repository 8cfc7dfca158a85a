//! Late enrollment finds what it owes (issue 21, item 4), through real
//! clients: stays settled while their patients were not on the roster are
//! listed once a roster write enrolls them, with what they would pay now;
//! reversed and already-paid stays are not; pages go by patient and never
//! split one; caseworkers see only their regions and hospitals none; a
//! candidate becomes a top-up application in one call, and a simulation
//! replays the topped-up stay once.

use std::sync::Arc;

use medassist::{
    auth::{Access, Role},
    config::Config,
    grpc::pb::{
        self, application_service_client::ApplicationServiceClient,
        policy_service_client::PolicyServiceClient, roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
};
use tempfile::TempDir;
use tonic::{Code, transport::Channel};

use crate::helpers::*;

/// Lists `region`'s candidates of 2026 with `token`, one page.
async fn page(
    channel: &Channel,
    token: &'static str,
    region: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListRetroactiveCandidatesResponse, tonic::Status> {
    ApplicationServiceClient::with_interceptor(channel.clone(), bearer(Some(token)))
        .list_retroactive_candidates(pb::ListRetroactiveCandidatesRequest {
            region_code: region.into(),
            year: 2026,
            page_size,
            page_token: page_token.into(),
        })
        .await
        .map(|answer| answer.into_inner())
}

/// The hospital claim numbers of a page's candidates, with what each would
/// pay now and what it owes.
fn claims(page: &pb::ListRetroactiveCandidatesResponse) -> Vec<(String, String, String)> {
    page.candidates
        .iter()
        .map(|c| {
            let settlement = c.settlement.as_ref().unwrap();
            (
                settlement.claim_id.clone(),
                c.assistance_now.clone(),
                c.owed.clone(),
            )
        })
        .collect()
}

/// Proves the list: three stays of two patients settled before they were
/// enrolled are found with the 7,350.00 each would pay now (their class and
/// calculation shown), a reversed one and a paid one are not; with one a
/// page, the second patient's two stays come together; a caseworker of
/// another city and a hospital see none of it.
#[tokio::test]
async fn a_late_enrollment_lists_the_stays_it_owes() {
    let config = Config {
        access: Access::Tokens(vec![
            token_entry("t-h001", Role::Hospital, Some("H001")),
            token_entry("t-roster", Role::RosterAdmin, None),
            token_entry_in("t-case-in", Role::Caseworker, None, &["320600"]),
            token_entry_in("t-case-in2", Role::Caseworker, None, &["320602"]),
            token_entry_in("t-case-out", Role::Caseworker, None, &["320100"]),
            token_entry("t-auditor", Role::Auditor, None),
        ]),
        ..Config::default()
    };
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), config).await;
    let channel = server.channel();
    let mut hospital =
        SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some("t-h001")));
    let mut roster =
        RosterServiceClient::with_interceptor(channel.clone(), bearer(Some("t-roster")));
    let late = resident_id("1950-05-05", 31);
    let later = resident_id("1951-05-05", 32);
    let reversed = resident_id("1952-05-05", 33);
    let on_time = resident_id("1953-05-05", 34);
    roster
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&on_time)),
        })
        .await
        .unwrap();
    for (patient, claim) in [
        (&late, "L-1"),
        (&later, "L-2"),
        (&later, "L-3"),
        (&reversed, "R-1"),
        (&on_time, "O-1"),
    ] {
        let (settlement, _) = settled(hospital.settle(worked_example(patient, claim)).await);
        let paid = if patient == &on_time {
            "7350.00"
        } else {
            "0.00"
        };
        assert_eq!(settlement.assistance_amount, paid, "{claim}");
    }
    hospital
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "R-1".into(),
            reason: "billed twice".into(),
        })
        .await
        .unwrap();
    let before = page(&channel, "t-case-in", "320600", 0, "").await.unwrap();
    assert!(
        before.candidates.is_empty(),
        "nobody is owed before the roster changes"
    );

    for patient in [&late, &later, &reversed] {
        roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(patient)),
            })
            .await
            .unwrap();
    }
    let owed = |claim: &str| (claim.to_owned(), "7350.00".to_owned(), "7350.00".to_owned());
    let all = page(&channel, "t-case-in", "320600", 0, "").await.unwrap();
    assert_eq!(claims(&all), vec![owed("L-1"), owed("L-2"), owed("L-3")]);
    assert_eq!(all.next_page_token, "");
    let first = &all.candidates[0];
    assert_eq!(first.settlement.as_ref().unwrap().patient_id, late);
    assert_eq!(
        first.settlement.as_ref().unwrap().status,
        i32::from(pb::SettlementStatus::Settled)
    );
    let now = first.breakdown_now.as_ref().expect("the calculation now");
    assert_eq!(
        (
            now.assisted_class.as_str(),
            now.assisted_class_name.as_str()
        ),
        ("dibao", "低保")
    );
    assert!(now.explanation.contains("7350.00"), "{}", now.explanation);
    let audited = page(&channel, "t-auditor", "320602", 0, "").await.unwrap();
    assert_eq!(
        claims(&audited),
        claims(&all),
        "the county's list is the city's here"
    );

    let one = page(&channel, "t-case-in", "320600", 1, "").await.unwrap();
    assert_eq!(claims(&one), vec![owed("L-1")]);
    assert_eq!(one.next_page_token, late);
    let two = page(&channel, "t-case-in", "320600", 1, &one.next_page_token)
        .await
        .unwrap();
    assert_eq!(
        claims(&two),
        vec![owed("L-2"), owed("L-3")],
        "one patient's stays stay together"
    );
    assert_eq!(two.next_page_token, "");

    let elsewhere = page(&channel, "t-case-out", "320600", 0, "").await.unwrap();
    assert!(elsewhere.candidates.is_empty() && elsewhere.next_page_token.is_empty());
    let refused = page(&channel, "t-h001", "320600", 0, "").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = page(&channel, "t-case-in", "320600", 0, "abc")
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&bad), vec!["page_token"]);
    // A candidate becomes a top-up application in one call.
    let window = all.candidates[0].settlement.clone().unwrap();
    let cases =
        |token| ApplicationServiceClient::with_interceptor(channel.clone(), bearer(Some(token)));
    let open = |settlement_id: &str| pb::OpenApplicationRequest {
        settlement_id: settlement_id.to_owned(),
        documents: "case L-1, enrolled late".into(),
    };
    let used = |patient: String| {
        let channel = channel.clone();
        async move {
            UsageServiceClient::with_interceptor(channel, bearer(Some("t-auditor")))
                .get_annual_usage(pb::GetAnnualUsageRequest {
                    patient_id: patient,
                    year: 2026,
                })
                .await
                .unwrap()
                .into_inner()
                .used
        }
    };
    let window_of = |id: String| {
        let channel = channel.clone();
        async move {
            SettlementServiceClient::with_interceptor(channel, bearer(Some("t-auditor")))
                .get_settlement(pb::GetSettlementRequest {
                    settlement_id: id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let topped = cases("t-case-in")
        .open_application(open(&window.settlement_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(topped.channel(), pb::Channel::Application);
    assert_eq!(
        (topped.hospital_id.as_str(), topped.claim_id.clone()),
        (
            "H001",
            format!("~{}~{}", window.settlement_id, topped.settlement_id)
        )
    );
    assert_eq!(topped.assistance_amount, "7350.00");
    let record = topped.application.clone().unwrap();
    assert_eq!(record.state(), pb::ApplicationState::Pending);
    assert_eq!(
        (
            record.owed.as_str(),
            record.tops_up.as_str(),
            record.window_paid.as_str()
        ),
        ("7350.00", window.settlement_id.as_str(), "0.00")
    );
    let again = cases("t-case-in")
        .open_application(open(&window.settlement_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.settlement_id, topped.settlement_id,
        "a retry opens nothing new"
    );
    assert_eq!(
        window_of(window.settlement_id.clone()).await.superseded_by,
        topped.settlement_id
    );
    assert_eq!(
        used(late.clone()).await,
        "7350.00",
        "the stay counts once, as the top-up"
    );
    let rest = page(&channel, "t-case-in", "320600", 0, "").await.unwrap();
    assert_eq!(claims(&rest), vec![owed("L-2"), owed("L-3")]);
    let reversal = hospital
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "L-1".into(),
            reason: "billed twice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reversal.code(), Code::FailedPrecondition, "{reversal:?}");
    let (paid, replayed) = settled(hospital.settle(worked_example(&on_time, "O-1")).await);
    assert!(replayed);
    let nothing = cases("t-case-in")
        .open_application(open(&paid.settlement_id))
        .await
        .unwrap_err();
    assert_eq!(nothing.code(), Code::FailedPrecondition, "{nothing:?}");

    // Rejected, the window settlement counts again and is a candidate again;
    // opened anew and approved, the difference is paid.
    cases("t-case-in2")
        .reject_application(pb::CloseApplicationRequest {
            hospital_id: "H001".into(),
            claim_id: topped.claim_id.clone(),
            reason: "documents missing".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        window_of(window.settlement_id.clone()).await.superseded_by,
        ""
    );
    assert_eq!(used(late.clone()).await, "0.00");
    let back = page(&channel, "t-case-in", "320600", 0, "").await.unwrap();
    assert_eq!(claims(&back), claims(&all));
    let reopened = cases("t-case-in")
        .open_application(open(&window.settlement_id))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(reopened.settlement_id, topped.settlement_id);
    let approved = cases("t-case-in2")
        .approve_application(pb::ApproveApplicationRequest {
            hospital_id: "H001".into(),
            claim_id: reopened.claim_id.clone(),
            payment_ref: "PAY-L-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        approved.application.unwrap().state(),
        pb::ApplicationState::Approved
    );
    assert_eq!(used(late.clone()).await, "7350.00");

    // A simulation replays the topped-up stay as its top-up, not twice:
    // under the built-in policy's terms, the year would pay what was paid
    // and what L-2 and L-3 are still owed.
    let report = PolicyServiceClient::with_interceptor(channel.clone(), bearer(Some("t-auditor")))
        .simulate_policy(pb::SimulatePolicyRequest {
            policy_toml: CITY_POLICY.into(),
            year: 2026,
            region_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let total = report.total.unwrap();
    // O-1, L-2 and L-3 at the window, L-1 as its approved top-up (the
    // rejected top-up and R-1 are reversed): O-1's 7,350.00 paid at the
    // window and L-1's on application; 7,350.00 more each for L-2 and L-3.
    assert_eq!(total.settlements, 4);
    assert_eq!(
        (total.paid.as_str(), total.would_pay.as_str()),
        ("14700.00", "29400.00")
    );
    let dir = server.stop().await;
    let report = verify_dir(&dir);
    assert!(report.is_consistent(), "{report}");
}
