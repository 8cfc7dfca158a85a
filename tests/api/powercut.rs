//! Power cuts: the real binary on [`PowerFs`], driven by concurrent clients,
//! with the power cut at random moments. Unlike `kill -9` (see `crash.rs`),
//! a cut also loses whatever the kernel had not been told to fsync, so this
//! is the test of the claim that every acknowledged write is durable.
//!
//! Each cut: the file system goes off (every call fails with EIO), the
//! server is SIGKILLed and reaped, the file system is unmounted, everything
//! unsynced is dropped and it is mounted again. Then `medassist verify` must
//! say `consistent`, and a restarted server must hold every acknowledged
//! write: roster persons, settlements (identical content, read by claim key)
//! and reversals; annual usage must equal the sum of the settlements the
//! server lists and stay within the cap; requests whose answer was lost must
//! settle exactly once when retried. The generator is seeded
//! (`MEDASSIST_POWERCUT_SEED` overrides it), the number of cuts is
//! `MEDASSIST_POWERCUT_CYCLES` (default 20), and the cut comes after a random
//! number of acknowledgements.
//!
//! The same harness runs on a disk that keeps exactly what was synced, on
//! one that reorders the writes since the last sync as a volatile write
//! cache does (`MEDASSIST_REORDER_CYCLES` cuts, default 8), and, as the
//! control, on an ideal disk.

use std::{
    fmt::{self, Write as _},
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use medassist::grpc::pb::{
    self, roster_service_client::RosterServiceClient,
    settlement_service_client::SettlementServiceClient,
};
use tonic::transport::Channel;

use crate::{
    chaos::*,
    helpers::*,
    powerfs::{Calls, CutReport, PowerFs},
};

const WORKERS: usize = 6;

/// Acknowledged writes a restarted server no longer has.
#[derive(Default)]
struct Losses {
    persons: Vec<String>,
    settlements: Vec<String>,
    changed: Vec<String>,
    reversals: Vec<String>,
}

impl Losses {
    fn any(&self) -> bool {
        !(self.persons.is_empty()
            && self.settlements.is_empty()
            && self.changed.is_empty()
            && self.reversals.is_empty())
    }
}

/// Compares the restarted server with what was acknowledged.
async fn losses(channel: &Channel, model: &Model) -> Losses {
    let mut losses = Losses::default();
    let mut roster = RosterServiceClient::new(channel.clone());
    for id in &model.persons {
        let found = roster
            .get_person(pb::GetPersonRequest {
                patient_id: id.clone(),
            })
            .await;
        match found {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::NotFound => {
                losses.persons.push(id.clone())
            }
            Err(status) => panic!("GetPerson({id}) fails: {status:?}"),
        }
    }
    let mut settlements = SettlementServiceClient::new(channel.clone());
    for (claim_id, acknowledged) in &model.settlements {
        let found = settlements
            .get_settlement(pb::GetSettlementRequest {
                hospital_id: "H001".into(),
                claim_id: claim_id.clone(),
                ..Default::default()
            })
            .await;
        let found = match found {
            Ok(found) => found.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                losses.settlements.push(claim_id.clone());
                continue;
            }
            Err(status) => panic!("GetSettlement({claim_id}) fails: {status:?}"),
        };
        let reversed = found.status() == pb::SettlementStatus::Reversed;
        let as_acknowledged = if acknowledged.status() == pb::SettlementStatus::Settled
            && reversed
            && model.reversal_unknown(claim_id)
        {
            // Its reversal's answer was lost: it may have landed.
            pb::Settlement {
                status: acknowledged.status,
                reversed_at: None,
                reverse_reason: String::new(),
                reversed_by: String::new(),
                reversed_day: String::new(),
                ..found.clone()
            }
        } else {
            found.clone()
        };
        if &as_acknowledged == acknowledged {
            continue;
        }
        if acknowledged.status() == pb::SettlementStatus::Reversed && !reversed {
            losses.reversals.push(claim_id.clone());
        } else {
            losses.changed.push(claim_id.clone());
        }
    }
    losses
}

/// What survived the cut, for the failure message: each file and its size.
fn listing(root: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = entry.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                stack.push(path.clone());
            }
            let shown = path.strip_prefix(root).unwrap_or(&path).display();
            let size = meta.map_or(0, |m| m.len());
            let _ = write!(out, " {shown}({size} B)");
        }
    }
    if out.is_empty() {
        " nothing".into()
    } else {
        out
    }
}

