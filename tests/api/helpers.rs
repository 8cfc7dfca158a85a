//! Starts the real server on 127.0.0.1:0 with a temporary data directory and
//! hands out real tonic clients. No sleeps: `Server::bind` returns once the
//! port is bound, so clients may connect at once.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use medassist::{
    config::Config,
    domain::{Date, RegionCode, ResidentId},
    grpc::pb::{
        self, policy_service_client::PolicyServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
    server::{Server, ServerConfig},
    store::{SledOptions, SledStore, Store},
    verify::{VerifyReport, verify},
};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// A running server and what it needs to be stopped or restarted.
pub struct TestServer {
    pub dir: Arc<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    channel: Channel,
}

impl TestServer {
    /// A server on a fresh directory with the built-in policy.
    pub async fn start() -> TestServer {
        Self::start_with(Arc::new(TempDir::new().unwrap()), Config::default()).await
    }

    /// A server on `dir` (kept alive by the Arc) with `config`.
    pub async fn start_with(dir: Arc<TempDir>, config: Config) -> TestServer {
        let mut server_config = ServerConfig::new(local(), data_dir(&dir));
        server_config.config = config;
        let server = Server::bind(server_config).await.expect("server starts");
        Self::spawn(server, dir).await
    }

    /// A server on `dir` over a store the test opened itself (for example
    /// one with injected faults) in `data_dir(&dir)`.
    pub async fn start_with_store(dir: Arc<TempDir>, store: Arc<dyn Store>) -> TestServer {
        let server = Server::bind_with_store(local(), store, Config::default(), Default::default())
            .await
            .expect("server starts");
        Self::spawn(server, dir).await
    }

    async fn spawn(server: Server, dir: Arc<TempDir>) -> TestServer {
        let addr = server.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stop.await;
                })
                .await
                .expect("server runs");
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("client connects");
        TestServer {
            dir,
            shutdown: Some(shutdown),
            handle: Some(handle),
            channel,
        }
    }

    /// Stops the server gracefully and waits until its store is closed.
    pub async fn stop(mut self) -> Arc<TempDir> {
        self.shutdown.take().map(|s| s.send(()));
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task ends cleanly");
        }
        Arc::clone(&self.dir)
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn settlements(&self) -> SettlementServiceClient<Channel> {
        SettlementServiceClient::new(self.channel.clone())
    }

    pub fn usage(&self) -> UsageServiceClient<Channel> {
        UsageServiceClient::new(self.channel.clone())
    }

    pub fn roster(&self) -> RosterServiceClient<Channel> {
        RosterServiceClient::new(self.channel.clone())
    }

    pub fn policies(&self) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::new(self.channel.clone())
    }

    /// Puts a dibao member (enrolled since 2020, open-ended) on the roster
    /// in county 320602, and returns the resident ID.
    pub async fn enroll(&self, birth: &str, sequence: u16) -> String {
        let id = resident_id(birth, sequence);
        self.roster()
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(&id)),
            })
            .await
            .expect("roster accepts the person");
        id
    }
}

/// Where a test server keeps its store inside its temporary directory.
pub fn data_dir(dir: &TempDir) -> PathBuf {
    dir.path().join("data")
}

/// Runs the offline consistency check on a stopped server's directory.
pub fn verify_dir(dir: &TempDir) -> VerifyReport {
    let store = SledStore::open(&data_dir(dir), SledOptions::default()).expect("store opens");
    verify(&store).expect("the check runs")
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A valid resident ID of region 320602 for a birth date `YYYY-MM-DD`.
pub fn resident_id(birth: &str, sequence: u16) -> String {
    let region = RegionCode::parse("320602").unwrap();
    ResidentId::compose(region, Date::parse(birth).unwrap(), sequence)
        .as_str()
        .to_owned()
}

/// A dibao member since 2020 in county 320602.
pub fn dibao_person(id: &str) -> pb::Person {
    pb::Person {
        patient_id: id.to_owned(),
        name: "张三".into(),
        region_code: "320602".into(),
        enrollments: vec![pb::Enrollment {
            kind: pb::EnrollmentKind::Dibao.into(),
            valid_from: "2020-01-01".into(),
            valid_to: String::new(),
            exit: pb::ExitKind::Unspecified.into(),
        }],
        psychiatric_disability_grade: 0,
        paralysis_certified: false,
    }
}

/// The worked example of DOMAIN.md: uraemia, total 50,000.00, in scope
/// 42,000.00, basic 25,200.00, critical illness 6,300.00.
pub fn worked_example(patient_id: &str, claim_id: &str) -> pb::SettleRequest {
    pb::SettleRequest {
        hospital_id: "H001".into(),
        claim_id: claim_id.into(),
        patient_id: patient_id.into(),
        admission_date: "2026-03-01".into(),
        discharge_date: "2026-03-20".into(),
        diagnosis_codes: vec!["N18.500".into()],
        total_cost: "50000.00".into(),
        in_scope_cost: "42000.00".into(),
        basic_insurance_paid: "25200.00".into(),
        critical_illness_paid: "6300.00".into(),
    }
}

/// A claim worth 7,000.00 of assistance before the cap: 10,000.00 in scope,
/// nothing paid by either insurance.
pub fn claim_paying_7000(patient_id: &str, claim_id: &str) -> pb::SettleRequest {
    pb::SettleRequest {
        total_cost: "10000.00".into(),
        in_scope_cost: "10000.00".into(),
        basic_insurance_paid: "0".into(),
        critical_illness_paid: "0".into(),
        ..worked_example(patient_id, claim_id)
    }
}

/// The settlement of a successful settle-like call.
pub fn settled(
    response: Result<tonic::Response<pb::SettleResponse>, tonic::Status>,
) -> (pb::Settlement, bool) {
    let response = response.expect("call succeeds").into_inner();
    (
        response.settlement.expect("a settlement"),
        response.replayed,
    )
}

/// The fields named by an INVALID_ARGUMENT status's BadRequest details.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// An amount from the wire ("1234.50") in fen, for exact sums in tests.
pub fn fen(amount: &str) -> i64 {
    let (yuan, fen) = amount.split_once('.').expect("two decimals");
    yuan.parse::<i64>().unwrap() * 100 + fen.parse::<i64>().unwrap()
}
