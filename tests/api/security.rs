//! Who may call what, through real clients: every RPC against every role,
//! own and other hospital, no token and a bad token; then TLS and mTLS.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use medassist::{
    auth::{Access, Role},
    config::{Config, TlsFiles},
    grpc::pb::{
        self, admin_service_client::AdminServiceClient,
        application_service_client::ApplicationServiceClient,
        caller_service_client::CallerServiceClient, policy_service_client::PolicyServiceClient,
        reconciliation_service_client::ReconciliationServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        statistics_service_client::StatisticsServiceClient,
        usage_service_client::UsageServiceClient,
    },
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tempfile::TempDir;
use tonic::{
    Code, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::*;

fn guarded_config() -> Config {
    Config {
        access: Access::Tokens(vec![
            token_entry("t-h001", Role::Hospital, Some("H001")),
            token_entry("t-h002", Role::Hospital, Some("H002")),
            token_entry("t-insurer", Role::Insurer, None),
            token_entry("t-roster", Role::RosterAdmin, None),
            token_entry("t-auditor", Role::Auditor, None),
            token_entry("t-caseworker", Role::Caseworker, None),
            token_entry("t-officer", Role::Officer, None),
            token_entry("t-supervisor", Role::Supervisor, None),
            token_entry("t-operator", Role::Operator, None),
        ]),
        ..Config::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rpc {
    PreSettle,
    Settle,
    Reverse,
    GetSettlementByKey,
    GetSettlementById,
    GetAnnualUsage,
    ListSettlements,
    BatchGetAnnualUsage,
    UpsertPerson,
    GetPerson,
    ListReferrals,
    GetPolicy,
    SimulatePolicy,
    ListRetroactiveCandidates,
    SubmitApplication,
    OpenApplication,
    ApproveApplication,
    RejectApplication,
    WithdrawApplication,
    SaveSnapshot,
    ImportPersons,
    ExportPersons,
    ReconcileDay,
    ListDaySettlements,
    ExportSettlements,
    ListApplications,
    GetYearStatistics,
    GetCaller,
}

const RPCS: [Rpc; 28] = [
    Rpc::PreSettle,
    Rpc::Settle,
    Rpc::Reverse,
    Rpc::GetSettlementByKey,
    Rpc::GetSettlementById,
    Rpc::GetAnnualUsage,
    Rpc::ListSettlements,
    Rpc::BatchGetAnnualUsage,
    Rpc::UpsertPerson,
    Rpc::GetPerson,
    Rpc::ListReferrals,
    Rpc::GetPolicy,
    Rpc::SimulatePolicy,
    Rpc::ListRetroactiveCandidates,
    Rpc::SubmitApplication,
    Rpc::OpenApplication,
    Rpc::ApproveApplication,
    Rpc::RejectApplication,
    Rpc::WithdrawApplication,
    Rpc::SaveSnapshot,
    Rpc::ImportPersons,
    Rpc::ExportPersons,
    Rpc::ReconcileDay,
    Rpc::ListDaySettlements,
    Rpc::ExportSettlements,
    Rpc::ListApplications,
    Rpc::GetYearStatistics,
    Rpc::GetCaller,
];

/// The proposed policy book SimulatePolicy replays the fixtures under.
const PROPOSAL: &str = include_str!("../../examples/policy-2026.toml");

/// What the matrix runs against: an enrolled patient, and one settlement
/// for each hospital (with its number), settled at `SETTLED_AT`.
struct Fixtures {
    patient: String,
    settlement_ids: [(String, String); 2],
    claims: AtomicUsize,
}

/// When the fixtures' settlements are made (on the test clock) and the
/// business day the matrix reconciles and lists.
const SETTLED_AT: &str = "2026-03-20T02:00:00Z";
const SETTLED_DAY: &str = "2026-03-20";

impl Fixtures {
    async fn new(channel: &Channel) -> Fixtures {
        let patient = resident_id("1960-01-01", 301);
        let mut roster =
            RosterServiceClient::with_interceptor(channel.clone(), bearer(Some("t-roster")));
        roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(&patient)),
            })
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (hospital, token) in [("H001", "t-h001"), ("H002", "t-h002")] {
            let mut client =
                SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some(token)));
            let request = pb::SettleRequest {
                hospital_id: hospital.into(),
                ..worked_example(&patient, "FIX")
            };
            let settlement = client
                .settle(request)
                .await
                .unwrap()
                .into_inner()
                .settlement
                .unwrap();
            ids.push((hospital.to_owned(), settlement.settlement_id));
        }
        Fixtures {
            patient,
            settlement_ids: [ids[0].clone(), ids[1].clone()],
            claims: AtomicUsize::new(0),
        }
    }

    fn settlement_id_of(&self, hospital: &str) -> String {
        self.settlement_ids
            .iter()
            .find(|(h, _)| h == hospital)
            .unwrap()
            .1
            .clone()
    }

    /// The fixtures' patient and settlement of `hospital`.
    fn target(&self, hospital: &str) -> Target {
        Target {
            patient: self.patient.clone(),
            settlement_id: self.settlement_id_of(hospital),
            claim_id: "FIX".into(),
        }
    }
}

