//! Failover: two instances of the real binary on one PostgreSQL 15 primary
//! with a synchronous standby, both clusters made by this test under a
//! temporary directory (PostgreSQL's programs run as the `postgres` user
//! when the test runs as root, which PostgreSQL refuses).
//!
//! Clients settle, reverse and retry on both instances through the whole
//! drill. The primary is stopped (`pg_ctl stop -m immediate`); both
//! instances must report NOT_SERVING within a few seconds and fail a settle
//! with UNAVAILABLE at once rather than hang; the standby is promoted, and
//! both must serve and settle again within 10 s, without a restart, through
//! the one multi-host URL they started with. Afterwards every acknowledged
//! settlement and reversal must be there unchanged, each request whose
//! answer was lost must settle (or replay) exactly once when retried, usage
//! must equal the settlements and stay within the cap, and `medassist
//! verify` must pass on the new primary.
//!
//! The primary goes in one of two ways. Stopped: its connections close and
//! its port refuses. Hung (every process of it SIGSTOPped): its port still
//! completes the TCP handshake and its connections stay open, but nothing
//! ever answers, as from a primary stuck on its disk or a paused VM; calls
//! waiting on it fail once the instances find it gone, and it is killed once
//! both instances serve again (the fencing a real failover does).
//!
//! One failover by default; `MEDASSIST_FAILOVER_ROUNDS=N` fails over N
//! times, each time giving the new primary a fresh synchronous standby (a
//! base backup on the old primary's port) first. `benches/failover.sh` runs
//! the long drill.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use medassist::grpc::pb::settlement_service_client::SettlementServiceClient;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{backend::sql_at, chaos::*, clusters::*, helpers::*};

/// Clients on each instance; they send the load of [`MIX`] on [`PATIENTS`].
const CLIENTS_PER_INSTANCE: usize = 3;
/// Answers the clients receive before each failover, and after it before
/// the next (the load goes on throughout).
const ANSWERS_BEFORE: usize = 150;
const ANSWERS_AFTER: usize = 150;
/// How the primary goes.
#[derive(Clone, Copy, PartialEq)]
enum Loss {
    /// `pg_ctl stop -m immediate`.
    Stopped,
    /// Every process SIGSTOPped, then killed once the instances serve again.
    Hung,
}

impl Loss {
    /// Longest a call may take before the test calls it hung: the client
    /// gives up, and the failure is counted under its own code, not
    /// UNAVAILABLE. With a hung primary, a call already waiting on it ends
    /// when the monitor finds the primary gone: its next check (within 1 s)
    /// waits out the hung host (2 s), or at worst, when it was itself
    /// waiting on it, its own bound (the hosts' 4 s and 2 s).
    fn call_limit(self) -> Duration {
        match self {
            Loss::Stopped => Duration::from_secs(5),
            Loss::Hung => Duration::from_secs(8),
        }
    }
}
/// How soon after the primary stops both instances must say NOT_SERVING.
const NOT_SERVING_WITHIN: Duration = Duration::from_secs(5);
/// How soon a settle must fail while there is no primary.
const FAIL_FAST_WITHIN: Duration = Duration::from_secs(3);
/// How long the primary stays down before the standby is promoted, as a
/// real failover's detection and decision keep it down: long enough for
/// the instances' retries to back off to their longest wait (2 s), the
/// worst case for the recovery measured next.
const OUTAGE: Duration = Duration::from_secs(4);
/// How soon after the promotion both instances must serve and settle.
const RECOVERY_WITHIN: Duration = Duration::from_secs(10);
impl Clusters {
    /// Makes `node` go as `loss` says.
    fn lose(&mut self, node: &Node, loss: Loss) {
        match loss {
            Loss::Stopped => self.stop_immediately(node),
            Loss::Hung => self.hang(node),
        }
    }
}

/// The server's overall health (service "").
async fn health(channel: &Channel) -> Result<ServingStatus, tonic::Status> {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|answer| answer.into_inner().status())
}

/// What one failover measured.
struct Failover {
    /// From the primary's stop until both instances said NOT_SERVING.
    not_serving: Duration,
    /// The slowest settle while there was no primary (each UNAVAILABLE).
    failed_within: Duration,
    /// What `pg_ctl promote -w` took.
    promotion: Duration,
    /// From the promotion's start until both instances said SERVING and
    /// settled a new claim.
    serving_again: Duration,
}

/// The drill's instances (their channels bound each call by
/// [`Loss::call_limit`]), the model their clients share, and the clusters. On a
/// panic the instances are killed first, then the clusters stopped.
struct Drill {
    guards: Vec<KillOnPanic>,
    servers: Vec<ServerProcess>,
    channels: Vec<Channel>,
    model: Arc<Mutex<Model>>,
    patients: Arc<Vec<String>>,
    clusters: Clusters,
}

