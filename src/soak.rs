//! `medassist soak`: long mixed load with chaos, then a check that every
//! acknowledged write is stored as acknowledged.
//!
//! `clients` clients, each on its own connection, send settles, usage
//! reads and reversals (6:2:2) at about `rate` requests a second in all.
//! Each client also misbehaves the way real networks do: it cancels some
//! requests after a few hundred microseconds (the client sends
//! RST_STREAM), and sometimes drops its whole connection in the middle of a
//! request and reconnects. A settle whose answer never came is retried
//! later with the same claim: it must then settle, or replay, exactly once.
//!
//! At the end the driver asks the server for every settlement it was told
//! of (by hospital and claim) and checks it is there with the same
//! settlement ID, reversed exactly when a reversal was acknowledged. The
//! server's own consistency check (`medassist verify`) runs after the
//! server stops; `benches/soak.sh` does both.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::{
    bench::{BENCH_HOSPITAL, bench_claim, patient_ids, preload},
    grpc::pb::{self, settlement_service_client::SettlementServiceClient},
};

/// Most soak clients.
const CLIENTS_MAX: usize = 1024;
/// Share of requests cancelled by the client, per thousand.
const CANCEL_PER_MILLE: u32 = 30;
/// Share of requests during which the client drops its connection, per thousand.
const DROP_PER_MILLE: u32 = 5;

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// The server, such as `http://127.0.0.1:50051`.
    pub target: String,
    /// Clients, each on its own connection.
    pub clients: usize,
    /// Requests a second, all clients together.
    pub rate: u32,
    /// How long to run the load.
    pub duration: Duration,
    /// Patients on the roster.
    pub patients: usize,
}

/// What happened, and whether every acknowledged write was found.
#[derive(Debug, Default, Serialize)]
pub struct SoakReport {
    /// Requests answered OK, by operation.
    pub ok: BTreeMap<String, u64>,
    /// Requests answered with an error status, by operation and code.
    pub errors: BTreeMap<String, u64>,
    /// Requests the client cancelled on purpose.
    pub cancelled: u64,
    /// Connections dropped in the middle of a request on purpose.
    pub dropped_connections: u64,
    /// Settles retried after their answer was lost; each settled or replayed.
    pub retried: u64,
    /// Acknowledged settlements checked at the end.
    pub acknowledged_settlements: u64,
    /// Acknowledged reversals among them.
    pub acknowledged_reversals: u64,
    /// Acknowledged writes missing or different on the server.
    pub missing: Vec<String>,
}

/// A settlement the server acknowledged.
#[derive(Clone, Debug)]
struct Acked {
    claim_id: String,
    settlement_id: String,
    /// A reversal was acknowledged: it must be reversed.
    reversed: bool,
    /// A reversal was sent and its answer lost: it may be either.
    reverse_unanswered: bool,
}

/// Runs the soak and checks the acknowledged writes.
pub async fn run(options: SoakOptions) -> Result<SoakReport, String> {
    if !(1..=CLIENTS_MAX).contains(&options.clients) || options.rate == 0 {
        return Err("clients must be 1 to 1024 and the rate more than zero".into());
    }
    let endpoint = Endpoint::from_shared(options.target.clone()).map_err(|e| e.to_string())?;
    let first = connect(&endpoint).await?;
    let patients = Arc::new(patient_ids(options.patients));
    preload(std::slice::from_ref(&first), &patients, 8)
        .await
        .map_err(|e| e.to_string())?;
    let tag = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let pause = Duration::from_secs_f64(options.clients as f64 / f64::from(options.rate));
    let end = Instant::now() + options.duration;
    let tasks: Vec<_> = (0..options.clients)
        .map(|n| {
            let client = Client {
                endpoint: endpoint.clone(),
                patients: Arc::clone(&patients),
                prefix: format!("SOAK-{tag}-{n}"),
                rng: fastrand::Rng::with_seed(n as u64),
                pause,
            };
            tokio::spawn(client.run(end))
        })
        .collect();
    let mut report = SoakReport::default();
    let mut acked = Vec::new();
    for task in tasks {
        let (tally, mine) = task.await.map_err(|e| e.to_string())?;
        merge(&mut report, tally);
        acked.extend(mine);
    }
    check_acked(&first, &acked, &mut report).await;
    Ok(report)
}