/// Whom a call is about: a patient, and one settlement.
struct Target {
    patient: String,
    settlement_id: String,
    claim_id: String,
}

impl Target {
    /// A patient who is on no roster, and a settlement that does not exist.
    fn absent() -> Target {
        Target {
            patient: resident_id("1961-02-02", 999),
            settlement_id: "999999".into(),
            claim_id: "NEVER".into(),
        }
    }

    /// `message` with this target's IDs (as the service shows them) put as
    /// placeholders, so answers about two targets compare.
    fn neutral(&self, message: &str) -> String {
        let masked = format!("{}********{}", &self.patient[..6], &self.patient[14..]);
        let number = format!("{:0>16}", self.settlement_id);
        message
            .replace(&masked, "<patient>")
            .replace(&number, "<settlement>")
            .replace(&self.claim_id, "<claim>")
    }
}

/// What a call answered: its code, its message (IDs as placeholders), and
/// how many records it returned.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    code: Code,
    message: String,
    records: usize,
}

/// Reads a server stream to its end: how many messages, or its error.
async fn drained<T>(
    answer: Result<tonic::Response<tonic::Streaming<T>>, Status>,
) -> Result<usize, Status> {
    let mut stream = answer?.into_inner();
    let mut count = 0;
    while stream.message().await?.is_some() {
        count += 1;
    }
    Ok(count)
}

/// Calls `rpc` with `token` about hospital `hospital`'s data and the
/// fixtures' patient; the status code.
async fn call(
    channel: &Channel,
    fixtures: &Fixtures,
    rpc: Rpc,
    token: Option<&'static str>,
    hospital: &str,
) -> Code {
    let target = fixtures.target(hospital);
    call_about(channel, fixtures, rpc, token, hospital, &target)
        .await
        .code
}

/// A rejection or withdrawal of `target`'s claim at `hospital`.
fn closing(hospital: &str, target: &Target) -> pb::CloseApplicationRequest {
    pb::CloseApplicationRequest {
        hospital_id: hospital.into(),
        claim_id: target.claim_id.clone(),
        reason: "test".into(),
    }
}

