//! What the console reads beside the settlement RPCs, over gRPC: a region's
//! figures of a year (`StatisticsService.GetYearStatistics`), the
//! caseworkers' queue (`ApplicationService.ListApplications`) and who the
//! caller is (`CallerService.GetCaller`), each bound by roles and regions.

use std::sync::Arc;

use medassist::{
    auth::{Access, Role},
    config::Config,
    grpc::pb::{
        self, application_service_client::ApplicationServiceClient,
        caller_service_client::CallerServiceClient, roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        statistics_service_client::StatisticsServiceClient,
    },
};
use tempfile::TempDir;
use tonic::Code;

use crate::helpers::*;

/// A server on 2026-04-02 (Beijing) with the tokens of the console's users.
async fn server() -> TestServer {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut config = TestServer::config_for(&dir);
    config.config = Config {
        access: Access::Tokens(vec![
            token_entry("t-roster", Role::RosterAdmin, None),
            token_entry("t-h001", Role::Hospital, Some("H001")),
            token_entry("t-auditor", Role::Auditor, None),
            token_entry_in("t-officer", Role::Officer, None, &["320600"]),
            token_entry_in("t-supervisor-out", Role::Supervisor, None, &["320100"]),
            token_entry_in("t-case-a", Role::Caseworker, None, &["320600"]),
            token_entry_in("t-case-b", Role::Caseworker, None, &["320602"]),
        ]),
        ..Config::default()
    };
    config.clock = medassist::clock::ManualClock::new(at("2026-04-02T02:00:00Z"));
    TestServer::launch(dir, config, None).await
}

/// A dibao member of county 320602, put on the roster by the clerk.
async fn enroll(server: &TestServer, birth: &str, sequence: u16) -> String {
    let id = resident_id(birth, sequence);
    RosterServiceClient::with_interceptor(server.channel(), bearer(Some("t-roster")))
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&id)),
        })
        .await
        .expect("roster accepts the person");
    id
}

/// A region's figures of a year, asked with `token`.
async fn year_of(
    server: &TestServer,
    token: &'static str,
    region_code: &str,
    year: i32,
) -> Result<pb::YearStatistics, tonic::Status> {
    StatisticsServiceClient::with_interceptor(server.channel(), bearer(Some(token)))
        .get_year_statistics(pb::GetYearStatisticsRequest {
            region_code: region_code.into(),
            year,
        })
        .await
        .map(|r| r.into_inner())
}

fn group<'a>(groups: &'a [pb::FiguresGroup], key: &str) -> &'a pb::Figures {
    groups
        .iter()
        .find(|g| g.key == key)
        .and_then(|g| g.figures.as_ref())
        .unwrap_or_else(|| panic!("no group {key} in {groups:?}"))
}

/// Proves the year's figures add up the settlements that count (a reversed
/// one is left out) in every breakdown, exactly to the fen; that a caller
/// limited to other regions sees none of them; and that a hospital may not
/// read them.
#[tokio::test]
async fn the_year_adds_up_what_counts_in_every_breakdown() {
    let server = server().await;
    let (a, b) = (
        enroll(&server, "1960-01-01", 11).await,
        enroll(&server, "1971-05-06", 12).await,
    );
    let mut hospital =
        SettlementServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")));
    let (first, _) = settled(hospital.settle(worked_example(&a, "S-1")).await);
    let (second, _) = settled(hospital.settle(claim_paying_7000(&b, "S-2")).await);
    settled(hospital.settle(claim_paying_7000(&a, "S-3")).await);
    hospital
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "S-3".into(),
            reason: "billed twice".into(),
        })
        .await
        .unwrap();

    let year = year_of(&server, "t-officer", "320600", 2026).await.unwrap();
    let paid = fen(&first.assistance_amount) + fen(&second.assistance_amount);
    let total = year.total.as_ref().unwrap();
    assert_eq!((total.persons, total.settlements), (2, 2));
    assert_eq!(fen(&total.assistance_total), paid);
    assert_eq!(fen(&total.total_cost), fen("60000.00"));
    assert_eq!(year.by_month.len(), 12);
    assert_eq!(year.by_month[3].key, "2026-04");
    assert_eq!(year.by_month[3].label, "2026年4月");
    assert_eq!(year.by_month[3].figures.as_ref(), Some(total));
    assert_eq!(year.by_month[2].figures.as_ref().unwrap().settlements, 0);
    for groups in [&year.by_class, &year.by_region, &year.by_hospital] {
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].figures.as_ref(), Some(total));
    }
    assert_eq!(year.by_class[0].key, "dibao");
    assert_eq!(year.by_region[0].key, "320602");
    assert_eq!(year.by_hospital[0].key, "H001");
    let fifty = group(&year.by_cost_band, "50000-100000");
    assert_eq!(fen(&fifty.assistance_total), fen(&first.assistance_amount));
    let ten = group(&year.by_cost_band, "10000-30000");
    assert_eq!(fen(&ten.assistance_total), fen(&second.assistance_amount));
    assert_eq!(year.by_cost_band.len(), 6, "every band, empty ones too");
    let kidneys = group(&year.by_disease_group, "N00-N99");
    assert_eq!(kidneys, total);
    assert_eq!(year.by_disease_group[0].label, "泌尿生殖系统疾病");
    assert!(year.as_of.is_some());

    let elsewhere = year_of(&server, "t-supervisor-out", "320600", 2026)
        .await
        .unwrap();
    assert_eq!(elsewhere.total.unwrap().settlements, 0, "not its regions");

    let refused = year_of(&server, "t-h001", "320600", 2026)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let bad = year_of(&server, "t-officer", "32", 1800).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["region_code", "year"]);
    server.stop().await;
}