/// Proves that no acknowledged write (roster person, settlement, reversal)
/// is lost by a power cut, over `MEDASSIST_POWERCUT_CYCLES` cuts at random
/// moments of concurrent load, and that what survives is consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_across_power_cuts() {
    let seed = env_or("MEDASSIST_POWERCUT_SEED", 20261201u64);
    let cycles = env_or("MEDASSIST_POWERCUT_CYCLES", 20usize);
    cut_power_repeatedly(PowerFs::mount(), seed, cycles, &[]).await;
}

/// Proves the same on a disk with a volatile write cache
/// ([`PowerFs::mount_reordering`], seeded with the run's seed): at each cut
/// every page written since its file's last sync keeps its latest or its
/// synced bytes, so a store whose recovery counts on the order in which
/// unsynced pages reach the disk loses what it acknowledged, or refuses to
/// start. Either fails the test, naming the files and pages the disk
/// reordered and the server's last lines. 8 cuts by default keep
/// `cargo test` short; the long run is
/// `MEDASSIST_REORDER_CYCLES=50 cargo test --release --test api reordering_power_cuts`
/// (with `MEDASSIST_POWERCUT_SEED` for other seeds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_across_reordering_power_cuts() {
    let seed = env_or("MEDASSIST_POWERCUT_SEED", 20261201u64);
    let cycles = env_or("MEDASSIST_REORDER_CYCLES", 8usize);
    // Base copies every few commits, so cuts also land while one is
    // written and while the journal segments it covers are released.
    let rebase_often = ["--rebase-after-bytes", "65536"];
    cut_power_repeatedly(PowerFs::mount_reordering(seed), seed, cycles, &rebase_often).await;
}

/// The positive control: the same harness on a disk where every write is
/// durable at once must find nothing lost, so what the test above reports
/// lost is the service's doing, not the harness's or the file system's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_cut_harness_loses_nothing_on_an_ideal_disk() {
    let seed = env_or("MEDASSIST_POWERCUT_SEED", 20261201u64);
    cut_power_repeatedly(PowerFs::mount_ideal(), seed, 3, &[]).await;
}

/// One cut, as a failure after it names it: when, and what survived.
struct Cut {
    number: usize,
    seed: u64,
    /// Acknowledgements in the cycle before the cut.
    target: usize,
    /// What a reordering disk kept of unsynced pages (empty on others).
    kept: CutReport,
    /// Each file that survived and its size.
    survived: String,
    calls: Calls,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "power cut {} (seed {}, after {} acknowledgements this cycle)",
            self.number, self.seed, self.target
        )
    }
}

impl Cut {
    /// What the file system knows of the cut, for a failure message.
    fn context(&self) -> String {
        let mut out = String::new();
        if !self.kept.files.is_empty() {
            let _ = write!(out, "\nThe reordering disk at the cut: {}", self.kept);
        }
        let _ = write!(
            out,
            "\nFiles that survived the cut:{}\n\
             Calls the file system served since the mount: {:?}",
            self.survived, self.calls
        );
        out
    }
}

/// Checks the data directory a cut left and restarts the server on it:
/// `medassist verify` must say `consistent` and the store must open. A
/// failure of either fails the test, saying which and what the cut kept.
async fn verify_and_restart(data_dir: &Path, cut: &Cut, args: &[&str]) -> (String, ServerProcess) {
    let verified = try_verify_offline(data_dir);
    let started = ServerProcess::try_start(data_dir, args).await;
    match (verified, started) {
        (Ok(report), Ok(server)) => (report, server),
        (verified, Err(not_serving)) => {
            let verify = match verified {
                Ok(_) => "says consistent".to_owned(),
                Err(failure) => format!("fails too {failure}"),
            };
            panic!(
                "{cut}: the store refuses to start. {not_serving}\n`medassist verify` {verify}{}",
                cut.context()
            )
        }
        (Err(failure), Ok(server)) => {
            server.kill();
            panic!(
                "{cut}: the server starts, but `medassist verify` fails {failure}{}",
                cut.context()
            )
        }
    }
}

