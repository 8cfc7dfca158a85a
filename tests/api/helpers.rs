//! Starts the real server on 127.0.0.1:0 with a temporary data directory and
//! hands out real tonic clients. No sleeps: `Server::bind` returns once the
//! port is bound, so clients may connect at once.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use medassist::{
    auth::{Principal, Role, TokenDigest, TokenEntry},
    clock::ManualClock,
    config::Config,
    domain::{Date, HospitalId, RegionCode, ResidentId, Timestamp},
    edge::Edge,
    grpc::GateState,
    grpc::pb::{
        self, policy_service_client::PolicyServiceClient,
        reconciliation_service_client::ReconciliationServiceClient,
        roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
    server::{Reloader, Server, ServerConfig},
    store::{PostgresStore, Schema, SledOptions, SledStore, Store},
    verify::{VerifyReport, verify},
};
use tempfile::TempDir;

use crate::backend;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    task::JoinHandle,
};
use tonic::transport::Channel;

/// A running server and what it needs to be stopped or restarted.
pub struct TestServer {
    pub dir: Arc<TempDir>,
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub gate: Arc<GateState>,
    pub edge: Arc<Edge>,
    pub reloader: Reloader,
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
        let mut server_config = Self::config_for(&dir);
        server_config.config = config;
        Self::launch(dir, server_config, None).await
    }

    /// A server on `dir` over a store the test opened itself (for example
    /// one with injected faults) in `data_dir(&dir)`.
    pub async fn start_with_store(dir: Arc<TempDir>, store: Arc<dyn Store>) -> TestServer {
        let server_config = Self::config_for(&dir);
        Self::launch(dir, server_config, Some(store)).await
    }

    /// A server on a fresh directory whose commits are stamped by `clock`.
    pub async fn start_with_clock(clock: Arc<ManualClock>) -> TestServer {
        let dir = Arc::new(TempDir::new().unwrap());
        let mut config = Self::config_for(&dir);
        config.clock = clock;
        Self::launch(dir, config, None).await
    }

    /// The configuration of a test server on `dir`: port 0, defaults
    /// otherwise, on the suite's store (see [`crate::backend`]).
    pub fn config_for(dir: &TempDir) -> ServerConfig {
        let mut config = ServerConfig::new(local(), data_dir(dir));
        if backend::on_postgres() {
            config.database_url = Some(backend::database_for(&data_dir(dir)));
        }
        config
    }

    /// The configuration of a server on the PostgreSQL database `url`,
    /// whichever store the rest of the suite runs on.
    pub fn config_on(dir: &TempDir, url: String) -> ServerConfig {
        let mut config = ServerConfig::new(local(), data_dir(dir));
        config.database_url = Some(url);
        config
    }

    /// A server on the PostgreSQL database `url`, in a directory of its own.
    pub async fn on_database(url: String) -> TestServer {
        let dir = Arc::new(TempDir::new().unwrap());
        let config = TestServer::config_on(&dir, url);
        TestServer::launch(dir, config, None).await
    }

    /// Binds and runs a server; the returned handle's channel connects lazily,
    /// so servers that speak TLS can be started too.
    pub async fn launch(
        dir: Arc<TempDir>,
        config: ServerConfig,
        store: Option<Arc<dyn Store>>,
    ) -> TestServer {
        let server = match store {
            Some(store) => Server::bind_with_store(config, store).await,
            None => Server::bind(config).await,
        }
        .expect("server starts");
        let (addr, metrics_addr, http_addr, gate, edge, reloader) = (
            server.local_addr(),
            server.metrics_addr(),
            server.http_addr(),
            server.gate(),
            server.edge(),
            server.reloader(),
        );
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
            .connect_lazy();
        TestServer {
            dir,
            addr,
            metrics_addr,
            http_addr,
            gate,
            edge,
            reloader,
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

    pub fn reconciliation(&self) -> ReconciliationServiceClient<Channel> {
        ReconciliationServiceClient::new(self.channel.clone())
    }

    /// The patient's annual usage, which the test expects to exist.
    pub async fn annual_usage(&self, patient_id: &str, year: i32) -> pb::AnnualUsage {
        self.usage()
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: patient_id.to_owned(),
                year,
            })
            .await
            .expect("the patient has an annual usage")
            .into_inner()
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

/// The built-in policy's terms as a policy file: Nantong city, from 2020,
/// at the seed's floors.
pub const CITY_POLICY: &str = r#"
[[policy]]
region_code = "320600"
year = 2020
assistance_ratio = "0.70"
cap_fraction = "0.50"
basic_insurance_annual_cap = "300000.00"
"#;

/// A moment written in RFC 3339 (`2026-11-30T15:59:59Z`), for a test clock.
pub fn at(text: &str) -> Timestamp {
    Timestamp::from(
        text.parse::<chrono::DateTime<chrono::Utc>>()
            .expect("an RFC 3339 moment"),
    )
}

/// Where a test server keeps its store inside its temporary directory.
pub fn data_dir(dir: &TempDir) -> PathBuf {
    dir.path().join("data")
}

/// Runs the consistency check on a stopped server's store: its directory,
/// or its database on PostgreSQL.
pub fn verify_dir(dir: &TempDir) -> VerifyReport {
    if backend::on_postgres() {
        return verify_postgres(&backend::database_for(&data_dir(dir)));
    }
    let store = SledStore::open(&data_dir(dir), SledOptions::default()).expect("store opens");
    verify(&store).expect("the check runs")
}

/// Runs the consistency check on a PostgreSQL database.
pub fn verify_postgres(url: &str) -> VerifyReport {
    let store = PostgresStore::open(url, None, Schema::Expect).expect("database opens");
    verify(&store).expect("the check runs")
}

pub fn local() -> SocketAddr {
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
        claim_kind: pb::ClaimKind::Unspecified.into(),
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

/// The settlement of a successful settle-like call, and whether it was a
/// replay; every answer's `answer` agrees with its `replayed`.
pub fn settled(
    response: Result<tonic::Response<pb::SettleResponse>, tonic::Status>,
) -> (pb::Settlement, bool) {
    let (settlement, answer) = settled_as(response);
    let replayed = matches!(
        answer,
        pb::SettleAnswer::AlreadySettled | pb::SettleAnswer::AlreadyReversed
    );
    (settlement, replayed)
}

/// The settlement of a successful settle-like call, and what the answer
/// says it means for the bill.
pub fn settled_as(
    response: Result<tonic::Response<pb::SettleResponse>, tonic::Status>,
) -> (pb::Settlement, pb::SettleAnswer) {
    let response = response.expect("call succeeds").into_inner();
    let answer = response.answer();
    assert_ne!(
        answer,
        pb::SettleAnswer::Unspecified,
        "every answer says what it means"
    );
    let replay = matches!(
        answer,
        pb::SettleAnswer::AlreadySettled | pb::SettleAnswer::AlreadyReversed
    );
    assert_eq!(
        response.replayed, replay,
        "answer {answer:?} agrees with replayed"
    );
    (response.settlement.expect("a settlement"), answer)
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

/// The medassist binary cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_medassist");

/// The server as a child process, with the address it announced and every
/// line it logged.
pub struct ServerProcess {
    child: Child,
    /// The server's own pid: the child's, or the wrapper's child when the
    /// binary runs under a wrapper such as strace.
    server_pid: u32,
    pub addr: SocketAddr,
    pub channel: Channel,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts the binary on port 0 with `extra` arguments and reads the bound
    /// address from its log (the line `serving addr=...`); a thread keeps
    /// reading the log so the child never blocks on a full pipe.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        Self::try_start(data_dir, extra)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`ServerProcess::start`], with a chosen `RUST_LOG` filter.
    pub async fn start_logging(data_dir: &Path, extra: &[&str], filter: &str) -> ServerProcess {
        let mut command = Command::new(BINARY);
        Self::serve_args(&mut command, data_dir, extra, filter);
        Self::spawn(command, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`ServerProcess::start`], answering how the server exited, and
    /// what it logged, when it does not start serving (a store it refuses
    /// to open): for a test that must say more than that it did not start.
    pub async fn try_start(data_dir: &Path, extra: &[&str]) -> Result<ServerProcess, NotServing> {
        let mut command = Command::new(BINARY);
        Self::serve_args(&mut command, data_dir, extra, "medassist::server=info,warn");
        Self::spawn(command, false).await
    }

    /// Like [`ServerProcess::start`], with the binary run by `wrapper` (a
    /// program and its arguments, such as `strace -o FILE`), which must run
    /// the command it is given as its only child and exit with its status.
    /// [`ServerProcess::terminate`] then signals the server itself, so the
    /// wrapper sees the whole graceful shutdown.
    pub async fn start_wrapped(wrapper: &[&str], data_dir: &Path, extra: &[&str]) -> ServerProcess {
        let (program, args) = wrapper.split_first().expect("a wrapper program");
        let mut command = Command::new(program);
        command.args(args).arg(BINARY);
        Self::serve_args(&mut command, data_dir, extra, "medassist::server=info,warn");
        Self::spawn(command, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The arguments and environment of `medassist serve` on port 0. Tests
    /// stop at once (`--drain 0s`) unless `extra` asks for a drain period.
    fn serve_args(command: &mut Command, data_dir: &Path, extra: &[&str], filter: &str) {
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", filter);
        if backend::on_postgres() {
            command.env("DATABASE_URL", backend::database_for(data_dir));
        }
        if !extra.contains(&"--drain") {
            command.args(["--drain", "0s"]);
        }
        // Its own port, not the default 8080 every test would share.
        if !extra.contains(&"--http-listen") {
            command.args(["--http-listen", "127.0.0.1:0"]);
        }
    }

    /// Spawns `command`, whose stderr carries the server's log, and connects
    /// once the server announced its address; a server that exits first, or
    /// announces nothing for a minute (then it is killed), is reaped and
    /// answered with its log.
    async fn spawn(mut command: Command, wrapped: bool) -> Result<ServerProcess, NotServing> {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("serving addr=").nth(1) {
                    let _ = addr_tx.send(addr.trim().to_owned());
                }
                if let Some(addr) = line
                    .split(r#""addr":""#)
                    .nth(1)
                    .filter(|_| line.contains(r#""message":"serving""#))
                {
                    let _ = addr_tx.send(addr.split('"').next().unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = addr_rx.recv_timeout(Duration::from_secs(60)) else {
            // Killing a child that has exited, not yet reaped, is harmless.
            let _ = child.kill();
            let status = child.wait().expect("the child is reaped");
            // Not joined: the sender is gone only once the reader has read
            // every line, and a silent server's log has nothing more to say.
            let log = std::mem::take(&mut *log.lock().unwrap());
            return Err(NotServing { status, log });
        };
        // The server logged, so the wrapper has forked and exec'd it already.
        let server_pid = if wrapped {
            wrapped_child(child.id())
        } else {
            child.id()
        };
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connects");
        Ok(ServerProcess {
            addr: addr.parse().expect("the announced address parses"),
            child,
            server_pid,
            channel,
            log,
            reader: Some(reader),
        })
    }

    /// The HTTP/JSON address the server announced so far (`--http-listen`),
    /// from its text or JSON log line.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|line| line.contains("serving HTTP/JSON"))?;
        let text = match line.split_once(r#""addr":""#) {
            Some((_, rest)) => rest.split('"').next()?,
            None => line.split("addr=").nth(1)?.split_whitespace().next()?,
        };
        text.parse().ok()
    }

    /// True when a line the server logged so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }

    /// How many lines the server logged so far contain `text`.
    pub fn logged_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }

    /// Sends SIGHUP: reload the configuration file.
    pub fn hang_up(&self) {
        signal(self.server_pid, "-HUP");
    }

    /// The child's process ID, for a guard that must kill it on panic.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        if self.server_pid != self.child.id() {
            signal(self.server_pid, "-KILL");
        }
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("the child is reaped");
    }

    /// Stops the server with SIGTERM and waits for a clean exit; returns its
    /// log. The wait runs off the test's runtime thread, which must stay free
    /// to close the client's connection when the server asks.
    pub async fn terminate(self) -> Vec<String> {
        self.ask_to_stop();
        self.wait_for_exit().await
    }

    /// The server's log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and returns at once, so a test can watch the drain.
    pub fn ask_to_stop(&self) {
        signal(self.server_pid, "-TERM");
    }

    /// Waits for the server asked to stop to exit cleanly; returns its log.
    pub async fn wait_for_exit(mut self) -> Vec<String> {
        let (mut child, reader) = (self.child, self.reader.take());
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .expect("the child exits");
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
        // The reader thread ends at end of file, which exit guarantees.
        if let Some(reader) = reader {
            tokio::task::spawn_blocking(move || reader.join())
                .await
                .unwrap()
                .expect("the log reader ends");
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// A server that never announced its address: how it exited, and every
/// line it logged.
#[derive(Debug)]
pub struct NotServing {
    pub status: ExitStatus,
    pub log: Vec<String>,
}

/// Lines of a server's log that a failure message shows, at most.
const LINES_SHOWN: usize = 20;

impl std::fmt::Display for NotServing {
    /// The exit status and the last lines logged, where a server says why
    /// it stopped; a panic's backtrace (indented lines after `stack
    /// backtrace:`) is left out, so its message stays in view.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut in_backtrace = false;
        let said: Vec<&String> = self
            .log
            .iter()
            .filter(|line| {
                in_backtrace =
                    line.starts_with("stack backtrace:") || (in_backtrace && line.starts_with(' '));
                !in_backtrace
            })
            .collect();
        let skipped = said.len().saturating_sub(LINES_SHOWN);
        write!(
            f,
            "the server exited ({}) without announcing its address; the last {} lines it \
             logged (backtraces left out):",
            self.status,
            said.len() - skipped
        )?;
        for line in &said[skipped..] {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pid` with kill(1).
fn signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {signal} {pid} failed");
}

/// The one child of the wrapper process `pid`, from /proc: the server it ran.
fn wrapped_child(pid: u32) -> u32 {
    let path = format!("/proc/{pid}/task/{pid}/children");
    let children = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match children.split_whitespace().collect::<Vec<_>>()[..] {
        [only] => only.parse().expect("a pid"),
        ref other => panic!("the wrapper {pid} should have one child, has {other:?}"),
    }
}

/// SIGKILLs and reaps the child process (a server) if the test panics, so
/// nothing it holds (a mount, a database) stays busy after the test.
pub struct KillOnPanic(pub Option<u32>);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take()
            && std::thread::panicking()
        {
            // SAFETY: plain syscalls on a child this test started and has
            // not reaped yet.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// The environment variable `name` parsed, or `default` when it is unset
/// or does not parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Every settlement of a paged list: `page` fetches the page a token names
/// ("" for the first) and answers its settlements and the next page's
/// token; pages are read until one comes without a token.
pub async fn all_pages<F, Fut>(mut page: F) -> Vec<pb::Settlement>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = (Vec<pb::Settlement>, String)>,
{
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let (settlements, next) = page(token).await;
        all.extend(settlements);
        if next.is_empty() {
            return all;
        }
        token = next;
    }
}

/// A configured token for `role` (of `hospital`, for a hospital), named
/// after the token, seeing every region.
pub fn token_entry(token: &str, role: Role, hospital: Option<&str>) -> TokenEntry {
    token_entry_in(token, role, hospital, &[])
}

/// A configured token limited to `regions` (every region when empty).
pub fn token_entry_in(
    token: &str,
    role: Role,
    hospital: Option<&str>,
    regions: &[&str],
) -> TokenEntry {
    let digest = TokenDigest::of(token);
    TokenEntry {
        digest,
        principal: Arc::new(Principal {
            id: Principal::id_of(digest),
            name: format!("test {token}"),
            role,
            hospital_id: hospital.map(|h| HospitalId::parse(h).unwrap()),
            regions: regions
                .iter()
                .map(|r| RegionCode::parse(r).unwrap())
                .collect(),
        }),
    }
}

/// Adds `authorization: Bearer <token>` to every call, or nothing.
pub fn bearer(
    token: Option<&'static str>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut request: tonic::Request<()>| {
        if let Some(token) = token {
            let value =
                tonic::metadata::MetadataValue::try_from(format!("Bearer {token}")).unwrap();
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// One HTTP/1.1 request; the status and the raw body.
pub async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or_default();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: medassist\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a header block");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// One HTTP/1.1 request whose answer is a JSON document.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = http_raw(addr, method, path, token, body.as_deref()).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, json)
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
