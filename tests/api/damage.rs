//! Damage is loud, never a silent rollback.
//!
//! A store of 200 acknowledged settlements is shut down cleanly; then, trial
//! after trial, one byte of a copy of its data directory is flipped, as a
//! failing disk would: in half the trials somewhere in the last three
//! quarters of sled's log (`db`), in the others anywhere in any file of the
//! directory (sled's files, the journal, the checkpoint). Each trial must end
//! one of two ways: opening refuses with a message saying the store is
//! damaged, or every acknowledged settlement is there, identical, and
//! `verify` finds the store consistent. Opening with fewer settlements and
//! saying nothing is the outcome a fund can never have. It is tried on a
//! store written in one run, and on one restarted half-way (so part of
//! sled's log lies behind a start-up snapshot). The seed is
//! `MEDASSIST_DAMAGE_SEED`; trials per store `MEDASSIST_DAMAGE_TRIALS`
//! (default 40).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use medassist::{
    config::Config,
    domain::{Settlement, SettlementId},
    store::{SledOptions, SledStore, Store},
    verify::verify,
};
use tempfile::TempDir;

use crate::helpers::*;

const SETTLEMENTS: u64 = 200;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every regular file under `dir`, with its size.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(files(&entry.path()));
        } else if kind.is_file() {
            found.push((entry.path(), entry.metadata().unwrap().len()));
        }
    }
    found.sort();
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A stopped server's directory holding `SETTLEMENTS` acknowledged ones,
/// some reversed, and the settlements as acknowledged; restarted half-way
/// when `restart` is set.
async fn acknowledged_store(restart: bool) -> (Arc<TempDir>, Vec<Settlement>) {
    let mut server =
        TestServer::start_with(Arc::new(TempDir::new().unwrap()), Config::default()).await;
    let mut patients = Vec::new();
    for i in 0..20 {
        patients.push(server.enroll("1960-05-06", 500 + i).await);
    }
    let mut client = server.settlements();
    for n in 0..SETTLEMENTS {
        let patient = &patients[n as usize % patients.len()];
        let claim = format!("DMG-{n:04}");
        settled(client.settle(claim_paying_7000(patient, &claim)).await);
        if restart && n == SETTLEMENTS / 2 {
            let dir = server.stop().await;
            server = TestServer::start_with(dir, Config::default()).await;
            client = server.settlements();
        }
        if n % 7 == 3 {
            let reverse = medassist::grpc::pb::ReverseRequest {
                hospital_id: "H001".into(),
                claim_id: claim,
                reason: "damage test".into(),
            };
            client.reverse(reverse).await.expect("reversed");
        }
    }
    let dir = server.stop().await;
    // The trials damage this copy, as the server left it: opening a store
    // changes it (sled writes a start-up snapshot), so the acknowledged
    // settlements are read from the original afterwards.
    let pristine = Arc::new(TempDir::new().unwrap());
    copy_dir(&data_dir(&dir), &data_dir(&pristine));
    let store = SledStore::open(&data_dir(&dir), SledOptions::default()).unwrap();
    let acknowledged = (1..=SETTLEMENTS)
        .map(|id| {
            store
                .settlement(SettlementId::new(id))
                .unwrap()
                .expect("every settlement is stored")
                .value
        })
        .collect();
    drop(store);
    (pristine, acknowledged)
}

/// How one trial ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy, PartialOrd, Ord)]
enum Outcome {
    /// Opening refused, saying why.
    Refused,
    /// Opened, and every acknowledged settlement is there, identical, and
    /// `verify` is consistent.
    Intact,
}

/// Opens the damaged copy and judges the trial; panics on a silent loss.
fn judge(dir: &Path, acknowledged: &[Settlement], what: &str) -> Outcome {
    let store = match SledStore::open(dir, SledOptions::default()) {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("damaged") || message.contains("orrupt"),
                "{what}: refused without saying the store is damaged: {message}"
            );
            return Outcome::Refused;
        }
        Ok(store) => store,
    };
    for expected in acknowledged {
        let found = store.settlement(expected.id).unwrap_or_else(|e| {
            panic!(
                "{what}: opened, then settlement {} is unreadable: {e}",
                expected.id
            )
        });
        let found = found.unwrap_or_else(|| {
            panic!(
                "{what}: SILENT LOSS: opened without complaint, settlement {} is gone",
                expected.id
            )
        });
        assert_eq!(&found.value, expected, "{what}: settlement changed");
    }
    let report = verify(&store).expect("verify runs");
    assert!(report.is_consistent(), "{what}: {report}");
    assert_eq!(report.settlements, SETTLEMENTS, "{what}");
    Outcome::Intact
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_refused_or_harmless_never_a_silent_rollback() {
    let seed = env_number("MEDASSIST_DAMAGE_SEED", 20261201);
    let trials = env_number("MEDASSIST_DAMAGE_TRIALS", 40);
    for restart in [false, true] {
        let (golden, acknowledged) = acknowledged_store(restart).await;
        let outcomes = flip_trials(&data_dir(&golden), &acknowledged, seed, trials);
        println!("damage trials (seed {seed}, restarted: {restart}): {outcomes:?} of {trials}");
    }
}