/// Load, cut, restore, verify, restart and check, `cycles` times on `fs`.
/// The server runs with `args` besides its data directory.
async fn cut_power_repeatedly(mut fs: PowerFs, seed: u64, cycles: usize, args: &[&str]) {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    // The data directory is provisioned durably, as an operator's volume
    // would be, so what is tested is what the service writes inside it.
    // (Left to the server, the directory itself vanishes at the first cut:
    // nothing fsyncs its parent, and verify then exits 2, "not a directory".)
    let data_dir = fs.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data directory is created");
    std::fs::File::open(fs.path())
        .and_then(|root| root.sync_all())
        .expect("the data directory's entry is synced");
    let model = Arc::new(Mutex::new(Model::default()));

    let mut server = ServerProcess::start(&data_dir, args).await;
    let mut guard = KillOnPanic(Some(server.id()));
    let patients = enroll_patients(
        &server.channel,
        &model,
        "1956-06-06",
        300,
        PATIENTS,
        NEAR_CAP,
    )
    .await;
    let mut acknowledged_total = {
        let model = model.lock().unwrap();
        model.persons.len() + model.settlements.len()
    };
    let patients = Arc::new(patients);

    let (mut resolved_total, mut rewritten_total) = (0, 0);
    for cycle in 0..cycles {
        let target = rng.usize(20..150);
        let shared = Cycle::new();
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let seed = seed + (cycle * WORKERS + w) as u64;
                let (channel, model, patients) =
                    (server.channel.clone(), model.clone(), patients.clone());
                tokio::spawn(client(channel, model, patients, seed, MIX, shared.clone()))
            })
            .collect();
        // Bounded, so a client that fails an assertion cannot hang the test.
        tokio::time::timeout(Duration::from_secs(60), shared.reached(target))
            .await
            .expect("the clients reach the cut target");

        fs.cut();
        server.kill();
        guard.0 = None;
        shared.stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.expect("client tasks assert nothing false");
        }
        acknowledged_total += shared.writes.load(Ordering::SeqCst);
        fs.restore();

        let cut = Cut {
            number: cycle,
            seed,
            target,
            kept: fs.last_cut(),
            survived: listing(fs.path()),
            calls: fs.calls(),
        };
        rewritten_total += cut.kept.rewritten_durable_pages();
        let report;
        (report, server) = verify_and_restart(&data_dir, &cut, args).await;
        guard.0 = Some(server.id());
        // Owned while checking: no lock is held across an await.
        let mut owned = std::mem::take(&mut *model.lock().unwrap());
        let lost = losses(&server.channel, &owned).await;
        if lost.any() {
            let settlements = owned.settlements.len();
            panic!(
                "{cut} lost acknowledged writes, yet `medassist verify` said {:?}: \
                 {} of {settlements} acknowledged settlements are missing, {} changed, \
                 {} acknowledged reversals undone, {} of {} roster persons missing \
                 ({acknowledged_total} writes acknowledged so far).\n\
                 Missing settlements (first 10): {:?}\nMissing persons: {:?}{}",
                report.trim(),
                lost.settlements.len(),
                lost.changed.len(),
                lost.reversals.len(),
                lost.persons.len(),
                owned.persons.len(),
                &lost.settlements[..lost.settlements.len().min(10)],
                lost.persons,
                cut.context(),
            );
        }
        check_usage(&server.channel, &patients).await;
        let resolved = resolve_lost(&server.channel, &mut owned).await.total();
        resolved_total += resolved;
        println!(
            "cut {cycle}: after {target} acknowledgements; {} settlements intact, {resolved} lost answers settled exactly once{}",
            owned.settlements.len(),
            if cut.kept.files.is_empty() {
                String::new()
            } else {
                format!("; {}", cut.kept)
            },
        );
        *model.lock().unwrap() = owned;
    }

    check_usage(&server.channel, &patients).await;
    server.terminate().await;
    guard.0 = None;
    verify_offline(&data_dir, "the last run");
    println!(
        "power-cut test (seed {seed}): {cycles} cuts, {acknowledged_total} acknowledged writes kept, \
         {resolved_total} lost-answer retries settled exactly once, \
         {rewritten_total} kept pages overwrote durable data, {:.1} s\n{:?}",
        started.elapsed().as_secs_f64(),
        fs.calls()
    );
}
