//! `medassist bench`: a load generator that drives a running server through
//! real tonic clients and reports throughput and latency.
//!
//! Load is `connections` HTTP/2 connections with `in_flight` requests
//! outstanding on each. Every run measures the **wire ceiling** first: the
//! standard health `Check` RPC, which does no work, at the same concurrency.
//! Each scenario's throughput is reported as a ratio to that ceiling, because
//! a shared machine's absolute speed drifts from run to run. With `--runs N`
//! every phase is repeated and medians are reported.
//!
//! The roster the scenarios need (`--patients`) is loaded first. Settlements
//! use the hospital `BENCH` and claim numbers unique to this invocation, so
//! repeated benchmarks against one data directory never collide.

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Days;
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    domain::{Date, RegionCode, ResidentId},
    grpc::pb::{
        self, roster_service_client::RosterServiceClient,
        settlement_service_client::SettlementServiceClient,
        usage_service_client::UsageServiceClient,
    },
};

/// Most connections or in-flight requests per connection accepted.
const CONCURRENCY_MAX: usize = 4096;
/// Most patients a roster preload may create.
const PATIENTS_MAX: usize = 10_000_000;
/// How long the generator keeps trying to reach a server that is starting.
const CONNECT_WAIT: Duration = Duration::from_secs(30);
/// The hospital every benchmark settlement is filed under.
pub const BENCH_HOSPITAL: &str = "BENCH";

/// One kind of request the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `grpc.health.v1.Health/Check`: the wire ceiling.
    Health,
    /// `Settle` of a new claim.
    Settle,
    /// `PreSettle` (a quote).
    PreSettle,
    /// `GetAnnualUsage`.
    Usage,
    /// `Reverse` of a claim this worker settled earlier (a settle when none is left).
    Reverse,
    /// No request at all: settlements written straight to a fresh embedded
    /// store in this process, in batches as large as the load's concurrency,
    /// each applied and flushed. What the store alone sustains, for
    /// comparison with `settle`. Runs on its own, not in a mix.
    Store,
}

impl Op {
    fn parse(name: &str) -> Result<Op, String> {
        Ok(match name {
            "health" => Op::Health,
            "settle" => Op::Settle,
            "presettle" | "pre-settle" => Op::PreSettle,
            "usage" => Op::Usage,
            "reverse" => Op::Reverse,
            "store" => Op::Store,
            other => return Err(format!("unknown operation {other:?}")),
        })
    }
}

/// A named mix of operations, such as `settle` or `settle=8,usage=1,reverse=1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The text it was given as, used as its name in reports.
    pub name: String,
    mix: Vec<(Op, u32)>,
}

impl Scenario {
    /// Reads `op` or `op=weight,op=weight,...`.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let mut mix = Vec::new();
        for part in text.split(',') {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let weight: u32 = weight
                .parse()
                .ok()
                .filter(|w| (1..=1000).contains(w))
                .ok_or_else(|| format!("weight of {name:?} must be 1 to 1000"))?;
            mix.push((Op::parse(name.trim())?, weight));
        }
        if mix.len() > 1 && mix.iter().any(|(op, _)| *op == Op::Store) {
            return Err("the store scenario runs on its own, not in a mix".into());
        }
        Ok(Scenario {
            name: text.to_owned(),
            mix,
        })
    }

    fn health() -> Scenario {
        Scenario {
            name: "health".into(),
            mix: vec![(Op::Health, 1)],
        }
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        let total: u32 = self.mix.iter().map(|(_, w)| w).sum();
        let mut roll = rng.u32(0..total);
        for (op, weight) in &self.mix {
            if roll < *weight {
                return *op;
            }
            roll -= weight;
        }
        self.mix[0].0
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The server, such as `http://127.0.0.1:50051`.
    pub target: String,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Requests outstanding on each connection.
    pub in_flight: usize,
    /// Measured time of each phase.
    pub duration: Duration,
    /// Unmeasured time before each phase's measurement.
    pub warmup: Duration,
    /// Patients on the roster the scenarios draw from.
    pub patients: usize,
    /// When set, all load goes to the first this many patients.
    pub hot_patients: Option<usize>,
    /// Scenarios measured after the ceiling, in order.
    pub scenarios: Vec<Scenario>,
    /// How many times each phase runs; medians are reported.
    pub runs: usize,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
}

