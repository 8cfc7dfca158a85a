//! Crash recovery: the real binary as a child process, driven by concurrent
//! clients, killed with SIGKILL at random moments and restarted on the same
//! directory, cycle after cycle.
//!
//! After each kill the offline check (`medassist verify`) must pass; after
//! each restart every settlement and reversal acknowledged before the kill
//! must be there with identical content, retries of acknowledged requests
//! must replay, and requests whose answer was lost must settle exactly once
//! when retried. The generator is seeded (`MEDASSIST_CRASH_SEED` overrides
//! the seed), and the kill moment is a random number of acknowledgements.

use std::{
    collections::HashMap,
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use medassist::grpc::pb::{
    self, settlement_service_client::SettlementServiceClient,
    usage_service_client::UsageServiceClient,
};
use tempfile::TempDir;
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::helpers::*;

const CYCLES: usize = 20;
const WORKERS: usize = 8;
const PATIENTS: u16 = 24;
/// Patients that start each run with most of their cap already used.
const NEAR_CAP: u16 = 8;

/// What clients were told, and what they sent without hearing back.
#[derive(Default)]
struct Model {
    /// Acknowledged settle requests, by claim.
    requests: HashMap<String, pb::SettleRequest>,
    /// The latest acknowledged state of each settlement, by claim.
    settlements: HashMap<String, pb::Settlement>,
    /// Settles sent without an answer: their outcome is unknown.
    lost_settles: Vec<pb::SettleRequest>,
    /// Reversals sent without an answer.
    lost_reversals: Vec<pb::ReverseRequest>,
}

fn reverse_of(claim_id: &str) -> pb::ReverseRequest {
    pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: claim_id.into(),
        reason: "crash test".into(),
    }
}

/// Some claims are large, so patients near the cap are capped mid-run.
fn claim(rng: &mut fastrand::Rng, patient: &str, claim_id: &str) -> pb::SettleRequest {
    let amount = if rng.u8(0..10) == 0 {
        rng.u32(20_000..80_000)
    } else {
        rng.u32(1..3_000)
    };
    let amount = format!("{amount}.{:02}", rng.u32(0..100));
    pb::SettleRequest {
        total_cost: amount.clone(),
        in_scope_cost: amount,
        basic_insurance_paid: "0".into(),
        critical_illness_paid: "0".into(),
        ..worked_example(patient, claim_id)
    }
}

/// One cycle's shared state: acknowledgements so far, and when to stop.
struct Cycle {
    acknowledged: AtomicUsize,
    /// Signalled when `target` acknowledgements have arrived: time to kill.
    enough: Notify,
    target: usize,
    stop: AtomicBool,
}

/// One client: settles, reverses and retries until the server dies or the
/// cycle ends. A request without an answer goes to the model's lost lists.
async fn client(
    channel: Channel,
    model: Arc<Mutex<Model>>,
    patients: Arc<Vec<String>>,
    seed: u64,
    cycle: Arc<Cycle>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut settlements = SettlementServiceClient::new(channel);
    let mut n = 0;
    while !cycle.stop.load(Ordering::SeqCst) {
        n += 1;
        let roll = rng.u8(0..100);
        let retry = {
            let model = model.lock().unwrap();
            rng.choice(model.requests.values()).cloned()
        };
        let reverse = {
            let model = model.lock().unwrap();
            let open: Vec<&pb::Settlement> = model
                .settlements
                .values()
                .filter(|s| s.status() == pb::SettlementStatus::Settled)
                .collect();
            rng.choice(open).map(|s| s.claim_id.clone())
        };
        let answered = match (roll, retry, reverse) {
            (0..=19, Some(request), _) => match settlements.settle(request.clone()).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    assert!(answer.replayed, "a retry of an acknowledged settle replays");
                    let known = model.lock().unwrap().settlements[&request.claim_id]
                        .settlement_id
                        .clone();
                    assert_eq!(answer.settlement.unwrap().settlement_id, known);
                    true
                }
                Err(_) => false,
            },
            (20..=39, _, Some(claim_id)) => {
                let request = reverse_of(&claim_id);
                match settlements.reverse(request.clone()).await {
                    Ok(answer) => {
                        let settlement = answer.into_inner().settlement.unwrap();
                        assert_eq!(settlement.status(), pb::SettlementStatus::Reversed);
                        model
                            .lock()
                            .unwrap()
                            .settlements
                            .insert(claim_id, settlement);
                        true
                    }
                    Err(_) => {
                        model.lock().unwrap().lost_reversals.push(request);
                        false
                    }
                }
            }
            _ => {
                let patient = &patients[rng.usize(0..patients.len())];
                let request = claim(&mut rng, patient, &format!("s{seed}-{n}"));
                match settlements.settle(request.clone()).await {
                    Ok(answer) => {
                        let answer = answer.into_inner();
                        assert!(!answer.replayed);
                        let mut model = model.lock().unwrap();
                        model
                            .settlements
                            .insert(request.claim_id.clone(), answer.settlement.unwrap());
                        model.requests.insert(request.claim_id.clone(), request);
                        true
                    }
                    Err(_) => {
                        model.lock().unwrap().lost_settles.push(request);
                        false
                    }
                }
            }
        };
        if !answered {
            return; // the server is gone
        }
        if cycle.acknowledged.fetch_add(1, Ordering::SeqCst) + 1 == cycle.target {
            cycle.enough.notify_one();
        }
    }
}