async fn connect(endpoint: &Endpoint) -> Result<Channel, String> {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(_) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("cannot connect: {e}")),
        }
    }
}

fn merge(report: &mut SoakReport, tally: SoakReport) {
    for (k, v) in tally.ok {
        *report.ok.entry(k).or_default() += v;
    }
    for (k, v) in tally.errors {
        *report.errors.entry(k).or_default() += v;
    }
    report.cancelled += tally.cancelled;
    report.dropped_connections += tally.dropped_connections;
    report.retried += tally.retried;
}

/// Every acknowledged settlement must be on the server as acknowledged.
async fn check_acked(channel: &Channel, acked: &[Acked], report: &mut SoakReport) {
    let mut settlements = SettlementServiceClient::new(channel.clone());
    for entry in acked {
        report.acknowledged_settlements += 1;
        report.acknowledged_reversals += u64::from(entry.reversed);
        let found = settlements
            .get_settlement(pb::GetSettlementRequest {
                settlement_id: String::new(),
                hospital_id: BENCH_HOSPITAL.into(),
                claim_id: entry.claim_id.clone(),
            })
            .await;
        let problem = match found {
            Err(status) => Some(format!("{}: {status}", entry.claim_id)),
            Ok(answer) => {
                let stored: pb::Settlement = answer.into_inner();
                let reversed = stored.status == i32::from(pb::SettlementStatus::Reversed);
                let state_ok = reversed == entry.reversed || entry.reverse_unanswered;
                (stored.settlement_id != entry.settlement_id || !state_ok).then(|| {
                    format!(
                        "{}: stored {} reversed={reversed}, acknowledged {} reversed={}",
                        entry.claim_id, stored.settlement_id, entry.settlement_id, entry.reversed
                    )
                })
            }
        };
        report.missing.extend(problem);
    }
}

struct Client {
    endpoint: Endpoint,
    patients: Arc<Vec<String>>,
    prefix: String,
    rng: fastrand::Rng,
    pause: Duration,
}

/// How one request ended.
enum Ended<T> {
    Answered(Result<T, tonic::Status>),
    Cancelled,
    Dropped,
}