/// One measured phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// The scenario's name (`health` for the ceiling).
    pub scenario: String,
    /// Which run of the benchmark this phase belongs to (from 1).
    pub run: usize,
    /// Successful requests in the measured window.
    pub ok: u64,
    /// Failed requests in the measured window, by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of successful requests.
    #[serde(flatten)]
    pub latency: Latency,
    /// Throughput divided by the same run's health ceiling.
    pub ratio_to_ceiling: f64,
}

/// Latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Latency {
        Latency {
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
        }
    }
}

/// Medians of one scenario over all runs.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// Median successful requests per second.
    pub throughput: f64,
    /// Median ratio to the same run's ceiling.
    pub ratio_to_ceiling: f64,
    /// Median of each percentile.
    #[serde(flatten)]
    pub latency: Latency,
    /// Errors summed over all runs.
    pub errors: u64,
}

/// The whole benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The server driven.
    pub target: String,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Requests outstanding per connection.
    pub in_flight: usize,
    /// Measured seconds per phase.
    pub duration_s: f64,
    /// Patients on the roster.
    pub patients: usize,
    /// The hot spot, when all load went to the first few patients.
    pub hot_patients: Option<usize>,
    /// Every phase of every run.
    pub phases: Vec<PhaseReport>,
    /// Medians per scenario.
    pub summary: Vec<Summary>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options do not make sense.
    #[error("{0}")]
    Options(String),
    /// The server could not be reached.
    #[error("cannot reach {target}: {message}")]
    Connect {
        /// The address asked for.
        target: String,
        /// What the transport said.
        message: String,
    },
    /// Loading the roster failed.
    #[error("roster preload failed: {0}")]
    Preload(tonic::Status),
    /// The JSON report could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file named by `--json`.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Runs the benchmark, prints the table and writes the JSON report.
pub async fn run(options: BenchOptions) -> Result<BenchReport, BenchError> {
    check(&options)?;
    let channels = connect(&options).await?;
    let patients = Arc::new(patient_ids(options.patients));
    preload(&channels, &patients, options.in_flight).await?;
    let tag = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let mut phases = Vec::new();
    for run in 1..=options.runs {
        let ceiling = phase(
            &options,
            &channels,
            &patients,
            &Scenario::health(),
            &tag,
            run,
            None,
        )
        .await;
        let ceiling_throughput = ceiling.throughput;
        phases.push(ceiling);
        for scenario in &options.scenarios {
            let ceiling = Some(ceiling_throughput);
            let report = if scenario.mix == [(Op::Store, 1)] {
                store_phase(&options, &patients, scenario, &tag, run, ceiling).await
            } else {
                phase(&options, &channels, &patients, scenario, &tag, run, ceiling).await
            };
            phases.push(report);
        }
    }
    let report = BenchReport {
        target: options.target.clone(),
        connections: options.connections,
        in_flight: options.in_flight,
        duration_s: options.duration.as_secs_f64(),
        patients: options.patients,
        hot_patients: options.hot_patients,
        summary: summarize(&phases),
        phases,
    };
    print_table(&report);
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|source| BenchError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(report)
}

fn check(options: &BenchOptions) -> Result<(), BenchError> {
    let bad = |message: &str| Err(BenchError::Options(message.to_owned()));
    if !(1..=CONCURRENCY_MAX).contains(&options.connections)
        || !(1..=CONCURRENCY_MAX).contains(&options.in_flight)
    {
        return bad("connections and in-flight must be 1 to 4096");
    }
    if !(1..=PATIENTS_MAX).contains(&options.patients) {
        return bad("patients must be 1 to 10,000,000");
    }
    if options
        .hot_patients
        .is_some_and(|hot| hot == 0 || hot > options.patients)
    {
        return bad("hot patients must be 1 to the number of patients");
    }
    if options.runs == 0 || options.runs > 100 || options.duration.is_zero() {
        return bad("runs must be 1 to 100 and the duration more than zero");
    }
    Ok(())
}