/// Flips one byte of a fresh copy of `golden` per trial and judges each.
fn flip_trials(
    golden: &Path,
    acknowledged: &[Settlement],
    seed: u64,
    trials: u64,
) -> std::collections::BTreeMap<Outcome, u64> {
    let names: Vec<(PathBuf, u64)> = files(golden)
        .into_iter()
        .filter(|(_, size)| *size > 0)
        .collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut outcomes = std::collections::BTreeMap::new();
    for trial in 0..trials {
        let scratch = TempDir::new().unwrap();
        let copy = scratch.path().join("data");
        copy_dir(golden, &copy);
        let (file, size) = if trial % 2 == 0 {
            let db = golden.join("db");
            let size = std::fs::metadata(&db).unwrap().len();
            (db, size)
        } else {
            names[rng.usize(..names.len())].clone()
        };
        let at = if trial % 2 == 0 {
            rng.u64(size / 4..size)
        } else {
            rng.u64(..size)
        };
        let target = copy.join(file.strip_prefix(golden).unwrap());
        let mut bytes = std::fs::read(&target).unwrap();
        bytes[at as usize] ^= 1 << rng.u8(..8);
        std::fs::write(&target, &bytes).unwrap();
        let what = format!(
            "trial {trial} (seed {seed}): byte {at} of {}",
            file.strip_prefix(golden).unwrap().display()
        );
        *outcomes
            .entry(judge(&copy, acknowledged, &what))
            .or_insert(0) += 1;
    }
    outcomes
}

/// Proves a store left by an unclean stop opens whatever became of sled's
/// own files, rebuilt from the base copy and the journal with every
/// acknowledged settlement: sled's log deleted, zeroed, or cut to half, or
/// its start-up snapshots garbled (what a disk with a write-back cache can
/// do to files sled rewrote since they were synced). Before the base copy,
/// sled's files were the store, and each of these was a refusal to start
/// ("restore the last snapshot"), or a silent loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_files_lost_after_an_unclean_stop_are_rebuilt() {
    if crate::backend::on_postgres() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let golden = dir.path().join("data");
    let server = ServerProcess::start(&golden, &[]).await;
    let mut roster = medassist::grpc::pb::roster_service_client::RosterServiceClient::new(
        server.channel.clone(),
    );
    let mut settlements =
        medassist::grpc::pb::settlement_service_client::SettlementServiceClient::new(
            server.channel.clone(),
        );
    let patient = resident_id("1961-06-07", 700);
    roster
        .upsert_person(medassist::grpc::pb::UpsertPersonRequest {
            person: Some(dibao_person(&patient)),
        })
        .await
        .unwrap();
    let mut acknowledged = Vec::new();
    for n in 0..30 {
        let claim = format!("LOST-{n}");
        settled(
            settlements
                .settle(claim_paying_7000(&patient, &claim))
                .await,
        );
        acknowledged.push(claim);
    }
    server.kill();
    type Mutilation = fn(&Path);
    let mutilations: [(&str, Mutilation); 4] = [
        ("db deleted", |data| {
            std::fs::remove_file(data.join("db")).unwrap()
        }),
        ("db zeroed", |data| {
            let size = std::fs::metadata(data.join("db")).unwrap().len();
            std::fs::write(data.join("db"), vec![0u8; size as usize]).unwrap();
        }),
        ("db cut to half", |data| {
            let bytes = std::fs::read(data.join("db")).unwrap();
            std::fs::write(data.join("db"), &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("snapshots garbled", |data| {
            for entry in std::fs::read_dir(data).unwrap().flatten() {
                if entry.file_name().to_string_lossy().starts_with("snap.") {
                    std::fs::write(entry.path(), b"not a snapshot").unwrap();
                }
            }
        }),
    ];
    for (what, mutilate) in mutilations {
        let scratch = TempDir::new().unwrap();
        let copy = scratch.path().join("data");
        copy_dir(&golden, &copy);
        mutilate(&copy);
        let store = SledStore::open(&copy, SledOptions::default())
            .unwrap_or_else(|error| panic!("{what}: the store refuses to open: {error}"));
        assert_eq!(
            verify(&store).expect("verify runs").settlements,
            acknowledged.len() as u64,
            "{what}"
        );
        for claim in &acknowledged {
            let key = medassist::domain::ClaimKey::parse("H001", claim).unwrap();
            assert!(
                store.settlement_by_claim(&key).unwrap().is_some(),
                "{what}: {claim} lost"
            );
        }
    }
}