/// Calls `rpc` with `token` about hospital `hospital`'s data and `target`.
async fn call_about(
    channel: &Channel,
    fixtures: &Fixtures,
    rpc: Rpc,
    token: Option<&'static str>,
    hospital: &str,
    target: &Target,
) -> Answer {
    let mut settlements = SettlementServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut usage = UsageServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut roster = RosterServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut policies = PolicyServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut admin = AdminServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut applications =
        ApplicationServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut reconciliation =
        ReconciliationServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut statistics = StatisticsServiceClient::with_interceptor(channel.clone(), bearer(token));
    let mut callers = CallerServiceClient::with_interceptor(channel.clone(), bearer(token));
    let claim = format!("M-{}", fixtures.claims.fetch_add(1, Ordering::SeqCst));
    let patient = target.patient.clone();
    let request = pb::SettleRequest {
        hospital_id: hospital.into(),
        ..worked_example(&patient, &claim)
    };
    let by_key = pb::GetSettlementRequest {
        hospital_id: hospital.into(),
        claim_id: target.claim_id.clone(),
        ..Default::default()
    };
    let by_id = pb::GetSettlementRequest {
        settlement_id: target.settlement_id.clone(),
        ..Default::default()
    };
    let result: Result<usize, Status> = match rpc {
        Rpc::PreSettle => settlements.pre_settle(request).await.map(|_| 1),
        Rpc::Settle => settlements.settle(request).await.map(|_| 1),
        Rpc::Reverse => settlements
            .reverse(pb::ReverseRequest {
                hospital_id: hospital.into(),
                claim_id: target.claim_id.clone(),
                reason: "test".into(),
            })
            .await
            .map(|_| 1),
        Rpc::GetSettlementByKey => settlements.get_settlement(by_key).await.map(|_| 1),
        Rpc::GetSettlementById => settlements.get_settlement(by_id).await.map(|_| 1),
        Rpc::GetAnnualUsage => usage
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: patient.clone(),
                year: 2026,
            })
            .await
            .map(|_| 1),
        Rpc::ListSettlements => usage
            .list_settlements(pb::ListSettlementsRequest {
                patient_id: patient.clone(),
                year: 2026,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().settlements.len()),
        Rpc::BatchGetAnnualUsage => usage
            .batch_get_annual_usage(pb::BatchGetAnnualUsageRequest {
                patient_ids: vec![patient.clone()],
                year: 2026,
            })
            .await
            .map(|r| r.into_inner().usages.len()),
        Rpc::UpsertPerson => roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(&patient)),
            })
            .await
            .map(|_| 1),
        Rpc::GetPerson => roster
            .get_person(pb::GetPersonRequest {
                patient_id: patient.clone(),
            })
            .await
            .map(|_| 1),
        Rpc::ListReferrals => roster
            .list_referrals(pb::ListReferralsRequest {
                region_code: "320600".into(),
                from_date: "2026-01-01".into(),
                to_date: "2026-12-31".into(),
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().settlements.len()),
        Rpc::GetPolicy => policies
            .get_policy(pb::GetPolicyRequest {
                region_code: "320602".into(),
                year: 2026,
            })
            .await
            .map(|_| 1),
        Rpc::SimulatePolicy => policies
            .simulate_policy(pb::SimulatePolicyRequest {
                policy_toml: PROPOSAL.into(),
                year: 2026,
                region_code: String::new(),
            })
            .await
            .map(|r| r.into_inner().total.map_or(0, |t| t.settlements as usize)),
        Rpc::ListRetroactiveCandidates => applications
            .list_retroactive_candidates(pb::ListRetroactiveCandidatesRequest {
                region_code: "320600".into(),
                year: 2026,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().candidates.len()),
        Rpc::SubmitApplication => applications
            .submit_application(pb::SubmitApplicationRequest {
                claim: Some(request.clone()),
                documents: "case 1".into(),
            })
            .await
            .map(|_| 1),
        // The fixtures' settlement is a window one that owes nothing (its
        // patient was enrolled): a caseworker who sees it is told so.
        Rpc::OpenApplication => applications
            .open_application(pb::OpenApplicationRequest {
                settlement_id: target.settlement_id.clone(),
                documents: "case 1".into(),
            })
            .await
            .map(|_| 1),
        // The fixtures' settlement is a window one: a caseworker who sees it
        // is told it is not an application.
        Rpc::ApproveApplication => applications
            .approve_application(pb::ApproveApplicationRequest {
                hospital_id: hospital.into(),
                claim_id: target.claim_id.clone(),
                payment_ref: "PAY-1".into(),
            })
            .await
            .map(|_| 1),
        Rpc::RejectApplication => applications
            .reject_application(closing(hospital, target))
            .await
            .map(|_| 1),
        Rpc::WithdrawApplication => applications
            .withdraw_application(closing(hospital, target))
            .await
            .map(|_| 1),
        // The whole stream must arrive: refusals come before the first chunk.
        Rpc::SaveSnapshot => drained(
            admin
                .save_snapshot(pb::SaveSnapshotRequest::default())
                .await,
        )
        .await
        .map(|_| 1),
        Rpc::ImportPersons => {
            let records = vec![pb::UpsertPersonRequest {
                person: Some(dibao_person(&patient)),
            }];
            roster
                .import_persons(tokio_stream::iter(records))
                .await
                .map(|r| {
                    let r = r.into_inner();
                    (r.created + r.updated + r.unchanged) as usize
                })
        }
        // As for snapshots, the whole stream must arrive.
        Rpc::ExportPersons => {
            drained(
                roster
                    .export_persons(pb::ExportPersonsRequest::default())
                    .await,
            )
            .await
        }
        Rpc::ReconcileDay => reconciliation
            .reconcile_day(pb::ReconcileDayRequest {
                hospital_id: hospital.into(),
                date: SETTLED_DAY.into(),
                hospital_totals: Some(pb::DayTotals {
                    settled_count: 0,
                    assistance_total: "0".into(),
                    reversed_count: 0,
                    reversed_total: "0".into(),
                }),
            })
            .await
            .map(|r| {
                let totals = r.into_inner().fund_totals.unwrap_or_default();
                totals.settled_count as usize
            }),
        Rpc::ListDaySettlements => reconciliation
            .list_day_settlements(pb::ListDaySettlementsRequest {
                hospital_id: hospital.into(),
                date: SETTLED_DAY.into(),
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().settlements.len()),
        Rpc::ExportSettlements => {
            let request = pb::ExportSettlementsRequest {
                from_date: "2026-01-01".into(),
                to_date: "2026-12-31".into(),
                hospital_id: hospital.into(),
            };
            drained(reconciliation.export_settlements(request).await).await
        }
        Rpc::ListApplications => applications
            .list_applications(pb::ListApplicationsRequest {
                region_code: "320600".into(),
                state: pb::ApplicationState::Unspecified.into(),
                from_date: "2026-01-01".into(),
                to_date: "2026-12-31".into(),
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(|r| r.into_inner().applications.len()),
        Rpc::GetYearStatistics => statistics
            .get_year_statistics(pb::GetYearStatisticsRequest {
                region_code: "320600".into(),
                year: 2026,
            })
            .await
            .map(|r| r.into_inner().total.map_or(0, |t| t.settlements as usize)),
        Rpc::GetCaller => callers.get_caller(pb::GetCallerRequest {}).await.map(|_| 1),
    };
    match result {
        Ok(records) => Answer {
            code: Code::Ok,
            message: String::new(),
            records,
        },
        Err(status) => Answer {
            code: status.code(),
            message: target.neutral(status.message()),
            records: 0,
        },
    }
}

/// The expected answer of the permission table.
fn expected(rpc: Rpc, caller: &str, hospital: &str) -> Code {
    use Rpc::*;
    let hospital_scoped = matches!(
        rpc,
        PreSettle
            | Settle
            | Reverse
            | GetSettlementByKey
            | GetSettlementById
            | ReconcileDay
            | ListDaySettlements
    );
    let allowed = match caller {
        "none" | "bad" => return Code::Unauthenticated,
        _ if rpc == GetCaller => true,
        "t-h001" => hospital_scoped && hospital == "H001",
        "t-insurer" => matches!(
            rpc,
            GetAnnualUsage | ListSettlements | BatchGetAnnualUsage | GetPolicy
        ),
        "t-roster" => matches!(
            rpc,
            UpsertPerson | GetPerson | ImportPersons | ExportPersons | ListReferrals
        ),
        "t-operator" => matches!(rpc, SaveSnapshot),
        "t-caseworker" => matches!(
            rpc,
            ListRetroactiveCandidates
                | GetPolicy
                | GetSettlementByKey
                | GetSettlementById
                | SubmitApplication
                | OpenApplication
                | ApproveApplication
                | RejectApplication
                | WithdrawApplication
                | ListApplications
        ),
        "t-officer" => matches!(
            rpc,
            GetSettlementByKey
                | GetSettlementById
                | GetAnnualUsage
                | ListSettlements
                | BatchGetAnnualUsage
                | ListReferrals
                | GetPolicy
                | ReconcileDay
                | ListDaySettlements
                | ExportSettlements
                | GetYearStatistics
        ),
        "t-supervisor" => matches!(rpc, GetPolicy | SimulatePolicy | GetYearStatistics),
        "t-auditor" => matches!(
            rpc,
            GetSettlementByKey
                | GetSettlementById
                | GetAnnualUsage
                | ListSettlements
                | BatchGetAnnualUsage
                | GetPerson
                | ListReferrals
                | GetPolicy
                | SimulatePolicy
                | ListRetroactiveCandidates
                | ExportPersons
                | ReconcileDay
                | ListDaySettlements
                | ExportSettlements
                | ListApplications
                | GetYearStatistics
        ),
        other => panic!("unknown caller {other}"),
    };
    // Another hospital's settlement is answered exactly as a missing one.
    let other_hospitals = caller == "t-h001"
        && hospital != "H001"
        && matches!(rpc, GetSettlementByKey | GetSettlementById);
    let decides = matches!(
        rpc,
        OpenApplication | ApproveApplication | RejectApplication | WithdrawApplication
    );
    match allowed {
        // Allowed, but the fixtures' settlements were settled at the window
        // and owe nothing.
        true if decides => Code::FailedPrecondition,
        // Allowed, but PostgreSQL's backups are PostgreSQL's own.
        true if rpc == SaveSnapshot && crate::backend::on_postgres() => Code::FailedPrecondition,
        true => Code::Ok,
        false if other_hospitals => Code::NotFound,
        false => Code::PermissionDenied,
    }
}

/// A guarded server whose commits fall on `SETTLED_DAY`.
async fn guarded_server(config: Config) -> TestServer {
    let dir = Arc::new(TempDir::new().unwrap());
    let mut server_config = TestServer::config_for(&dir);
    server_config.config = config;
    server_config.clock = medassist::clock::ManualClock::new(at(SETTLED_AT));
    TestServer::launch(dir, server_config, None).await
}

/// Proves the whole matrix: 28 RPCs x 10 callers x own and other hospital,
/// 560 calls, each answered exactly as the permission table says; health and
/// reflection stay open.
#[tokio::test]
async fn every_rpc_against_every_caller() {
    let server = guarded_server(guarded_config()).await;
    let channel = server.channel();
    let fixtures = Fixtures::new(&channel).await;
    let callers: [(&str, Option<&'static str>); 10] = [
        ("t-h001", Some("t-h001")),
        ("t-operator", Some("t-operator")),
        ("t-insurer", Some("t-insurer")),
        ("t-roster", Some("t-roster")),
        ("t-auditor", Some("t-auditor")),
        ("t-caseworker", Some("t-caseworker")),
        ("t-officer", Some("t-officer")),
        ("t-supervisor", Some("t-supervisor")),
        ("none", None),
        ("bad", Some("not-a-token")),
    ];
    let mut checked = 0;
    for rpc in RPCS {
        for (caller, token) in callers {
            for hospital in ["H001", "H002"] {
                let got = call(&channel, &fixtures, rpc, token, hospital).await;
                assert_eq!(
                    got,
                    expected(rpc, caller, hospital),
                    "{rpc:?} by {caller} about {hospital}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 560);
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "health needs no token");
}

/// Tokens of the roles that read patients by region, limited to the
/// fixtures' city (whose county the patient is enrolled in) and to another.
const SCOPED: [(&str, Role, &str); 12] = [
    ("t-insurer-in", Role::Insurer, "320600"),
    ("t-insurer-out", Role::Insurer, "320100"),
    ("t-roster-in", Role::RosterAdmin, "320600"),
    ("t-roster-out", Role::RosterAdmin, "320100"),
    ("t-auditor-in", Role::Auditor, "320600"),
    ("t-auditor-out", Role::Auditor, "320100"),
    ("t-caseworker-in", Role::Caseworker, "320600"),
    ("t-caseworker-out", Role::Caseworker, "320100"),
    ("t-officer-in", Role::Officer, "320600"),
    ("t-officer-out", Role::Officer, "320100"),
    ("t-supervisor-in", Role::Supervisor, "320600"),
    ("t-supervisor-out", Role::Supervisor, "320100"),
];

/// The unscoped token of the same role as a scoped one.
fn unscoped(role: Role) -> &'static str {
    match role {
        Role::Insurer => "t-insurer",
        Role::RosterAdmin => "t-roster",
        Role::Caseworker => "t-caseworker",
        Role::Officer => "t-officer",
        Role::Supervisor => "t-supervisor",
        _ => "t-auditor",
    }
}

/// Proves least privilege by region: every RPC by every region-limited
/// role, in and out of region. In region, each answer equals the unlimited
/// token's. Out of region, a patient (and its settlements) is answered
/// exactly as one that does not exist: the same code, the same words, the
/// same number of records as the unlimited token gets about a patient on no
/// roster; lists and exports leave the patient out; writes are refused.
/// On the code before regions, every out-of-region answer gave the patient
/// away.
#[tokio::test]
async fn every_rpc_against_region_limited_callers() {
    let mut config = guarded_config();
    if let Access::Tokens(tokens) = &mut config.access {
        for (token, role, region) in SCOPED {
            tokens.push(token_entry_in(token, role, None, &[region]));
        }
    }
    let server = guarded_server(config).await;
    let channel = server.channel();
    let fixtures = Fixtures::new(&channel).await;
    let absent = Target::absent();
    let mut checked = 0;
    for rpc in RPCS {
        for (token, role, region) in SCOPED {
            let target = fixtures.target("H001");
            let got = call_about(&channel, &fixtures, rpc, Some(token), "H001", &target).await;
            let (expected, about) = match region {
                "320600" => (&target, "the same patient"),
                _ => (&absent, "a patient on no roster"),
            };
            let outside = region != "320600";
            let wanted = match (rpc, role) {
                // A write by the roster's role outside its regions is
                // refused (the absent patient is not written to compare).
                (Rpc::UpsertPerson, Role::RosterAdmin) if outside => Answer {
                    code: Code::PermissionDenied,
                    message: "this token may not write roster records outside its regions".into(),
                    records: 0,
                },
                (Rpc::ImportPersons, Role::RosterAdmin) if outside => Answer {
                    code: Code::Ok,
                    message: String::new(),
                    records: 0,
                },
                _ => {
                    let unlimited = Some(unscoped(role));
                    let mut wanted =
                        call_about(&channel, &fixtures, rpc, unlimited, "H001", expected).await;
                    // Listed by region or day, not by patient: the
                    // patient's records are left out, nothing else differs.
                    let listed = matches!(
                        rpc,
                        Rpc::ListReferrals
                            | Rpc::SimulatePolicy
                            | Rpc::ListRetroactiveCandidates
                            | Rpc::ExportPersons
                            | Rpc::ReconcileDay
                            | Rpc::ListDaySettlements
                            | Rpc::ExportSettlements
                            | Rpc::ListApplications
                            | Rpc::GetYearStatistics
                    );
                    if outside && listed && wanted.code == Code::Ok {
                        wanted.records = 0;
                    }
                    wanted
                }
            };
            assert_eq!(got, wanted, "{rpc:?} by {token} (as for {about})");
            checked += 1;
        }
    }
    assert_eq!(checked, 336);
}

/// Proves open mode refuses to listen off loopback.
#[tokio::test]
async fn open_mode_refuses_to_listen_off_loopback() {
    let dir = TempDir::new().unwrap();
    let mut config = TestServer::config_for(&dir);
    config.listen = "0.0.0.0:0".parse().unwrap();
    let refused = medassist::server::Server::bind(config)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("without authentication"),
        "{refused}"
    );
}

/// A CA, and certificates it signs.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: TempDir::new().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>-ca.pem` and returns the issuer to sign with.
    pub fn ca(&self, name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(self.path(&format!("{name}-ca.pem")), ca.pem()).unwrap();
        ca
    }

    /// Writes `<name>.pem` and `<name>.key`, signed by `ca`, for `localhost`.
    pub fn leaf(&self, name: &str, ca: &CertifiedIssuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// A TLS channel trusting `ca`, presenting `identity` (a leaf name) if any.
    pub async fn channel(
        &self,
        server: &TestServer,
        ca: &str,
        identity: Option<&str>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read(ca)))
            .domain_name("localhost");
        if let Some(name) = identity {
            tls = tls.identity(Identity::from_pem(
                self.read(&format!("{name}.pem")),
                self.read(&format!("{name}.key")),
            ));
        }
        Channel::from_shared(format!("https://{}", server.addr))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await
    }
}

async fn healthy(channel: Channel) -> Result<(), Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
}

async fn tls_server(pki: &Pki, client_ca: Option<&str>) -> TestServer {
    let config = Config {
        tls: Some(TlsFiles {
            cert: pki.path("server.pem"),
            key: pki.path("server.key"),
            client_ca: client_ca.map(|ca| pki.path(ca)),
        }),
        ..Config::default()
    };
    TestServer::start_with(Arc::new(TempDir::new().unwrap()), config).await
}

/// Proves a TLS server answers a TLS client and refuses a plaintext one.
#[tokio::test]
async fn tls_clients_succeed_and_plaintext_fails() {
    let pki = Pki::new();
    let ca = pki.ca("server");
    pki.leaf("server", &ca);
    let server = tls_server(&pki, None).await;
    let channel = pki
        .channel(&server, "server-ca.pem", None)
        .await
        .expect("TLS handshake");
    healthy(channel.clone())
        .await
        .expect("a TLS client is served");
    let patient = resident_id("1960-01-01", 311);
    RosterServiceClient::new(channel.clone())
        .upsert_person(pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .unwrap();
    let settled = SettlementServiceClient::new(channel)
        .settle(worked_example(&patient, "TLS-1"))
        .await
        .unwrap();
    assert_eq!(
        settled.into_inner().settlement.unwrap().assistance_amount,
        "7350.00"
    );
    assert!(
        healthy(server.channel()).await.is_err(),
        "plaintext is refused"
    );
}

/// Proves mTLS: a client certificate from the configured CA is served; none,
/// or one from another CA, is refused.
#[tokio::test]
async fn mtls_requires_a_certificate_from_the_configured_ca() {
    let pki = Pki::new();
    let server_ca = pki.ca("server");
    pki.leaf("server", &server_ca);
    let hospitals_ca = pki.ca("hospitals");
    pki.leaf("hospital", &hospitals_ca);
    let foreign_ca = pki.ca("foreign");
    pki.leaf("stranger", &foreign_ca);
    let server = tls_server(&pki, Some("hospitals-ca.pem")).await;

    let trusted = pki
        .channel(&server, "server-ca.pem", Some("hospital"))
        .await
        .expect("handshake");
    healthy(trusted)
        .await
        .expect("a hospital certificate is served");
    for identity in [None, Some("stranger")] {
        let refused = match pki.channel(&server, "server-ca.pem", identity).await {
            Err(_) => true,
            Ok(channel) => healthy(channel).await.is_err(),
        };
        assert!(refused, "client certificate {identity:?} must be refused");
    }
}

/// Proves a settlement records who made it and who reversed it: the
/// configured name of each caller's token, kept on the record and shown to
/// whoever may read it (here the auditor).
#[tokio::test]
async fn settlements_record_the_name_of_the_token() {
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), guarded_config()).await;
    let channel = server.channel();
    let fixtures = Fixtures::new(&channel).await;
    let mut hospital =
        SettlementServiceClient::with_interceptor(channel.clone(), bearer(Some("t-h001")));
    hospital
        .reverse(pb::ReverseRequest {
            hospital_id: "H001".into(),
            claim_id: "FIX".into(),
            reason: "wrong patient".into(),
        })
        .await
        .unwrap();
    let mut auditor = SettlementServiceClient::with_interceptor(channel, bearer(Some("t-auditor")));
    let read = auditor
        .get_settlement(pb::GetSettlementRequest {
            settlement_id: fixtures.settlement_id_of("H001"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.settled_by, "test t-h001");
    assert_eq!(read.reversed_by, "test t-h001");
    let other = auditor
        .get_settlement(pb::GetSettlementRequest {
            settlement_id: fixtures.settlement_id_of("H002"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.settled_by, "test t-h002");
    assert_eq!(other.reversed_by, "", "not reversed");
}