async fn connect(options: &BenchOptions) -> Result<Vec<Channel>, BenchError> {
    let error = |message: String| BenchError::Connect {
        target: options.target.clone(),
        message,
    };
    let endpoint =
        Endpoint::from_shared(options.target.clone()).map_err(|e| error(e.to_string()))?;
    let give_up = Instant::now() + CONNECT_WAIT;
    let mut channels = Vec::with_capacity(options.connections);
    while channels.len() < options.connections {
        match endpoint.connect().await {
            Ok(channel) => channels.push(channel),
            // A server that is still starting refuses connections for a moment.
            Err(_) if Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(error(e.to_string())),
        }
    }
    Ok(channels)
}

/// Distinct valid resident IDs: birth dates from 1930 on, 1,000 per day.
pub(crate) fn patient_ids(count: usize) -> Vec<String> {
    let region = RegionCode::parse("320602").unwrap_or_else(|_| unreachable!());
    let first = Date::from_ymd(1930, 1, 1).unwrap_or_else(|_| unreachable!());
    (0..count)
        .map(|i| {
            let day = first.naive().checked_add_days(Days::new((i / 1000) as u64));
            let birth = day
                .and_then(|d| Date::parse(&d.format("%Y-%m-%d").to_string()).ok())
                .unwrap_or(first);
            ResidentId::compose(region, birth, (i % 1000) as u16)
                .as_str()
                .to_owned()
        })
        .collect()
}