impl Client {
    async fn run(mut self, end: Instant) -> (SoakReport, Vec<Acked>) {
        let mut tally = SoakReport::default();
        let mut acked: Vec<Acked> = Vec::new();
        let mut unanswered: Vec<pb::SettleRequest> = Vec::new();
        let mut channel = match connect(&self.endpoint).await {
            Ok(channel) => channel,
            Err(_) => return (tally, acked),
        };
        let mut sequence = 0u64;
        let mut next = Instant::now();
        while Instant::now() < end {
            next += self.pause;
            tokio::time::sleep_until(next.into()).await;
            let roll = self.rng.u32(0..10);
            let (name, ended) = if roll < 6 {
                let request = match unanswered.pop() {
                    Some(request) if self.rng.bool() => {
                        tally.retried += 1;
                        request
                    }
                    other => {
                        unanswered.extend(other);
                        sequence += 1;
                        let patient = self.patient();
                        bench_claim(&patient, format!("{}-{sequence}", self.prefix))
                    }
                };
                let ended = self
                    .call(&mut channel, &mut tally, {
                        let request = request.clone();
                        move |channel| async move {
                            SettlementServiceClient::new(channel).settle(request).await
                        }
                    })
                    .await;
                match &ended {
                    Ended::Answered(Ok(answer)) => {
                        if let Some(settlement) = &answer.settlement {
                            acked.push(Acked {
                                claim_id: request.claim_id.clone(),
                                settlement_id: settlement.settlement_id.clone(),
                                reversed: false,
                                reverse_unanswered: false,
                            });
                        }
                    }
                    Ended::Answered(Err(_)) | Ended::Cancelled | Ended::Dropped => {
                        unanswered.push(request)
                    }
                }
                ("settle", ended.map_ok())
            } else if roll < 8 || acked.iter().all(|a| a.reversed) {
                let patient = self.patient();
                let ended = self
                    .call(&mut channel, &mut tally, move |channel| async move {
                        pb::usage_service_client::UsageServiceClient::new(channel)
                            .get_annual_usage(pb::GetAnnualUsageRequest {
                                patient_id: patient,
                                year: 2026,
                            })
                            .await
                    })
                    .await;
                // A patient never settled has no usage yet: that is an answer.
                let ended = match ended {
                    Ended::Answered(Err(status)) if status.code() == tonic::Code::NotFound => {
                        Ended::Answered(Ok(()))
                    }
                    other => other.map_ok(),
                };
                ("usage", ended)
            } else {
                let at = self.rng.usize(0..acked.len());
                let Some(index) = (at..acked.len()).chain(0..at).find(|&i| !acked[i].reversed)
                else {
                    continue;
                };
                let claim_id = acked[index].claim_id.clone();
                let ended = self
                    .call(&mut channel, &mut tally, move |channel| async move {
                        SettlementServiceClient::new(channel)
                            .reverse(pb::ReverseRequest {
                                hospital_id: BENCH_HOSPITAL.into(),
                                claim_id,
                                reason: "soak".into(),
                            })
                            .await
                    })
                    .await;
                match ended {
                    Ended::Answered(Ok(_)) => acked[index].reversed = true,
                    // Maybe applied: a retry later replays or reverses it.
                    Ended::Cancelled | Ended::Dropped => acked[index].reverse_unanswered = true,
                    Ended::Answered(Err(_)) => {}
                }
                ("reverse", ended.map_ok())
            };
            match ended {
                Ended::Answered(Ok(())) => *tally.ok.entry(name.into()).or_default() += 1,
                Ended::Answered(Err(status)) => {
                    *tally
                        .errors
                        .entry(format!("{name} {:?}", status.code()))
                        .or_default() += 1
                }
                Ended::Cancelled | Ended::Dropped => {}
            }
        }
        // Settle what was left unanswered, so the check covers retries too.
        for request in unanswered {
            tally.retried += 1;
            let answer = SettlementServiceClient::new(channel.clone())
                .settle(request.clone())
                .await;
            match answer {
                Ok(answer) => {
                    if let Some(settlement) = answer.into_inner().settlement {
                        acked.push(Acked {
                            claim_id: request.claim_id,
                            settlement_id: settlement.settlement_id,
                            reversed: false,
                            reverse_unanswered: false,
                        });
                    }
                }
                Err(status) => {
                    *tally
                        .errors
                        .entry(format!("final retry {:?}", status.code()))
                        .or_default() += 1
                }
            }
        }
        // A reversed settlement stays reversed; a settlement acknowledged
        // twice (a retry that replayed) is the same settlement.
        acked.sort_by(|a, b| {
            a.claim_id
                .cmp(&b.claim_id)
                .then(b.reversed.cmp(&a.reversed))
        });
        acked.dedup_by(|later, earlier| {
            let same = later.claim_id == earlier.claim_id;
            if same {
                earlier.reverse_unanswered |= later.reverse_unanswered;
            }
            same
        });
        (tally, acked)
    }

    /// Sends one request, maybe cancelling it or dropping the connection
    /// under it.
    async fn call<T, F, Fut>(
        &mut self,
        channel: &mut Channel,
        tally: &mut SoakReport,
        send: F,
    ) -> Ended<T>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let chaos = self.rng.u32(0..1000);
        let call = send(channel.clone());
        if chaos < DROP_PER_MILLE {
            let task = tokio::spawn(call);
            tokio::time::sleep(Duration::from_micros(self.rng.u64(0..2000))).await;
            task.abort();
            let _ = task.await;
            tally.dropped_connections += 1;
            // A fresh connection; the old one closes with its last handle.
            if let Ok(fresh) = connect(&self.endpoint).await {
                *channel = fresh;
            }
            return Ended::Dropped;
        }
        if chaos < DROP_PER_MILLE + CANCEL_PER_MILLE {
            let within = Duration::from_micros(self.rng.u64(100..3000));
            return match tokio::time::timeout(within, call).await {
                Ok(answer) => Ended::Answered(answer.map(tonic::Response::into_inner)),
                Err(_) => {
                    tally.cancelled += 1;
                    Ended::Cancelled
                }
            };
        }
        Ended::Answered(call.await.map(tonic::Response::into_inner))
    }

    fn patient(&mut self) -> String {
        self.patients[self.rng.usize(0..self.patients.len())].clone()
    }
}

impl<T> Ended<T> {
    fn map_ok(self) -> Ended<()> {
        match self {
            Ended::Answered(answer) => Ended::Answered(answer.map(drop)),
            Ended::Cancelled => Ended::Cancelled,
            Ended::Dropped => Ended::Dropped,
        }
    }
}
