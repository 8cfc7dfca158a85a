//! What the crash, power-cut and failover tests share: the clients' model
//! of what the server acknowledged, the load they send (settles, reversals,
//! retries), the patients they start with, the check of what the server
//! kept against the model, the retries that resolve requests whose answer
//! was lost, and the offline `verify` between runs.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use medassist::grpc::pb::{
    self, roster_service_client::RosterServiceClient,
    settlement_service_client::SettlementServiceClient, usage_service_client::UsageServiceClient,
};
use tokio::sync::watch;
use tonic::{Status, transport::Channel};

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
    /// Requests sent without an answer so far.
    pub fn lost(&self) -> usize {
        self.lost_settles.len() + self.lost_reversals.len()
    }

    /// True when a reversal of `claim_id` was sent without an answer: the
    /// claim may be settled or reversed.
    pub fn reversal_unknown(&self, claim_id: &str) -> bool {
        self.lost_reversals.iter().any(|r| r.claim_id == claim_id)
    }

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

/// 150,000.00, the built-in policy's annual cap, in fen.
pub const CAP_FEN: i64 = 15_000_000;

/// How long a client that outlasts outages waits after a failed call, so
/// that an outage costs a few lost answers, not thousands.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(200);

/// One run's shared state: answers so far, and when to stop.
pub struct Cycle {
    /// Answers received (writes and replays).
    acknowledged: watch::Sender<usize>,
    /// Acknowledged settles and reversals (replays are not writes).
    pub writes: AtomicUsize,
    /// Set once the server is gone or the run is over: clients stop.
    pub stop: AtomicBool,
    /// Whether a failed call ends the client (the server is gone) or is
    /// recorded, and the client goes on after a pause (a failover: the same
    /// server serves again without a restart).
    outlast: bool,
    /// The calls that failed while outlasting outages: code and message.
    failures: Mutex<Vec<(tonic::Code, String)>>,
}

impl Cycle {
    /// A run whose clients stop at their first failed call.
    pub fn new() -> Arc<Cycle> {
        Self::with(false)
    }

    /// A run whose clients record failed calls and go on.
    pub fn outlasting_outages() -> Arc<Cycle> {
        Self::with(true)
    }

    fn with(outlast: bool) -> Arc<Cycle> {
        Arc::new(Cycle {
            acknowledged: watch::channel(0).0,
            writes: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            outlast,
            failures: Mutex::new(Vec::new()),
        })
    }

    /// Answers received so far.
    pub fn acknowledged(&self) -> usize {
        *self.acknowledged.borrow()
    }

    /// Completes once `answers` answers have arrived in all.
    pub async fn reached(&self, answers: usize) {
        let mut acknowledged = self.acknowledged.subscribe();
        // The sender lives as long as `self`: the wait ends only by reaching.
        let _ = acknowledged.wait_for(|n| *n >= answers).await;
    }

    /// The calls that failed so far (only recorded while outlasting).
    pub fn failures(&self) -> Vec<(tonic::Code, String)> {
        self.failures.lock().unwrap().clone()
    }
}

/// The load of the power-cut and failover tests: 12 patients, the first 4
/// with most of their cap already used so that some claims are capped; a
/// tenth of the requests retry, a fifth reverse.
pub const PATIENTS: u16 = 12;
pub const NEAR_CAP: u16 = 4;
pub const MIX: Mix = Mix {
    retries: 10,
    reversals: 20,
};

/// Percentages of a client's requests that retry an acknowledged settle,
/// and that reverse a settled claim; the rest are new claims.
#[derive(Clone, Copy)]
pub struct Mix {
    pub retries: u8,
    pub reversals: u8,
}

/// Sends a new claim: recorded in the model as settled when answered, as
/// lost (its outcome unknown) when not.
pub async fn settle_new(
    settlements: &mut SettlementServiceClient<Channel>,
    model: &Mutex<Model>,
    request: pb::SettleRequest,
) -> Result<(), Status> {
    match settlements.settle(request.clone()).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            assert!(!answer.replayed, "a new claim does not replay");
            model
                .lock()
                .unwrap()
                .settled(request, answer.settlement.unwrap());
            Ok(())
        }
        Err(status) => {
            model.lock().unwrap().lost_settles.push(request);
            Err(status)
        }
    }
}

