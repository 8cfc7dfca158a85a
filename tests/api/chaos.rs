//! What the crash and power-cut tests share: the clients' model of what the
//! server acknowledged, the load they send (settles, reversals, retries),
//! the patients they start with, the retries that resolve requests whose
//! answer was lost, and the offline `verify` between runs.

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use medassist::grpc::pb::{
    self, roster_service_client::RosterServiceClient,
    settlement_service_client::SettlementServiceClient,
};
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::helpers::*;

/// What clients were told, and what they sent without hearing back.
#[derive(Default)]
pub struct Model {
    /// Persons the roster acknowledged.
    pub persons: Vec<String>,
    /// Acknowledged settle requests, by claim.
    pub requests: BTreeMap<String, pb::SettleRequest>,
    /// The latest acknowledged state of each settlement, by claim.
    pub settlements: BTreeMap<String, pb::Settlement>,
    /// Settles sent without an answer: their outcome is unknown.
    pub lost_settles: Vec<pb::SettleRequest>,
    /// Reversals sent without an answer.
    pub lost_reversals: Vec<pb::ReverseRequest>,
}

impl Model {
    fn settled(&mut self, request: pb::SettleRequest, settlement: pb::Settlement) {
        self.settlements
            .insert(request.claim_id.clone(), settlement);
        self.requests.insert(request.claim_id.clone(), request);
    }
}

/// The reversal of a claim of hospital H001.
pub fn reverse_of(claim_id: &str) -> pb::ReverseRequest {
    pb::ReverseRequest {
        hospital_id: "H001".into(),
        claim_id: claim_id.into(),
        reason: "chaos test".into(),
    }
}

/// Mostly small claims, some large enough that patients near their cap are
/// capped mid-run.
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

/// Puts `count` dibao members on the roster (births on `birth`, sequences
/// from `first`); the first `near_cap` start with 145,000.01 of their
/// 150,000.00 cap used. Every write is recorded in the model.
pub async fn enroll_patients(
    channel: &Channel,
    model: &Mutex<Model>,
    birth: &str,
    first: u16,
    count: u16,
    near_cap: u16,
) -> Vec<String> {
    let mut patients = Vec::new();
    for n in 0..count {
        let id = resident_id(birth, first + n);
        RosterServiceClient::new(channel.clone())
            .upsert_person(pb::UpsertPersonRequest {
                person: Some(dibao_person(&id)),
            })
            .await
            .expect("the roster accepts the person");
        model.lock().unwrap().persons.push(id.clone());
        if n < near_cap {
            // 0.70 x 207,142.86 rounds up to 145,000.01: little of the cap is left.
            let big = pb::SettleRequest {
                total_cost: "207142.86".into(),
                in_scope_cost: "207142.86".into(),
                basic_insurance_paid: "0".into(),
                critical_illness_paid: "0".into(),
                ..worked_example(&id, &format!("big-{n}"))
            };
            let answer = SettlementServiceClient::new(channel.clone())
                .settle(big.clone())
                .await
                .expect("the near-cap claim settles")
                .into_inner();
            model
                .lock()
                .unwrap()
                .settled(big, answer.settlement.unwrap());
        }
        patients.push(id);
    }
    patients
}

/// One run's shared state: answers so far, and when to stop.
pub struct Cycle {
    /// Answers received (writes and replays).
    pub acknowledged: AtomicUsize,
    /// Acknowledged settles and reversals (replays are not writes).
    pub writes: AtomicUsize,
    /// Signalled when `target` answers have arrived: time to crash.
    pub enough: Notify,
    target: usize,
    /// Set once the server is gone: clients stop.
    pub stop: AtomicBool,
}

impl Cycle {
    /// A run that signals `enough` after `target` answers.
    pub fn new(target: usize) -> Arc<Cycle> {
        Arc::new(Cycle {
            acknowledged: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            enough: Notify::new(),
            target,
            stop: AtomicBool::new(false),
        })
    }
}

/// Percentages of a client's requests that retry an acknowledged settle,
/// and that reverse a settled claim; the rest are new claims.
#[derive(Clone, Copy)]
pub struct Mix {
    pub retries: u8,
    pub reversals: u8,
}

