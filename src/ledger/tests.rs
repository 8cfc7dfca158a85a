//! Who commits a write: its caller when it is alone (the embedded store),
//! the ledger thread when others wait, nobody once the ledger has stopped.
//! A clock that notes which thread asked it tells them apart: a batch reads
//! the clock once, under the writer's lock, before it writes anything.

use std::{
    path::Path,
    sync::{Arc, Condvar, Mutex},
};

use super::*;
use crate::{
    bench::patient_ids,
    domain::dibao_since_2020,
    store::{SledOptions, SledStore},
};

/// Notes the name of each thread that asks the time; while closed, holds
/// the one that asks (and with it the writer's lock) until opened.
#[derive(Debug, Default)]
struct WatchingClock {
    state: Mutex<Watched>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Watched {
    threads: Vec<String>,
    closed: bool,
    holding: bool,
}

impl WatchingClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.state.lock().expect("the clock's lock")
    }

    fn threads(&self) -> Vec<String> {
        self.lock().threads.clone()
    }

    fn close(&self) {
        self.lock().closed = true;
    }

    fn open(&self) {
        self.lock().closed = false;
        self.changed.notify_all();
    }

    /// Returns once a batch is held at the closed clock.
    fn wait_for_held(&self) {
        let mut state = self.lock();
        while !state.holding {
            state = self.changed.wait(state).expect("the clock's lock");
        }
    }
}

impl Clock for WatchingClock {
    fn now(&self) -> Timestamp {
        let mut state = self.lock();
        let name = std::thread::current().name().unwrap_or_default().to_owned();
        state.threads.push(name);
        state.holding = state.closed;
        self.changed.notify_all();
        while state.closed {
            state = self.changed.wait(state).expect("the clock's lock");
        }
        state.holding = false;
        Timestamp::from_unix_micros(1_780_000_000_000_000)
    }
}

fn start(dir: &Path, clock: &Arc<WatchingClock>) -> (Ledger, Arc<dyn Store>) {
    let store: Arc<dyn Store> =
        Arc::new(SledStore::open(dir, SledOptions::default()).expect("open the store"));
    let ledger = Ledger::start(
        Arc::clone(&store),
        Arc::new(Metrics::new()),
        Arc::new(RosterCache::new()),
        Arc::clone(clock) as Arc<dyn Clock>,
        UtcOffset::CHINA,
    )
    .expect("start the ledger");
    (ledger, store)
}

fn origin() -> Origin {
    Origin {
        principal: "roster-clerk".into(),
        name: "roster-clerk".into(),
        role: "roster_admin".into(),
        peer: None,
        client_cert: None,
        call: "UpsertPerson".into(),
    }
}

fn stored(store: &Arc<dyn Store>, id: &str) -> bool {
    let id = ResidentId::parse(id).expect("a valid ID");
    store.person(&id).expect("read the roster").is_some()
}

#[tokio::test]
async fn a_lone_write_is_committed_by_its_caller() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(WatchingClock::default());
    let (ledger, store) = start(dir.path(), &clock);
    let ids = patient_ids(2);
    for id in &ids {
        ledger
            .put_person(dibao_since_2020(id), origin())
            .await
            .expect("written");
    }
    let here = std::thread::current().name().unwrap_or_default().to_owned();
    assert_eq!(
        clock.threads(),
        vec![here; 2],
        "each write committed once, here"
    );
    assert!(ids.iter().all(|id| stored(&store, id)));
    ledger.stop().await;
}

#[test]
fn writes_that_find_others_waiting_are_committed_by_the_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(WatchingClock::default());
    let (ledger, store) = start(dir.path(), &clock);
    let ledger = Arc::new(ledger);
    let ids = patient_ids(3);

    // The first write is alone: its caller commits it, and is held at the
    // clock with the writer's lock.
    clock.close();
    let first = {
        let ledger = Arc::clone(&ledger);
        let person = dibao_since_2020(&ids[0]);
        std::thread::Builder::new()
            .name("first-caller".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime")
                    .block_on(ledger.put_person(person, origin()))
            })
            .expect("a thread")
    };
    clock.wait_for_held();

    // Two more find it waiting: both are queued for the thread.
    let others: Vec<_> = ids[1..]
        .iter()
        .map(|id| {
            let ledger = Arc::clone(&ledger);
            let person = dibao_since_2020(id);
            runtime.spawn(async move { ledger.put_person(person, origin()).await })
        })
        .collect();
    while ledger.waiting.load(Ordering::SeqCst) < 2 {
        std::thread::yield_now();
    }
    clock.open();

    first.join().expect("first caller").expect("written");
    for other in others {
        runtime.block_on(other).expect("task").expect("written");
    }
    let threads = clock.threads();
    assert_eq!(threads[0], "first-caller");
    assert!(
        (2..=3).contains(&threads.len()) && threads[1..].iter().all(|t| t == "medassist-ledger"),
        "the two queued writes are committed by the ledger thread, in one or two batches: {threads:?}"
    );
    assert!(ids.iter().all(|id| stored(&store, id)));
    runtime.block_on(ledger.stop());
}

#[tokio::test]
async fn a_write_after_the_ledger_stopped_is_refused_and_not_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(WatchingClock::default());
    let (ledger, store) = start(dir.path(), &clock);
    ledger.stop().await;
    let id = &patient_ids(1)[0];
    let refused = ledger.put_person(dibao_since_2020(id), origin()).await;
    assert_eq!(refused, Err(LedgerError::Stopped));
    assert!(clock.threads().is_empty(), "no batch ran");
    assert!(!stored(&store, id));
}
