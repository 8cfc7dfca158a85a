//! Late enrollment finds what it owes (issue 21, item 4), through real
//! clients: stays settled while their patients were not on the roster are
//! listed once a roster write enrolls them, with what they would pay now;
//! reversed and already-paid stays are not; pages go by patient and never
//! split one; caseworkers see only their regions and hospitals none.

use std::sync::Arc;

use medassist::{
    auth::{Access, Role},
    config::Config,
    grpc::pb::{
        self, application_service_client::ApplicationServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
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
}