/// One client: settles, reverses and retries until the server dies or the
/// run ends. A request without an answer goes to the model's lost lists.
pub async fn client(
    channel: Channel,
    model: Arc<Mutex<Model>>,
    patients: Arc<Vec<String>>,
    seed: u64,
    mix: Mix,
    cycle: Arc<Cycle>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut settlements = SettlementServiceClient::new(channel);
    let mut n = 0;
    while !cycle.stop.load(Ordering::SeqCst) {
        n += 1;
        let roll = rng.u8(0..100);
        let (retry, reverse) = {
            let model = model.lock().unwrap();
            let open: Vec<&pb::Settlement> = model
                .settlements
                .values()
                .filter(|s| s.status() == pb::SettlementStatus::Settled)
                .collect();
            (
                rng.choice(model.requests.values()).cloned(),
                rng.choice(open).map(|s| s.claim_id.clone()),
            )
        };
        let answered = if roll < mix.retries
            && let Some(request) = retry
        {
            match settlements.settle(request.clone()).await {
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
            }
        } else if roll < mix.retries + mix.reversals
            && let Some(claim_id) = reverse
        {
            let request = reverse_of(&claim_id);
            match settlements.reverse(request.clone()).await {
                Ok(answer) => {
                    let settlement = answer.into_inner().settlement.unwrap();
                    assert_eq!(settlement.status(), pb::SettlementStatus::Reversed);
                    cycle.writes.fetch_add(1, Ordering::SeqCst);
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
        } else {
            let patient = &patients[rng.usize(0..patients.len())];
            let request = claim(&mut rng, patient, &format!("s{seed}-{n}"));
            match settlements.settle(request.clone()).await {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    assert!(!answer.replayed, "a new claim does not replay");
                    cycle.writes.fetch_add(1, Ordering::SeqCst);
                    model
                        .lock()
                        .unwrap()
                        .settled(request, answer.settlement.unwrap());
                    true
                }
                Err(_) => {
                    model.lock().unwrap().lost_settles.push(request);
                    false
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

/// Retries the requests whose answer was lost: each settles exactly once
/// (as a replay if it had landed; a second retry replays), each lost
/// reversal succeeds. Returns how many were resolved.
pub async fn resolve_lost(channel: &Channel, model: &mut Model) -> usize {
    let mut settlements = SettlementServiceClient::new(channel.clone());
    let lost_settles = std::mem::take(&mut model.lost_settles);
    let lost_reversals = std::mem::take(&mut model.lost_reversals);
    let resolved = lost_settles.len() + lost_reversals.len();
    for request in lost_settles {
        let before = settlements
            .get_settlement(pb::GetSettlementRequest {
                hospital_id: request.hospital_id.clone(),
                claim_id: request.claim_id.clone(),
                ..Default::default()
            })
            .await
            .ok()
            .map(|s| s.into_inner());
        let answer = settlements
            .settle(request.clone())
            .await
            .expect("a lost settle succeeds when retried")
            .into_inner();
        let settlement = answer.settlement.unwrap();
        if let Some(before) = before {
            assert!(
                answer.replayed,
                "a settle that landed before the crash replays"
            );
            assert_eq!(settlement, before);
        } else {
            assert!(!answer.replayed, "a settle that never landed is new");
        }
        let again = settlements
            .settle(request.clone())
            .await
            .expect("a second retry succeeds")
            .into_inner();
        assert!(again.replayed, "the second retry replays");
        assert_eq!(again.settlement.as_ref(), Some(&settlement));
        model.settled(request, settlement);
    }
    for request in lost_reversals {
        let settlement = settlements
            .reverse(request.clone())
            .await
            .unwrap_or_else(|status| panic!("a lost reversal succeeds when retried: {status:?}"))
            .into_inner()
            .settlement
            .unwrap();
        assert_eq!(settlement.status(), pb::SettlementStatus::Reversed);
        model
            .settlements
            .insert(request.claim_id.clone(), settlement);
    }
    resolved
}

/// Runs `medassist verify` on a stopped server's directory: it must exit 0
/// and say `consistent`. Returns its report.
pub fn verify_offline(data_dir: &Path, after: &str) -> String {
    let mut command = Command::new(BINARY);
    command.arg("verify").arg("--data-dir").arg(data_dir);
    if crate::backend::on_postgres() {
        command.env("DATABASE_URL", crate::backend::database_for(data_dir));
    }
    let output = command.output().expect("verify runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && report.contains("consistent"),
        "verify failed after {after} ({}):\n{report}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    report
}