/// One client: settles, reverses and retries until the run ends, or until
/// the first failed call unless the run outlasts outages. A request
/// without an answer goes to the model's lost lists.
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
            settlements.settle(request.clone()).await.map(|answer| {
                let answer = answer.into_inner();
                assert!(answer.replayed, "a retry of an acknowledged settle replays");
                let known = model.lock().unwrap().settlements[&request.claim_id]
                    .settlement_id
                    .clone();
                assert_eq!(answer.settlement.unwrap().settlement_id, known);
            })
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
                    Ok(())
                }
                Err(status) => {
                    model.lock().unwrap().lost_reversals.push(request);
                    Err(status)
                }
            }
        } else {
            let patient = &patients[rng.usize(0..patients.len())];
            let request = claim(&mut rng, patient, &format!("s{seed}-{n}"));
            let settled = settle_new(&mut settlements, &model, request).await;
            if settled.is_ok() {
                cycle.writes.fetch_add(1, Ordering::SeqCst);
            }
            settled
        };
        if let Err(status) = answered {
            if !cycle.outlast {
                return; // the server is gone
            }
            let failure = (status.code(), status.message().to_owned());
            cycle.failures.lock().unwrap().push(failure);
            tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
            continue;
        }
        cycle.acknowledged.send_modify(|n| *n += 1);
    }
}

/// What retrying the requests whose answer was lost found.
#[derive(Clone, Copy, Default)]
pub struct Resolved {
    /// Lost settles that had landed: their retry replayed.
    pub landed: usize,
    /// Lost settles that had not: their retry settled them.
    pub settled: usize,
    /// Lost reversals, each reversed now or found reversed already.
    pub reversals: usize,
}

impl Resolved {
    /// Lost requests resolved.
    pub fn total(&self) -> usize {
        self.landed + self.settled + self.reversals
    }
}

