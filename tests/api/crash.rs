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
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use medassist::grpc::pb::{self, usage_service_client::UsageServiceClient};
use tempfile::TempDir;

use crate::{chaos::*, helpers::*};

const CYCLES: usize = 20;
const WORKERS: usize = 8;
const PATIENTS: u16 = 24;
/// Patients that start each run with most of their cap already used.
const NEAR_CAP: u16 = 8;
/// A fifth of the requests retry, a fifth reverse.
const MIX: Mix = Mix {
    retries: 20,
    reversals: 20,
};

/// Proves that no acknowledged settlement or reversal is lost or changed by
/// SIGKILL at random moments, over 20 cycles of load, kill, check, restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_across_kill_9() {
    let seed = env_or("MEDASSIST_CRASH_SEED", 20261128u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let model = Arc::new(Mutex::new(Model::default()));

    let mut server = ServerProcess::start(&data_dir, &[]).await;
    let patients = enroll_patients(
        &server.channel,
        &model,
        "1955-05-05",
        200,
        PATIENTS,
        NEAR_CAP,
    )
    .await;
    let patients = Arc::new(patients);

    let (mut acknowledged_total, mut resolved_total) = (0, 0);
    for cycle in 0..CYCLES {
        let target = rng.usize(20..200);
        let shared = Cycle::new();
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let seed = (cycle * WORKERS + w) as u64 + seed;
                let (channel, model, patients) =
                    (server.channel.clone(), model.clone(), patients.clone());
                tokio::spawn(client(channel, model, patients, seed, MIX, shared.clone()))
            })
            .collect();
        // Bounded, so a client that fails an assertion cannot hang the test.
        tokio::time::timeout(Duration::from_secs(120), shared.reached(target))
            .await
            .expect("the clients reach the kill target");

        server.kill();
        shared.stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.expect("client tasks assert nothing false");
        }
        acknowledged_total += shared.acknowledged();
        verify_offline(&data_dir, "a kill -9");
        server = ServerProcess::start(&data_dir, &[]).await;
        let (checked, resolved) = check_and_resolve(&server.channel, &model, &patients).await;
        let resolved = resolved.total();
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
    let report = verify_offline(&data_dir, "a kill -9");
    println!(
        "crash test (seed {seed}): {CYCLES} kill -9 cycles survived, {acknowledged_total} acknowledged requests, \
         {settlements} settlements checked after every restart, {resolved_total} lost requests settled exactly once\n{report}"
    );
}