/// Checks the restarted server against the model, then resolves the lost
/// requests by retrying them: each must now succeed, exactly once.
async fn check_after_restart(
    channel: &Channel,
    model: &Mutex<Model>,
    patients: &[String],
) -> (usize, usize) {
    let mut settlements = SettlementServiceClient::new(channel.clone());
    let mut usage = UsageServiceClient::new(channel.clone());
    let mut stored: HashMap<String, pb::Settlement> = HashMap::new();
    for patient in patients {
        let mut token = String::new();
        loop {
            let page = usage
                .list_settlements(pb::ListSettlementsRequest {
                    patient_id: patient.clone(),
                    year: 2026,
                    page_size: 500,
                    page_token: token,
                })
                .await
                .unwrap()
                .into_inner();
            stored.extend(
                page.settlements
                    .into_iter()
                    .map(|s| (s.claim_id.clone(), s)),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    let (lost_settles, lost_reversals) = compare_with_model(&mut model.lock().unwrap(), &stored);
    let resolved = lost_settles.len() + lost_reversals.len();

    for request in lost_settles {
        let answer = settlements
            .settle(request.clone())
            .await
            .expect("a lost settle succeeds when retried")
            .into_inner();
        let settlement = answer.settlement.unwrap();
        if let Some(found) = stored.get(&request.claim_id) {
            assert!(
                answer.replayed,
                "a settle that landed before the crash replays"
            );
            assert_eq!(&settlement, found);
        }
        let again = settlements
            .settle(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(again.replayed);
        let mut model = model.lock().unwrap();
        model
            .settlements
            .insert(request.claim_id.clone(), settlement);
        model.requests.insert(request.claim_id.clone(), request);
    }
    for request in lost_reversals {
        let answer = settlements.reverse(request.clone()).await;
        let settlement = match answer {
            Ok(answer) => answer.into_inner().settlement.unwrap(),
            Err(status) => panic!(
                "a lost reversal of an acknowledged settlement succeeds when retried: {status:?}"
            ),
        };
        assert_eq!(settlement.status(), pb::SettlementStatus::Reversed);
        model
            .lock()
            .unwrap()
            .settlements
            .insert(request.claim_id.clone(), settlement);
    }
    let checked = model.lock().unwrap().settlements.len();
    (checked, resolved)
}

/// Every acknowledged settlement is stored with identical content; a
/// settlement whose reversal was lost may be either settled or reversed.
/// Returns the lost requests, to be retried.
fn compare_with_model(
    known: &mut Model,
    stored: &HashMap<String, pb::Settlement>,
) -> (Vec<pb::SettleRequest>, Vec<pb::ReverseRequest>) {
    let lost_reversal_claims: Vec<String> = known
        .lost_reversals
        .iter()
        .map(|r| r.claim_id.clone())
        .collect();
    for (claim_id, acknowledged) in &known.settlements {
        let found = stored
            .get(claim_id)
            .unwrap_or_else(|| panic!("acknowledged settlement {claim_id} is lost"));
        if lost_reversal_claims.contains(claim_id)
            && acknowledged.status() == pb::SettlementStatus::Settled
        {
            // Its reversal may or may not have landed; everything else must match.
            let unreversed = pb::Settlement {
                status: acknowledged.status,
                reversed_at: None,
                reverse_reason: String::new(),
                reversed_by: String::new(),
                ..found.clone()
            };
            assert_eq!(&unreversed, acknowledged, "{claim_id}");
        } else {
            assert_eq!(found, acknowledged, "{claim_id} changed across the crash");
        }
    }
    (
        std::mem::take(&mut known.lost_settles),
        std::mem::take(&mut known.lost_reversals),
    )
}

fn verify_offline(data_dir: &Path) -> String {
    let output = Command::new(BINARY)
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("verify runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "verify failed after a crash:\n{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// Proves that no acknowledged settlement or reversal is lost or changed by
/// SIGKILL at random moments, over 20 cycles of load, kill, check, restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_across_kill_9() {
    let seed = std::env::var("MEDASSIST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261128u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let model = Arc::new(Mutex::new(Model::default()));

    let mut server = ServerProcess::start(&data_dir, &[]).await;
    let mut patients = Vec::new();
    for n in 0..PATIENTS {
        let id = resident_id("1955-05-05", 200 + n);
        let mut roster = medassist::grpc::pb::roster_service_client::RosterServiceClient::new(
            server.channel.clone(),
        );
        roster
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(&id)),
            })
            .await
            .unwrap();
        if n < NEAR_CAP {
            // 0.70 x 207,142.86 rounds up to 145,000.01: little of the cap is left.
            let big = pb::SettleRequest {
                total_cost: "207142.86".into(),
                in_scope_cost: "207142.86".into(),
                basic_insurance_paid: "0".into(),
                critical_illness_paid: "0".into(),
                ..worked_example(&id, &format!("big-{n}"))
            };
            let answer = SettlementServiceClient::new(server.channel.clone())
                .settle(big.clone())
                .await
                .unwrap()
                .into_inner();
            let mut model = model.lock().unwrap();
            model
                .settlements
                .insert(big.claim_id.clone(), answer.settlement.unwrap());
            model.requests.insert(big.claim_id.clone(), big);
        }
        patients.push(id);
    }
    let patients = Arc::new(patients);

    let (mut acknowledged_total, mut resolved_total) = (0, 0);
    for cycle in 0..CYCLES {
        let target = rng.usize(20..200);
        let shared = Arc::new(Cycle {
            acknowledged: AtomicUsize::new(0),
            enough: Notify::new(),
            target,
            stop: AtomicBool::new(false),
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let seed = (cycle * WORKERS + w) as u64 + seed;
                let (channel, model, patients) =
                    (server.channel.clone(), model.clone(), patients.clone());
                tokio::spawn(client(channel, model, patients, seed, shared.clone()))
            })
            .collect();
        // Bounded, so a client that fails an assertion cannot hang the test.
        tokio::time::timeout(Duration::from_secs(120), shared.enough.notified())
            .await
            .expect("the clients reach the kill target");

        server.kill();
        shared.stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.expect("client tasks assert nothing false");
        }
        acknowledged_total += shared.acknowledged.load(Ordering::SeqCst);
        verify_offline(&data_dir);
        server = ServerProcess::start(&data_dir, &[]).await;
        let (checked, resolved) = check_after_restart(&server.channel, &model, &patients).await;
        resolved_total += resolved;
        println!(
            "cycle {cycle}: killed after {target} acknowledgements; {checked} settlements checked, {resolved} lost requests resolved"
        );
    }
    let mut usage = UsageServiceClient::new(server.channel.clone());
    let model = Arc::into_inner(model).unwrap().into_inner().unwrap();
    for patient in patients.iter() {
        let used = usage
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: patient.clone(),
                year: 2026,
            })
            .await
            .unwrap()
            .into_inner()
            .used;
        let sum: i64 = model
            .settlements
            .values()
            .filter(|s| &s.patient_id == patient && s.status() == pb::SettlementStatus::Settled)
            .map(|s| fen(&s.assistance_amount))
            .sum();
        assert_eq!(
            fen(&used),
            sum,
            "running total equals the acknowledged settlements"
        );
        assert!(fen(&used) <= 15_000_000);
    }
    let settlements = model.settlements.len();
    server.terminate().await;
    let report = verify_offline(&data_dir);
    println!(
        "crash test (seed {seed}): {CYCLES} kill -9 cycles survived, {acknowledged_total} acknowledged requests, \
         {settlements} settlements checked after every restart, {resolved_total} lost requests settled exactly once\n{report}"
    );
}