/// Retries the requests whose answer was lost: each settles exactly once
/// (as a replay if it had landed; a second retry replays), each lost
/// reversal succeeds.
pub async fn resolve_lost(channel: &Channel, model: &mut Model) -> Resolved {
    let mut settlements = SettlementServiceClient::new(channel.clone());
    let lost_settles = std::mem::take(&mut model.lost_settles);
    let lost_reversals = std::mem::take(&mut model.lost_reversals);
    let mut resolved = Resolved {
        reversals: lost_reversals.len(),
        ..Resolved::default()
    };
    for request in lost_settles {
        let before = match settlements
            .get_settlement(pb::GetSettlementRequest {
                hospital_id: request.hospital_id.clone(),
                claim_id: request.claim_id.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(found) => Some(found.into_inner()),
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => panic!("a lost settle's claim cannot be looked up: {status:?}"),
        };
        let answer = settlements
            .settle(request.clone())
            .await
            .expect("a lost settle succeeds when retried")
            .into_inner();
        let settlement = answer.settlement.unwrap();
        if let Some(before) = before {
            assert!(
                answer.replayed,
                "a settle that landed before its answer was lost replays"
            );
            assert_eq!(settlement, before);
            resolved.landed += 1;
        } else {
            assert!(!answer.replayed, "a settle that never landed is new");
            resolved.settled += 1;
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

/// Checks the server (restarted, or back after a failover) against the
/// model, then resolves the lost requests by retrying them: each must now
/// succeed, exactly once. Returns how many settlements were checked, and
/// what resolving found.
pub async fn check_and_resolve(
    channel: &Channel,
    model: &Mutex<Model>,
    patients: &[String],
) -> (usize, Resolved) {
    let mut stored: HashMap<String, pb::Settlement> = HashMap::new();
    for patient in patients {
        let listed = listed_settlements(channel, patient).await;
        stored.extend(listed.into_iter().map(|s| (s.claim_id.clone(), s)));
    }
    // Owned while retrying: no lock is held across an await.
    let mut owned = std::mem::take(&mut *model.lock().unwrap());
    compare_with_model(&owned, &stored);
    let resolved = resolve_lost(channel, &mut owned).await;
    *model.lock().unwrap() = owned;
    let checked = model.lock().unwrap().settlements.len();
    (checked, resolved)
}

/// Every acknowledged settlement is stored with identical content; a
/// settlement whose reversal was lost may be either settled or reversed.
fn compare_with_model(known: &Model, stored: &HashMap<String, pb::Settlement>) {
    for (claim_id, acknowledged) in &known.settlements {
        let found = stored
            .get(claim_id)
            .unwrap_or_else(|| panic!("acknowledged settlement {claim_id} is lost"));
        if known.reversal_unknown(claim_id)
            && acknowledged.status() == pb::SettlementStatus::Settled
        {
            // Its reversal may or may not have landed; everything else must match.
            let unreversed = pb::Settlement {
                status: acknowledged.status,
                reversed_at: None,
                reverse_reason: String::new(),
                reversed_by: String::new(),
                reversed_day: String::new(),
                ..found.clone()
            };
            assert_eq!(&unreversed, acknowledged, "{claim_id}");
        } else {
            assert_eq!(found, acknowledged, "{claim_id} changed");
        }
    }
}

/// Every settlement of `patient` in 2026, as the server lists them page by
/// page.
async fn listed_settlements(channel: &Channel, patient: &str) -> Vec<pb::Settlement> {
    let usage = UsageServiceClient::new(channel.clone());
    all_pages(|page_token| {
        let mut usage = usage.clone();
        let request = pb::ListSettlementsRequest {
            patient_id: patient.to_owned(),
            year: 2026,
            page_size: 500,
            page_token,
        };
        async move {
            let page = usage.list_settlements(request).await;
            let page = page.expect("settlements are listed").into_inner();
            (page.settlements, page.next_page_token)
        }
    })
    .await
}

/// Every patient's annual usage equals the sum of the settled settlements
/// the server lists for them, and stays within the cap.
pub async fn check_usage(channel: &Channel, patients: &[String]) {
    let mut usage = UsageServiceClient::new(channel.clone());
    for patient in patients {
        let sum: i64 = listed_settlements(channel, patient)
            .await
            .iter()
            .filter(|s| s.status() == pb::SettlementStatus::Settled)
            .map(|s| fen(&s.assistance_amount))
            .sum();
        let used = match usage
            .get_annual_usage(pb::GetAnnualUsageRequest {
                patient_id: patient.clone(),
                year: 2026,
            })
            .await
        {
            Ok(usage) => fen(&usage.into_inner().used),
            Err(status) if status.code() == tonic::Code::NotFound => 0,
            Err(status) => panic!("GetAnnualUsage({patient}) fails: {status:?}"),
        };
        assert_eq!(used, sum, "{patient}: usage equals its listed settlements");
        assert!(
            used <= CAP_FEN,
            "{patient}: usage {used} fen exceeds the cap"
        );
    }
}

/// Runs `medassist verify` on a stopped server's directory (its database on
/// PostgreSQL): it must exit 0 and say `consistent`. Returns its report.
pub fn verify_offline(data_dir: &Path, after: &str) -> String {
    try_verify_offline(data_dir)
        .unwrap_or_else(|failure| panic!("verify failed after {after} {failure}"))
}

/// Like [`verify_offline`], answering a failed check (exit status, report
/// and errors) instead of panicking, for a caller that adds what it knows.
pub fn try_verify_offline(data_dir: &Path) -> Result<String, String> {
    let mut command = Command::new(BINARY);
    if crate::backend::on_postgres() {
        command.args([
            "verify",
            "--database-url",
            &crate::backend::database_for(data_dir),
        ]);
    } else {
        command.arg("verify").arg("--data-dir").arg(data_dir);
    }
    verified(command)
}

/// Runs `medassist verify --database-url URL`: it must exit 0 and say
/// `consistent`. Returns its report.
pub fn verify_database(url: &str, after: &str) -> String {
    let mut command = Command::new(BINARY);
    command.args(["verify", "--database-url", url]);
    verified(command).unwrap_or_else(|failure| panic!("verify failed after {after} {failure}"))
}

fn verified(mut command: Command) -> Result<String, String> {
    let output = command.output().expect("verify runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() && report.contains("consistent") {
        return Ok(report);
    }
    Err(format!(
        "({}):\n{report}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ))
}