fn queue(state: pb::ApplicationState, page_size: i32, token: &str) -> pb::ListApplicationsRequest {
    pb::ListApplicationsRequest {
        region_code: "320600".into(),
        state: state.into(),
        from_date: "2026-04-01".into(),
        to_date: "2026-04-30".into(),
        page_size,
        page_token: token.into(),
    }
}

/// Proves the caseworkers' queue lists applications (never window
/// settlements) by state, page by page, to callers who may read it.
#[tokio::test]
async fn the_queue_lists_applications_by_state_page_by_page() {
    let server = server().await;
    let patient = enroll(&server, "1962-03-04", 21).await;
    let mut hospital =
        SettlementServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")));
    settled(hospital.settle(worked_example(&patient, "W-1")).await);
    let mut a =
        ApplicationServiceClient::with_interceptor(server.channel(), bearer(Some("t-case-a")));
    let mut b =
        ApplicationServiceClient::with_interceptor(server.channel(), bearer(Some("t-case-b")));
    for claim in ["A-1", "A-2"] {
        a.submit_application(pb::SubmitApplicationRequest {
            claim: Some(pb::SettleRequest {
                hospital_id: "H009".into(),
                ..claim_paying_7000(&patient, claim)
            }),
            documents: format!("case {claim}"),
        })
        .await
        .unwrap();
    }
    b.reject_application(pb::CloseApplicationRequest {
        hospital_id: "H009".into(),
        claim_id: "A-2".into(),
        reason: "not resident".into(),
    })
    .await
    .unwrap();

    // The claims of one page, and where the next starts.
    let mut listed = async |state: pb::ApplicationState, page_size: i32, token: &str| {
        let page = a
            .list_applications(queue(state, page_size, token))
            .await
            .unwrap()
            .into_inner();
        let claims: Vec<String> = page.applications.into_iter().map(|s| s.claim_id).collect();
        (claims, page.next_page_token)
    };
    use pb::ApplicationState::{Pending, Rejected, Unspecified};
    assert_eq!(
        listed(Unspecified, 0, "").await,
        (vec!["A-1".into(), "A-2".into()], String::new())
    );
    assert_eq!(listed(Pending, 0, "").await.0, ["A-1"]);
    assert_eq!(listed(Rejected, 0, "").await.0, ["A-2"]);
    let (first, next) = listed(Unspecified, 1, "").await;
    assert_eq!(first, ["A-1"]);
    assert_eq!(listed(Unspecified, 1, &next).await.0, ["A-2"]);

    let refused =
        ApplicationServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")))
            .list_applications(queue(pb::ApplicationState::Unspecified, 0, ""))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let backwards = a
        .list_applications(pb::ListApplicationsRequest {
            to_date: "2026-03-01".into(),
            state: 99,
            ..queue(pb::ApplicationState::Unspecified, 0, "")
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&backwards), ["state", "to_date"]);
    server.stop().await;
}

/// Proves a caller learns its own name, role and regions, and nothing else.
#[tokio::test]
async fn a_caller_is_told_who_it_is() {
    let server = server().await;
    let officer =
        CallerServiceClient::with_interceptor(server.channel(), bearer(Some("t-officer")))
            .get_caller(pb::GetCallerRequest {})
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        officer,
        pb::Caller {
            name: "test t-officer".into(),
            role: "officer".into(),
            hospital_id: String::new(),
            regions: vec!["320600".into()],
        }
    );
    let hospital = CallerServiceClient::with_interceptor(server.channel(), bearer(Some("t-h001")))
        .get_caller(pb::GetCallerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (hospital.role.as_str(), hospital.hospital_id.as_str()),
        ("hospital", "H001")
    );
    let stranger =
        CallerServiceClient::with_interceptor(server.channel(), bearer(Some("t-nobody")))
            .get_caller(pb::GetCallerRequest {})
            .await
            .unwrap_err();
    assert_eq!(stranger.code(), Code::Unauthenticated);
    server.stop().await;
}