impl Drill {
    /// The servers' last log lines and the clusters' logs, for failures.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (n, server) in self.servers.iter().enumerate() {
            let lines = server.log_lines();
            let _ = writeln!(out, "--- instance {n} (last lines)");
            for line in lines.iter().rev().take(15).rev() {
                let _ = writeln!(out, "{line}");
            }
        }
        out + &self.clusters.logs()
    }

    /// A new claim for the drill's own probes, recorded like the clients'.
    async fn probe(&self, instance: usize, name: &str) -> Result<(), tonic::Status> {
        let patient = &self.patients[instance % self.patients.len()];
        let request = claim_paying_7000(patient, name);
        let mut settlements = SettlementServiceClient::new(self.channels[instance].clone());
        settle_new(&mut settlements, &self.model, request).await
    }

    /// Stops `primary`, checks what the instances say without one, promotes
    /// `standby`, and waits until both instances serve and settle again.
    async fn fail_over(
        &mut self,
        round: usize,
        primary: &Node,
        standby: &Node,
        loss: Loss,
    ) -> Failover {
        self.clusters.lose(primary, loss);
        let stopped = Instant::now();
        for channel in &self.channels {
            loop {
                if health(channel).await.ok() == Some(ServingStatus::NotServing) {
                    break;
                }
                assert!(
                    stopped.elapsed() < NOT_SERVING_WITHIN,
                    "an instance still reports serving {NOT_SERVING_WITHIN:?} after the primary went\n{}",
                    self.logs()
                );
                tokio::time::sleep(POLL).await;
            }
        }
        let not_serving = stopped.elapsed();

        let mut failed_within = Duration::ZERO;
        for instance in 0..self.channels.len() {
            let sent = Instant::now();
            let failed = self
                .probe(instance, &format!("down-{round}-{instance}"))
                .await;
            let took = sent.elapsed();
            let status = failed.expect_err("a settle without a primary fails");
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(
                took < FAIL_FAST_WITHIN,
                "a settle without a primary took {took:?} to fail"
            );
            failed_within = failed_within.max(took);
        }

        tokio::time::sleep_until((stopped + OUTAGE).into()).await;
        let promoting = Instant::now();
        self.clusters.promote(standby);
        let promotion = promoting.elapsed();
        for instance in 0..self.channels.len() {
            let mut attempt = 0;
            loop {
                let serving = health(&self.channels[instance]).await.ok();
                if serving == Some(ServingStatus::Serving) {
                    attempt += 1;
                    let name = format!("up-{round}-{instance}-{attempt}");
                    if self.probe(instance, &name).await.is_ok() {
                        break;
                    }
                }
                assert!(
                    promoting.elapsed() < RECOVERY_WITHIN,
                    "instance {instance} does not serve {RECOVERY_WITHIN:?} after the promotion \
                     (health {serving:?}, {attempt} settles tried)\n{}",
                    self.logs()
                );
                tokio::time::sleep(POLL).await;
            }
        }
        let serving_again = promoting.elapsed();
        assert!(
            serving_again <= RECOVERY_WITHIN,
            "both instances served and settled only {serving_again:?} after the promotion\n{}",
            self.logs()
        );
        self.clusters.kill_hung();
        Failover {
            not_serving,
            failed_within,
            promotion,
            serving_again,
        }
    }
}

/// Waits until the clients have `more` answers than now; at most a minute,
/// so a client that failed an assertion cannot hang the test.
async fn more_answers(shared: &Cycle, more: usize, when: &str) {
    let target = shared.acknowledged() + more;
    tokio::time::timeout(Duration::from_secs(60), shared.reached(target))
        .await
        .unwrap_or_else(|_| panic!("the clients are not answered {when}"));
}

/// Proves that a PostgreSQL failover under load loses no acknowledged
/// settlement or reversal and settles no claim twice: both instances stop
/// serving at once when the primary stops (failing calls with UNAVAILABLE,
/// not hanging), serve again within 10 s of the standby's promotion through
/// the same multi-host URL, and every answer lost meanwhile resolves
/// exactly once when retried; usage stays within the cap and `verify`
/// passes on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_under_load_loses_no_acknowledged_write() {
    drill(Loss::Stopped).await;
}

/// Proves the same when the primary hangs instead (its port still accepts
/// TCP connections, its connections stay open, nothing answers): the
/// instances say NOT_SERVING within 5 s, calls waiting on it then fail with
/// UNAVAILABLE, and both instances find the promoted standby behind it
/// within 10 s of the promotion, while it still hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_primary_is_failed_over_too() {
    drill(Loss::Hung).await;
}