pub(crate) async fn preload(
    channels: &[Channel],
    patients: &Arc<Vec<String>>,
    in_flight: usize,
) -> Result<(), BenchError> {
    let workers = channels.len() * in_flight;
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let mut roster = RosterServiceClient::new(channels[worker % channels.len()].clone());
        let patients = Arc::clone(patients);
        tasks.push(tokio::spawn(async move {
            for id in patients.iter().skip(worker).step_by(workers) {
                roster
                    .upsert_person(pb::UpsertPersonRequest {
                        person: Some(bench_person(id)),
                    })
                    .await?;
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Preload(tonic::Status::internal(e.to_string())))?
            .map_err(BenchError::Preload)?;
    }
    Ok(())
}

fn bench_person(id: &str) -> pb::Person {
    pb::Person {
        patient_id: id.to_owned(),
        name: "测试".into(),
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

/// A uraemia stay worth 210.00 of assistance before the cap.
pub(crate) fn bench_claim(patient_id: &str, claim_id: String) -> pb::SettleRequest {
    pb::SettleRequest {
        hospital_id: BENCH_HOSPITAL.into(),
        claim_id,
        patient_id: patient_id.to_owned(),
        admission_date: "2026-03-01".into(),
        discharge_date: "2026-03-20".into(),
        diagnosis_codes: vec!["N18.500".into()],
        total_cost: "1000.00".into(),
        in_scope_cost: "800.00".into(),
        basic_insurance_paid: "400.00".into(),
        critical_illness_paid: "100.00".into(),
        claim_kind: 0,
    }
}

struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

async fn phase(
    options: &BenchOptions,
    channels: &[Channel],
    patients: &Arc<Vec<String>>,
    scenario: &Scenario,
    tag: &str,
    run: usize,
    ceiling: Option<f64>,
) -> PhaseReport {
    let started = Instant::now();
    let measure_from = started + options.warmup;
    let end = measure_from + options.duration;
    let mut tasks = Vec::new();
    for (connection, channel) in channels.iter().enumerate() {
        for slot in 0..options.in_flight {
            let worker = Worker {
                channel: channel.clone(),
                patients: Arc::clone(patients),
                hot: options.hot_patients,
                scenario: scenario.clone(),
                claim_prefix: format!(
                    "{tag}-{}-r{run}-c{connection}-s{slot}",
                    scenario_slug(scenario)
                ),
                rng: fastrand::Rng::with_seed((run * 1_000_003 + connection * 4099 + slot) as u64),
            };
            tasks.push(tokio::spawn(worker.run(measure_from, end)));
        }
    }
    let mut latencies = new_histogram();
    let mut errors = BTreeMap::new();
    for task in tasks {
        if let Ok(tally) = task.await {
            let _ = latencies.add(&tally.latencies);
            for (code, n) in tally.errors {
                *errors.entry(code).or_insert(0) += n;
            }
        }
    }
    let ok = latencies.len();
    let throughput = ok as f64 / options.duration.as_secs_f64();
    PhaseReport {
        scenario: scenario.name.clone(),
        run,
        ok,
        errors,
        throughput,
        latency: Latency::of(&latencies),
        ratio_to_ceiling: ceiling.map_or(1.0, |c| if c > 0.0 { throughput / c } else { 0.0 }),
    }
}

/// Writes settlements straight to a fresh embedded store, in batches as
/// large as the load's concurrency, and reports what the store alone
/// sustains. Building the settlements (parsing, rules) is not timed: only
/// `apply` and `flush` are, as the ledger calls them.
async fn store_phase(
    options: &BenchOptions,
    patients: &Arc<Vec<String>>,
    scenario: &Scenario,
    tag: &str,
    run: usize,
    ceiling: Option<f64>,
) -> PhaseReport {
    let batch_size = options.connections * options.in_flight;
    let (warmup, duration) = (options.warmup, options.duration);
    let (patients, tag) = (Arc::clone(patients), format!("{tag}-store-r{run}"));
    let measured = tokio::task::spawn_blocking(move || {
        store_alone(&patients, &tag, batch_size, warmup, duration)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the store phase panicked: {e}")));
    let mut errors = BTreeMap::new();
    let (written, store_seconds, latencies) = measured.unwrap_or_else(|error| {
        errors.insert(error, 1);
        (0, 1.0, new_histogram())
    });
    let throughput = written as f64 / store_seconds.max(f64::EPSILON);
    PhaseReport {
        scenario: scenario.name.clone(),
        run,
        ok: written,
        errors,
        throughput,
        latency: Latency::of(&latencies),
        ratio_to_ceiling: ceiling.map_or(1.0, |c| if c > 0.0 { throughput / c } else { 0.0 }),
    }
}

/// A directory under the system's temporary directory, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store phase's loop: settlements written and seconds spent in the
/// store after the warm-up, and the latency of each batch's apply and flush.
fn store_alone(
    patients: &[String],
    tag: &str,
    batch_size: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<(u64, f64, Histogram<u64>), String> {
    use crate::{
        domain::{
            Claim, ClaimInput, EnrollmentInput, EnrollmentKind, ExitKind, Person, PersonInput,
            PolicyBook, Settlement, SettlementId, Timestamp, Usage,
        },
        store::{Batch, SledOptions, SledStore, Store},
    };
    let dir = ScratchDir(
        std::env::temp_dir().join(format!("medassist-bench-{tag}-{}", std::process::id())),
    );
    let store = SledStore::open(&dir.0, SledOptions::default()).map_err(|e| e.to_string())?;
    let book = PolicyBook::builtin();
    let region = RegionCode::parse("320602").map_err(|e| e.to_string())?;
    let codes = vec!["N18.500".to_owned()];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut usages: std::collections::HashMap<String, Usage> = std::collections::HashMap::new();
    let mut latencies = new_histogram();
    let (started, mut in_store, mut written, mut n) = (Instant::now(), Duration::ZERO, 0u64, 0u64);
    let mut next_id = SettlementId::FIRST;
    while started.elapsed() < warmup + duration {
        let mut batch = Batch::after(store.meta().map_err(|e| e.to_string())?);
        for _ in 0..batch_size {
            n += 1;
            let patient = &patients[rng.usize(0..patients.len())];
            let request = bench_claim(patient, format!("{tag}-{n}"));
            let claim = Claim::parse(&ClaimInput {
                hospital_id: &request.hospital_id,
                claim_id: &request.claim_id,
                patient_id: &request.patient_id,
                admission_date: &request.admission_date,
                discharge_date: &request.discharge_date,
                diagnosis_codes: &codes,
                total_cost: &request.total_cost,
                in_scope_cost: &request.in_scope_cost,
                basic_insurance_paid: &request.basic_insurance_paid,
                critical_illness_paid: &request.critical_illness_paid,
                claim_kind: Default::default(),
            })
            .map_err(|e| e.to_string())?;
            let policy = book
                .lookup(region, claim.year())
                .ok_or("no built-in policy")?;
            let person = Person::parse(&PersonInput {
                patient_id: patient,
                name: "测试",
                region_code: "320602",
                enrollments: vec![EnrollmentInput {
                    kind: Some(EnrollmentKind::Dibao),
                    valid_from: "2020-01-01",
                    valid_to: "",
                    exit: Some(ExitKind::Plain),
                }],
                psychiatric_disability_grade: 0,
                paralysis_certified: false,
            })
            .map_err(|e| e.to_string())?;
            let usage = usages.entry(patient.clone()).or_default();
            let outcome = crate::rules::apply_cap(
                &claim,
                &crate::rules::assess(&claim, Some((&person, policy))),
                usage.used,
            );
            *usage = usage.charge(&outcome).unwrap_or(*usage);
            batch
                .usages
                .push((claim.patient_id().clone(), claim.year(), *usage));
            batch.settlements.push(Settlement {
                id: next_id,
                claim,
                outcome,
                settled_at: Timestamp::from_unix_micros(0),
                settled_day: crate::domain::BusinessDay::from_days_since_epoch(0),
                settled_by: "preload".into(),
                referral: None,
                reversal: None,
                application: None,
                superseded_by: None,
            });
            next_id = next_id.next();
        }
        batch.next_settlement_id = next_id;
        let commit = Instant::now();
        store
            .apply(&batch)
            .and_then(|()| store.flush())
            .map_err(|e| e.to_string())?;
        let took = commit.elapsed();
        if started.elapsed() > warmup {
            in_store += took;
            written += batch_size as u64;
            let _ = latencies.record((took.as_micros() as u64).clamp(1, 60_000_000));
        }
    }
    Ok((written, in_store.as_secs_f64(), latencies))
}

fn scenario_slug(scenario: &Scenario) -> String {
    scenario
        .name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect()
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at three significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!())
}

struct Worker {
    channel: Channel,
    patients: Arc<Vec<String>>,
    hot: Option<usize>,
    scenario: Scenario,
    claim_prefix: String,
    rng: fastrand::Rng,
}

impl Worker {
    async fn run(mut self, measure_from: Instant, end: Instant) -> Tally {
        let mut health = HealthClient::new(self.channel.clone());
        let mut settlements = SettlementServiceClient::new(self.channel.clone());
        let mut usage = UsageServiceClient::new(self.channel.clone());
        let mut settled: VecDeque<String> = VecDeque::new();
        let mut tally = Tally {
            latencies: new_histogram(),
            errors: BTreeMap::new(),
        };
        let mut sequence = 0u64;
        loop {
            let now = Instant::now();
            if now >= end {
                return tally;
            }
            let patient = self.patient();
            let op = match self.scenario.pick(&mut self.rng) {
                Op::Reverse if settled.is_empty() => Op::Settle,
                op => op,
            };
            let result: Result<(), tonic::Status> = match op {
                Op::Health => health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(drop),
                Op::Settle => {
                    sequence += 1;
                    let claim_id = format!("{}-{sequence}", self.claim_prefix);
                    let answer = settlements
                        .settle(bench_claim(&patient, claim_id.clone()))
                        .await;
                    answer.map(|_| settled.push_back(claim_id))
                }
                Op::PreSettle => settlements
                    .pre_settle(bench_claim(
                        &patient,
                        format!("{}-quote", self.claim_prefix),
                    ))
                    .await
                    .map(drop),
                Op::Usage => usage
                    .get_annual_usage(pb::GetAnnualUsageRequest {
                        patient_id: patient,
                        year: 2026,
                    })
                    .await
                    .map(drop),
                Op::Reverse => {
                    let claim_id = settled.pop_front().unwrap_or_default();
                    settlements
                        .reverse(pb::ReverseRequest {
                            hospital_id: BENCH_HOSPITAL.into(),
                            claim_id,
                            reason: "benchmark".into(),
                        })
                        .await
                        .map(drop)
                }
                // Store scenarios never reach the workers (see `run`).
                Op::Store => Err(tonic::Status::invalid_argument(
                    "the store scenario sends no requests",
                )),
            };
            if now < measure_from {
                continue;
            }
            match result {
                Ok(()) => {
                    let micros = now.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                    let _ = tally.latencies.record(micros);
                }
                Err(status) => {
                    *tally
                        .errors
                        .entry(format!("{:?}", status.code()))
                        .or_insert(0) += 1
                }
            }
        }
    }

    fn patient(&mut self) -> String {
        let pool = self.hot.unwrap_or(self.patients.len());
        self.patients[self.rng.usize(0..pool)].clone()
    }
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

fn summarize(phases: &[PhaseReport]) -> Vec<Summary> {
    let mut names: Vec<&str> = Vec::new();
    for phase in phases {
        if !names.contains(&phase.scenario.as_str()) {
            names.push(&phase.scenario);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let of: Vec<&PhaseReport> = phases.iter().filter(|p| p.scenario == name).collect();
            let pick = |f: fn(&Latency) -> u64| median(of.iter().map(|p| f(&p.latency)).collect());
            Summary {
                scenario: name.to_owned(),
                throughput: median(of.iter().map(|p| p.throughput).collect()),
                ratio_to_ceiling: median(of.iter().map(|p| p.ratio_to_ceiling).collect()),
                latency: Latency {
                    p50_us: pick(|l| l.p50_us),
                    p90_us: pick(|l| l.p90_us),
                    p99_us: pick(|l| l.p99_us),
                    p999_us: pick(|l| l.p999_us),
                },
                errors: of.iter().flat_map(|p| p.errors.values()).sum(),
            }
        })
        .collect()
}

fn print_table(report: &BenchReport) {
    println!(
        "{} connections x {} in flight, {:.0} s per phase, {} patients{}, medians of {} run(s)",
        report.connections,
        report.in_flight,
        report.duration_s,
        report.patients,
        report
            .hot_patients
            .map(|h| format!(" (load on {h})"))
            .unwrap_or_default(),
        report
            .phases
            .iter()
            .filter(|p| p.scenario == "health")
            .count(),
    );
    println!(
        "{:<32} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "scenario", "req/s", "x ceil", "p50 us", "p90 us", "p99 us", "p99.9 us", "errors"
    );
    for s in &report.summary {
        println!(
            "{:<32} {:>10.0} {:>8.2} {:>8} {:>8} {:>8} {:>9} {:>7}",
            s.scenario,
            s.throughput,
            s.ratio_to_ceiling,
            s.latency.p50_us,
            s.latency.p90_us,
            s.latency.p99_us,
            s.latency.p999_us,
            s.errors
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_with_weights() {
        let mix = Scenario::parse("settle=8,usage=1,reverse").unwrap();
        assert_eq!(mix.mix, [(Op::Settle, 8), (Op::Usage, 1), (Op::Reverse, 1)]);
        assert!(Scenario::parse("settle=0").is_err());
        assert!(Scenario::parse("dance").is_err());
        let mut rng = fastrand::Rng::with_seed(7);
        let picks: Vec<Op> = (0..1000).map(|_| mix.pick(&mut rng)).collect();
        let settles = picks.iter().filter(|op| **op == Op::Settle).count();
        assert!((700..900).contains(&settles), "{settles}");
    }

    #[test]
    fn generated_patients_are_distinct_valid_ids() {
        let ids = patient_ids(2500);
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 2500);
        assert!(ids.iter().all(|id| ResidentId::parse(id).is_ok()));
    }

    #[test]
    fn medians_pick_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![5u64]), 5);
    }
}
