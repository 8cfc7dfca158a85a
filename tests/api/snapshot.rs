//! Online snapshots through the real command line: `medassist snapshot save`
//! against a server that keeps settling, `medassist snapshot restore` into a
//! new directory, and refusals of damaged files and occupied directories.

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use medassist::{
    config::Config,
    domain::{ClaimId, ClaimKey, HospitalId},
    grpc::pb,
    store::{SledOptions, SledStore, Store},
};
use tempfile::TempDir;

use crate::helpers::*;

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn key(claim: &str) -> ClaimKey {
    ClaimKey {
        hospital_id: HospitalId::parse("H001").unwrap(),
        claim_id: ClaimId::parse(claim).unwrap(),
    }
}

/// Proves a snapshot taken while four clients keep settling and reversing
/// holds every write acknowledged before `save` began, restores into a
/// directory that `verify` finds consistent, and holds only whole commits:
/// each restored settlement is the live one, or the live one before a later
/// reversal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_under_load_restores_every_acknowledged_write() {
    let server = TestServer::start_with(Arc::new(TempDir::new().unwrap()), Config::default()).await;
    let mut patients = Vec::new();
    for i in 0..16 {
        patients.push(server.enroll("1970-02-03", 200 + i).await);
    }
    let mut client = server.settlements();
    let mut before = HashMap::new();
    for n in 0..120 {
        let claim = format!("SNAP-PRE-{n:03}");
        let (settlement, _) = settled(
            client
                .settle(claim_paying_7000(&patients[n % patients.len()], &claim))
                .await,
        );
        before.insert(claim, settlement);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (mut client, stop, patients) =
            (server.settlements(), Arc::clone(&stop), patients.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let claim = format!("SNAP-LOAD-{worker}-{n:05}");
                let request = claim_paying_7000(&patients[n % patients.len()], &claim);
                client
                    .settle(request)
                    .await
                    .expect("settles during the snapshot");
                if n % 3 == 0 {
                    let reverse = pb::ReverseRequest {
                        hospital_id: "H001".into(),
                        claim_id: claim,
                        reason: "load".into(),
                    };
                    client
                        .reverse(reverse)
                        .await
                        .expect("reverses during the snapshot");
                }
                n += 1;
            }
            n
        }));
    }
    let work = TempDir::new().unwrap();
    let file = work.path().join("medassist.snapshot");
    let target = format!("http://{}", server.addr);
    let file_arg = file.to_str().unwrap().to_owned();
    let saved = tokio::task::spawn_blocking(move || {
        run(&["snapshot", "save", "--target", &target, &file_arg])
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut during = 0;
    for worker in load {
        during += worker.await.unwrap();
    }
    assert!(saved.status.success(), "{}", text(&saved));
    assert!(text(&saved).contains("saved"), "{}", text(&saved));

    // Live state after the load stopped, to compare with.
    let live = server.stop().await;
    let restored = work.path().join("restored");
    let output = run(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("consistent"), "{}", text(&output));

    let restored = SledStore::open(&restored, SledOptions::default()).unwrap();
    let live = SledStore::open(&data_dir(&live), SledOptions::default()).unwrap();
    for (claim, acknowledged) in &before {
        let found = restored
            .settlement_by_claim(&key(claim))
            .unwrap()
            .unwrap_or_else(|| panic!("{claim}, acknowledged before the save, is missing"));
        assert_eq!(found.value.id.to_string(), acknowledged.settlement_id);
        assert_eq!(
            found.value.outcome.assistance.to_string(),
            acknowledged.assistance_amount
        );
    }
    let report = medassist::verify::verify(&restored).unwrap();
    assert!(report.settlements >= before.len() as u64);
    for stored in medassist::store::Scan::scan_settlements(&restored) {
        let stored = stored.unwrap().value;
        let now = live.settlement(stored.id).unwrap().expect("live").value;
        let mut then = now.clone();
        if stored.reversal.is_none() {
            then.reversal = None;
        }
        assert_eq!(
            stored, then,
            "settlement {} is not a whole commit",
            stored.id
        );
    }
    println!(
        "snapshot: {} settlements restored ({} acknowledged before the save, {during} settle loops ran during it)",
        report.settlements,
        before.len()
    );
}

/// Collects a snapshot through the RPC into `file`.
async fn save_with_rpc(server: &TestServer, file: &Path) {
    let mut admin = pb::admin_service_client::AdminServiceClient::new(server.channel());
    let mut chunks = admin
        .save_snapshot(pb::SaveSnapshotRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = chunks.message().await.unwrap() {
        bytes.extend_from_slice(&message.chunk);
    }
    std::fs::write(file, bytes).unwrap();
}

/// Proves a damaged or truncated snapshot is refused with one line saying
/// so, and nothing is written; an occupied directory is refused too; and
/// `save` will not overwrite an existing backup.
#[tokio::test]
async fn damaged_snapshots_and_occupied_directories_are_refused() {
    let server = TestServer::start().await;
    let patient = server.enroll("1950-06-07", 11).await;
    settled(
        server
            .settlements()
            .settle(worked_example(&patient, "S-1"))
            .await,
    );
    let work = TempDir::new().unwrap();
    let file = work.path().join("good.snapshot");
    save_with_rpc(&server, &file).await;
    let good = std::fs::read(&file).unwrap();
    let target = work.path().join("target");
    let restore = |file: &Path| {
        run(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ])
    };
    let mut rng = fastrand::Rng::with_seed(7);
    for trial in 0..6 {
        let mut bad = good.clone();
        if trial % 2 == 0 {
            let at = rng.usize(..bad.len());
            bad[at] ^= 1 << rng.u8(..8);
        } else {
            bad.truncate(rng.usize(..bad.len()));
        }
        let damaged = work.path().join(format!("bad-{trial}.snapshot"));
        std::fs::write(&damaged, &bad).unwrap();
        let output = restore(&damaged);
        assert!(!output.status.success(), "trial {trial}");
        let said = text(&output);
        assert!(said.contains("damaged"), "trial {trial}: {said}");
        assert_eq!(said.trim().lines().count(), 1, "one clear line: {said}");
        assert!(!target.exists(), "trial {trial}: nothing is written");
    }
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep.txt"), "not a store").unwrap();
    let output = restore(&file);
    assert!(!output.status.success());
    assert!(text(&output).contains("not empty"), "{}", text(&output));
    let output = run(&[
        "snapshot",
        "save",
        "--target",
        &format!("http://{}", server.addr),
        file.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("exists"), "{}", text(&output));
    server.stop().await;
}