/// The drill: `MEDASSIST_FAILOVER_ROUNDS` failovers (1 by default) under
/// load, each losing the primary as `loss` says; then the checks.
async fn drill(loss: Loss) {
    let started = Instant::now();
    let rounds = env_or("MEDASSIST_FAILOVER_ROUNDS", 1usize);
    let mut clusters = Clusters::new();
    let ports = free_ports();
    let mut primary = clusters.primary(ports[0]);
    let mut standby = clusters.standby_of(&primary, ports[1]).await;
    sql_at(&primary.url("postgres"), "CREATE DATABASE medassist");
    let url = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/medassist?target_session_attrs=read-write",
        ports[0], ports[1]
    );

    let mut servers = Vec::new();
    let mut guards = Vec::new();
    for name in ["a", "b"] {
        let data_dir = clusters.root().join(format!("instance-{name}"));
        let server = ServerProcess::start(&data_dir, &["--database-url", &url]).await;
        guards.push(KillOnPanic(Some(server.id())));
        servers.push(server);
    }
    let channels: Vec<Channel> = servers
        .iter()
        .map(|server| {
            Channel::from_shared(format!("http://{}", server.addr))
                .unwrap()
                .timeout(loss.call_limit())
                .connect_lazy()
        })
        .collect();
    let model = Arc::new(Mutex::new(Model::default()));
    let patients = enroll_patients(&channels[0], &model, "1957-07-07", 400, PATIENTS, NEAR_CAP);
    let patients = Arc::new(patients.await);
    let mut drill = Drill {
        guards,
        channels,
        model,
        patients,
        servers,
        clusters,
    };

    let shared = Cycle::outlasting_outages();
    let clients: Vec<_> = (0..2 * CLIENTS_PER_INSTANCE)
        .map(|n| {
            let channel = drill.channels[n % 2].clone();
            let (model, patients) = (drill.model.clone(), drill.patients.clone());
            tokio::spawn(client(
                channel,
                model,
                patients,
                n as u64,
                MIX,
                shared.clone(),
            ))
        })
        .collect();

    let mut report = String::new();
    for round in 0..rounds {
        more_answers(&shared, ANSWERS_BEFORE, "before the failover").await;
        let lost_before = drill.model.lock().unwrap().lost();
        let failover = drill.fail_over(round, &primary, &standby, loss).await;
        // The standby is the primary now; the old primary's port is free.
        std::mem::swap(&mut primary, &mut standby);
        more_answers(&shared, ANSWERS_AFTER, "after the failover").await;
        let lost = drill.model.lock().unwrap().lost() - lost_before;
        let _ = writeln!(
            report,
            "failover {round}: NOT_SERVING after {:?}, settles failed within {:?}, \
             promotion took {:?}, both serving and settling {:?} after it; {lost} answers lost",
            failover.not_serving,
            failover.failed_within,
            failover.promotion,
            failover.serving_again
        );
        if round + 1 < rounds {
            standby = drill.clusters.standby_of(&primary, standby.port).await;
        }
    }

    shared.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client tasks assert nothing false");
    }
    let failures = shared.failures();
    let unexpected: Vec<_> = failures
        .iter()
        .filter(|(code, _)| *code != Code::Unavailable)
        .collect();
    assert!(
        unexpected.is_empty(),
        "calls failed otherwise than UNAVAILABLE: {unexpected:?}"
    );
    let (checked, resolved) =
        check_and_resolve(&drill.channels[0], &drill.model, &drill.patients).await;
    check_usage(&drill.channels[1], &drill.patients).await;

    // Each exits by itself now (terminate reaps it): no guard may kill it.
    for guard in &mut drill.guards {
        guard.0 = None;
    }
    for server in std::mem::take(&mut drill.servers) {
        server.terminate().await;
    }
    let verified = verify_database(&primary.url("medassist"), "the failovers");
    println!(
        "failover drill, primary {}: {rounds} failover(s), 2 instances, {} clients, {:.1} s\n{report}\
         writes acknowledged: {}; calls failed (all UNAVAILABLE): {}; \
         lost answers retried: {} ({} settles had landed and replayed, {} settled now, \
         {} reversals), each exactly once; {checked} settlements checked\n{}",
        match loss {
            Loss::Stopped => "stopped",
            Loss::Hung => "hung",
        },
        2 * CLIENTS_PER_INSTANCE,
        started.elapsed().as_secs_f64(),
        shared.writes.load(Ordering::SeqCst),
        failures.len(),
        resolved.total(),
        resolved.landed,
        resolved.settled,
        resolved.reversals,
        verified.trim()
    );
}
