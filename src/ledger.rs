//! The ledger: the single writer that puts settlements in order.
//!
//! Every write (settle, reverse, roster change) goes through one writer,
//! behind one lock, run by one thread. It takes whatever requests are queued, applies them one after another to the
//! running totals (so two claims of one patient in the same batch see each
//! other), commits the whole batch as one atomic write and one flush,
//! and only then answers every request in it. Ordering all writes in one
//! place is what makes "concurrent claims never pay past the cap" and "a key
//! is used once" simple and exact; batching is what makes one flush per
//! commit affordable.
//!
//! The thread is a plain OS thread because the store's calls block (the
//! flush waits for the disk). Requests arrive on a bounded channel and are
//! answered on one-shot channels, so async callers wait without blocking.
//!
//! One exception, for the embedded store: a write whose caller is alone (no
//! other caller waits for the ledger, nothing is queued or being committed,
//! and the thread's last batch was a lone request too) is committed by its
//! caller, on the caller's thread, under the same lock the thread commits
//! under, as a batch of one. A lone request then skips two hand-offs between
//! threads, each a wake-up of a sleeping CPU that costs tens of microseconds
//! on a virtual machine (docs/BENCHMARKS.md, "One client's settle"); the
//! caller blocks its runtime worker for one commit, about as long as it
//! would have waited anyway. Under load callers are never alone, and the
//! thread batches them while the runtime's workers keep serving the network.
//!
//! A second thread that flushes one batch while the next is applied was
//! measured and dropped: no throughput gain where the CPU is the limit, and
//! one more thread handoff on every answer (docs/BENCHMARKS.md).
//!
//! The ledger also seals the audit trail (see [`crate::audit`]): the record
//! of each write goes into the write's own commit, and the records of reads
//! queued since the last commit go into the next one, so the chain follows
//! commit order and a read never waits for a sync of its own. Reads alone
//! do not start a commit: their records wait for a write, up to
//! [`READ_HOLD`] or [`BATCH_MAX`] records, so a stream of reads is not a
//! stream of syncs.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::{
    audit::{self, Head, Origin, Phase, Subject},
    clock::Clock,
    domain::{
        Application, ApplicationState, Approval, BusinessDay, Claim, ClaimKey, Closing, PaymentRef,
        Person, PolicyBook, Reason, ResidentId, Reversal, Settlement, SettlementId, Timestamp,
        TopUp, Usage, UtcOffset, Year,
    },
    metrics::Metrics,
    roster_cache::RosterCache,
    rules::{self, Assessment},
    store::{Batch, CommitNumber, Meta, Plan, Store, StoreError, Txn, Versioned},
};

/// Most requests one commit takes: bounds the work (and the wait) of a batch.
/// A request that writes many roster records counts as that many.
pub const BATCH_MAX: usize = 1024;
/// Most roster records one [`Ledger::put_persons`] may carry, so one import
/// batch fits in one commit.
pub const PUT_PERSONS_MAX: usize = 512;
/// Most requests that may wait for the ledger, and most audit records of
/// reads not yet committed; senders wait beyond that. So a power cut can
/// take back the records of at most this many answered reads.
pub const QUEUE_MAX: usize = 8192;
/// Most runs of one batch that a shared store undoes because another
/// instance wrote the same records (each run locks afresh, so one usually
/// suffices).
const TRIES_MAX: u32 = 8;
/// Longest the record of a read waits for a commit to carry it when no
/// write comes: then it is committed on its own, with every read record
/// queued by then.
pub const READ_HOLD: Duration = Duration::from_millis(100);
/// Longest a reader waits for the commit that wrote what it read.
const DURABLE_WAIT_MAX: Duration = Duration::from_secs(10);

/// A settlement as the ledger answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The settlement as stored.
    pub settlement: Settlement,
    /// True when the request repeated one already recorded, and nothing changed.
    pub replayed: bool,
}

/// What writing one roster record of an import changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// No record had this patient ID.
    Created,
    /// A different record was replaced.
    Updated,
    /// The stored record was already identical; nothing was written.
    Unchanged,
}

/// Why the ledger did not record a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The key already holds a settlement of a different claim.
    #[error("claim key already used by settlement {}", .0.id)]
    Conflict(Box<Settlement>),
    /// No settlement has this key.
    #[error("no settlement under this claim key")]
    NotFound,
    /// The store failed; the request did not happen.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger has stopped (the service is shutting down).
    #[error("the ledger has stopped")]
    Stopped,
    /// A claim assessed in the batch has no policy for its patient's region
    /// and year.
    #[error("no medical assistance policy applies to region {} in {}", .0.region, .0.year)]
    NoPolicy(rules::NoPolicy),
    /// The change does not apply to the settlement as it stands (an
    /// application reversed as a window settlement, a paid application
    /// withdrawn); the message says why.
    #[error("{0}")]
    Refused(String),
    /// The principal that submitted an application tried to approve or
    /// reject it: a second pair of eyes must.
    #[error(
        "the principal that submitted application {0} may not decide it: another must (four eyes)"
    )]
    SameHands(SettlementId),
}

/// A change to a recorded settlement, made by the ledger in commit order.
#[derive(Clone, Debug)]
pub enum Change {
    /// The hospital cancels its window settlement: its amount goes back to
    /// the cap.
    Reverse(Reason),
    /// A principal other than the submitter approves an application: it
    /// counts as paid, under the fund's payment reference.
    Approve(PaymentRef),
    /// A principal other than the submitter refuses an application: its
    /// reservation goes back to the cap.
    Reject(Reason),
    /// An application is taken back: its reservation goes back to the cap.
    Withdraw(Reason),
}

/// How far commits are known durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// Every commit up to this number is on disk.
    UpTo(CommitNumber),
    /// A commit failed; the store serves nothing until restarted.
    Failed,
}

/// How the ledger learns what a claim is worth before the cap.
pub enum Assessing {
    /// The caller assessed it, on the roster record it read.
    Done(Box<Assessment>),
    /// The batch assesses it under this policy book, on the roster record
    /// its transaction reads. On a shared store that is one read for the
    /// whole batch, in the round trip that takes its locks, instead of one
    /// per request.
    InBatch(Arc<PolicyBook>),
}

enum Command {
    Settle {
        claim: Box<Claim>,
        assessing: Assessing,
        application: Option<Box<Application>>,
        by: Box<Origin>,
        reply: oneshot::Sender<Result<Recorded, LedgerError>>,
    },
    Change {
        key: ClaimKey,
        change: Change,
        by: Box<Origin>,
        reply: oneshot::Sender<Result<Recorded, LedgerError>>,
    },
    TopUp {
        /// The window settlement's key, patient and cap year.
        window: ClaimKey,
        patient_year: (ResidentId, Year),
        assessing: Assessing,
        application: Box<Application>,
        by: Box<Origin>,
        reply: oneshot::Sender<Result<Recorded, LedgerError>>,
    },
    PutPerson {
        person: Box<Person>,
        by: Box<Origin>,
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
    PutPersons {
        persons: Vec<Person>,
        by: Box<Origin>,
        reply: oneshot::Sender<Result<Vec<PutOutcome>, LedgerError>>,
    },
    /// Read records are waiting (the first of a hold, or a full batch of
    /// them): see [`ReadRecords`].
    Reads,
    /// Answered once everything queued before it is committed.
    Barrier {
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
    Stop,
}

impl Command {
    /// How much of a batch the command takes (see [`BATCH_MAX`]).
    fn weight(&self) -> usize {
        match self {
            Command::PutPersons { persons, .. } => persons.len().max(1),
            Command::Reads => 0,
            _ => 1,
        }
    }

    /// Whether the command is counted in [`Ledger::waiting`]: a wake-up for
    /// read records is not (any commit takes those records).
    fn counted(&self) -> bool {
        !matches!(self, Command::Reads)
    }
}

/// The handle async code uses to reach the ledger thread.
pub struct Ledger {
    commands: mpsc::Sender<Command>,
    reads: Arc<ReadRecords>,
    durable: watch::Receiver<Durability>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// The writer, locked by the thread for each batch and by a caller that
    /// commits its own write (see the module's doc). The thread owns it: it
    /// ends with the thread, and with it the store and the durable point
    /// (whose end tells [`Ledger::failed`] the ledger stopped).
    writer: Weak<Mutex<Writer>>,
    /// Commands sent to the thread and not yet answered by it: a caller
    /// commits its own write only when there are none, so it never passes
    /// a request queued before it, and the thread is never kept waiting.
    waiting: Arc<AtomicUsize>,
    /// Callers waiting for the ledger's answer now. A caller commits its
    /// own write only when it is alone: with others waiting, the thread
    /// batches them, and the runtime's workers stay free for the network.
    callers: AtomicUsize,
    /// The thread's last batch answered at most one request. Under load a
    /// caller can still find itself alone for a moment between batches;
    /// it commits its own write only if the one before was alone too.
    lone: Arc<AtomicBool>,
    /// Callers may commit their own writes (the embedded store: a shared
    /// store's client may not block a runtime worker).
    inline: bool,
}

impl Ledger {
    /// Reads where the store left off and starts the writer thread, which
    /// stamps each commit with `clock` and dates it in the zone `offset`.
    pub fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        roster: Arc<RosterCache>,
        clock: Arc<dyn Clock>,
        offset: UtcOffset,
    ) -> Result<Ledger, StoreError> {
        let meta = store.meta()?;
        let chain = store.audit_head()?;
        let (commands, queue) = mpsc::channel(QUEUE_MAX);
        let reads = Arc::new(ReadRecords {
            events: Mutex::new(Vec::new()),
            room: Semaphore::new(QUEUE_MAX),
        });
        let (durable_tx, durable) = watch::channel(Durability::UpTo(meta.last_commit));
        let shared = store.shared();
        let writer = Arc::new(Mutex::new(Writer {
            shared,
            store,
            meta,
            durable: durable_tx,
            metrics,
            roster,
            clock,
            offset,
            usages: HashMap::new(),
            chain,
            chain_unsure: false,
            reads: Arc::clone(&reads),
            stopped: false,
        }));
        let waiting = Arc::new(AtomicUsize::new(0));
        let lone = Arc::new(AtomicBool::new(true));
        let thread = Thread {
            writer: Arc::clone(&writer),
            waiting: Arc::clone(&waiting),
            lone: Arc::clone(&lone),
            reads: Arc::clone(&reads),
        };
        let worker = std::thread::Builder::new()
            .name("medassist-ledger".into())
            .spawn(move || thread.run(queue))
            .map_err(|e| StoreError::Io(format!("cannot start the ledger thread: {e}")))?;
        Ok(Ledger {
            commands,
            reads,
            durable,
            worker: Mutex::new(Some(worker)),
            writer: Arc::downgrade(&writer),
            waiting,
            callers: AtomicUsize::new(0),
            lone,
            inline: !shared,
        })
    }

    /// Records a settlement of a claim made by `by` (at the window, or an
    /// `application`), or replays the one recorded under its key for the
    /// same request. A new settlement's audit record is sealed into its
    /// commit.
    pub async fn settle(
        &self,
        claim: Claim,
        assessing: Assessing,
        application: Option<Application>,
        by: Origin,
    ) -> Result<Recorded, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Settle {
            claim: Box::new(claim),
            assessing,
            application: application.map(Box::new),
            by: Box::new(by),
            reply,
        };
        self.ask(command, answer).await
    }

    /// Records a top-up `application` of the window settlement under
    /// `window` (of `patient_year`), its claim assessed on the roster as it
    /// is now; or replays the one recorded for the same request.
    pub async fn top_up(
        &self,
        window: ClaimKey,
        patient_year: (ResidentId, Year),
        assessing: Assessing,
        application: Application,
        by: Origin,
    ) -> Result<Recorded, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::TopUp {
            window,
            patient_year,
            assessing,
            application: Box::new(application),
            by: Box::new(by),
            reply,
        };
        self.ask(command, answer).await
    }

    /// Makes `change` to the settlement under `key` on behalf of `by`, or
    /// replays the same change made before. Its audit record is sealed into
    /// its commit.
    pub async fn change(
        &self,
        key: ClaimKey,
        change: Change,
        by: Origin,
    ) -> Result<Recorded, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Change {
            key,
            change,
            by: Box::new(by),
            reply,
        };
        self.ask(command, answer).await
    }

    /// Creates or replaces a roster record, with its audit record (what
    /// changed) in the same commit.
    pub async fn put_person(&self, person: Person, by: Origin) -> Result<(), LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.ask(
            Command::PutPerson {
                person: Box::new(person),
                by: Box::new(by),
                reply,
            },
            answer,
        )
        .await
    }

    /// Creates or replaces up to [`PUT_PERSONS_MAX`] roster records (with
    /// distinct patient IDs) in one commit, skipping those already stored
    /// identical; answers, record by record, what changed, once durable.
    /// Each record created or changed has its audit record in the commit.
    pub async fn put_persons(
        &self,
        persons: Vec<Person>,
        by: Origin,
    ) -> Result<Vec<PutOutcome>, LedgerError> {
        self.submit_persons(persons, by).await?.outcomes().await
    }

    /// Like [`Ledger::put_persons`], but returns once the ledger has the
    /// records, with the receiver of its answer: an import hands over the
    /// next batch while the previous one commits.
    pub async fn submit_persons(
        &self,
        persons: Vec<Person>,
        by: Origin,
    ) -> Result<PersonsAnswer, LedgerError> {
        assert!(
            persons.len() <= PUT_PERSONS_MAX,
            "an import batch is cut at PUT_PERSONS_MAX"
        );
        let (reply, answer) = oneshot::channel();
        self.send(Command::PutPersons {
            persons,
            by: Box::new(by),
            reply,
        })
        .await?;
        Ok(PersonsAnswer(answer))
    }

    /// Queues an audit record without waiting (from a destructor: a
    /// response dropped because its client went away); hands it back when
    /// [`QUEUE_MAX`] records already wait or the ledger has stopped.
    pub fn try_audit(&self, event: audit::Event) -> Result<(), Box<audit::Event>> {
        if self.commands.is_closed() {
            return Err(Box::new(event));
        }
        match self.reads.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(Box::new(event)),
        }
        self.hold(event);
        Ok(())
    }

    /// Completes once every request and audit record queued before it is
    /// committed: a read of the audit trail after it holds the record of
    /// every call answered before it.
    pub async fn committed_so_far(&self) -> Result<(), LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Command::Barrier { reply }, answer).await
    }

    /// Queues the audit record of a call answered without a write of its
    /// own (a read, a replay, a refusal): it is sealed with the next commit,
    /// and the caller does not wait for that. Waits only while
    /// [`QUEUE_MAX`] records already wait.
    pub async fn audit(&self, event: audit::Event) -> Result<(), LedgerError> {
        if self.commands.is_closed() {
            return Err(LedgerError::Stopped);
        }
        self.reads
            .room
            .acquire()
            .await
            .map_err(|_| LedgerError::Stopped)?
            .forget();
        self.hold(event);
        Ok(())
    }

    /// Adds a read record to those waiting; the first of a hold and a full
    /// batch wake the ledger (the rest do not: waking it for every read
    /// costs more than the read).
    fn hold(&self, event: audit::Event) {
        let waiting = {
            let mut events = self.reads.lock();
            events.push(event);
            events.len()
        };
        if waiting == 1 || waiting == BATCH_MAX {
            // A full queue is a busy ledger, which takes the records with
            // its next batch anyway.
            let _ = self.commands.try_send(Command::Reads);
        }
    }

    /// A view of how far commits are durable, for readers that run off the
    /// async runtime (a streamed export).
    pub fn durability(&self) -> DurableView {
        DurableView(self.durable.clone())
    }

    async fn ask<T>(
        &self,
        command: Command,
        answer: oneshot::Receiver<Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        let _caller = Caller::new(&self.callers);
        if let Some(command) = self.commit_here(command) {
            self.send(command).await?;
        }
        answer.await.map_err(|_| LedgerError::Stopped)?
    }

    /// Commits `command` on this thread when the ledger is idle (see the
    /// module's doc); hands it back otherwise, to be queued.
    fn commit_here(&self, command: Command) -> Option<Command> {
        if !self.inline
            || self.callers.load(Ordering::SeqCst) != 1
            || self.waiting.load(Ordering::SeqCst) != 0
            || !self.lone.load(Ordering::SeqCst)
        {
            return Some(command);
        }
        let Some(writer) = self.writer.upgrade() else {
            return Some(command);
        };
        let Ok(mut writer) = writer.try_lock() else {
            return Some(command);
        };
        if writer.stopped {
            return Some(command);
        }
        writer.process(vec![command]);
        None
    }

    /// Queues `command` for the thread, counted in [`Ledger::waiting`] until
    /// the thread has answered it.
    async fn send(&self, command: Command) -> Result<(), LedgerError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let sent = self.commands.send(command).await;
        if sent.is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        sent.map_err(|_| LedgerError::Stopped)
    }

    /// Returns a value read from the store once the commit that wrote it is
    /// durable: readers never see a write a crash could still take back.
    pub async fn durable<T>(&self, read: Versioned<T>) -> Result<T, LedgerError> {
        self.durability().reached(read.commit).await?;
        Ok(read.value)
    }

    /// Completes with `true` when a commit fails in a way that leaves the
    /// store unusable until restart, so the server can stop reporting itself
    /// healthy; with `false` when the ledger stops normally first.
    pub async fn failed(&self) -> bool {
        let mut durable = self.durable.clone();
        durable.wait_for(|d| *d == Durability::Failed).await.is_ok()
    }

    /// Finishes the queued requests, stops the thread and waits for it.
    pub async fn stop(&self) {
        // If the queue is closed the thread has already ended.
        let _ = self.send(Command::Stop).await;
        let worker = self.worker.lock().map(|mut w| w.take()).unwrap_or_default();
        if let Some(worker) = worker {
            let joined = tokio::task::spawn_blocking(move || worker.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the ledger thread panicked");
            }
        }
    }
}

/// Counts a caller of [`Ledger::ask`] while it waits, also one whose future
/// is dropped.
struct Caller<'a>(&'a AtomicUsize);

impl<'a> Caller<'a> {
    fn new(callers: &'a AtomicUsize) -> Self {
        callers.fetch_add(1, Ordering::SeqCst);
        Caller(callers)
    }
}

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The audit records of reads, waiting for the commit that carries them.
/// They bypass the command queue: a read answered without a write wakes
/// nobody, and the ledger takes all of them with its next batch.
struct ReadRecords {
    events: Mutex<Vec<audit::Event>>,
    /// One permit per record that may wait, [`QUEUE_MAX`] in all; a record
    /// gives its permit back once committed, so at most that many answered
    /// reads are not yet durable. Closed when the ledger stops.
    room: Semaphore,
}

impl ReadRecords {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<audit::Event>> {
        // A push cannot leave the list half made: a poisoned lock still
        // holds whole records.
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn take(&self) -> Vec<audit::Event> {
        std::mem::take(&mut *self.lock())
    }
}

/// The answer to [`Ledger::submit_persons`], once its commit is durable.
pub struct PersonsAnswer(oneshot::Receiver<Result<Vec<PutOutcome>, LedgerError>>);

impl PersonsAnswer {
    /// What each record did, in the order given.
    pub async fn outcomes(self) -> Result<Vec<PutOutcome>, LedgerError> {
        self.0.await.map_err(|_| LedgerError::Stopped)?
    }
}

/// How far commits are durable, as the ledger publishes it.
#[derive(Clone)]
pub struct DurableView(watch::Receiver<Durability>);

impl DurableView {
    /// Completes once `commit` is durable, or fails if commits failed, the
    /// ledger stopped, or the disk takes too long.
    pub async fn reached(&self, commit: CommitNumber) -> Result<(), LedgerError> {
        let covered = |durability: &Durability| match durability {
            Durability::UpTo(done) => *done >= commit,
            Durability::Failed => true,
        };
        let mut durable = self.0.clone();
        let reached = tokio::time::timeout(DURABLE_WAIT_MAX, durable.wait_for(covered)).await;
        match reached.map(|state| state.map(|s| *s)) {
            Ok(Ok(Durability::UpTo(_))) => Ok(()),
            Ok(Ok(Durability::Failed)) => Err(StoreError::Poisoned(
                "a commit failed before this read was durable".into(),
            )
            .into()),
            Ok(Err(_)) => Err(LedgerError::Stopped),
            Err(_) => Err(StoreError::Io("timed out waiting for the disk".into()).into()),
        }
    }
}

/// The thread's side: owns the commit counter, the settlement numbers, and
/// a cache of running totals.
struct Writer {
    store: Arc<dyn Store>,
    /// Other instances write the store too: totals are read, locked, in
    /// each batch's transaction, never cached.
    shared: bool,
    meta: Meta,
    durable: watch::Sender<Durability>,
    metrics: Arc<Metrics>,
    /// Told of every committed roster write, so its readers never go stale.
    roster: Arc<RosterCache>,
    /// What each commit is stamped with.
    clock: Arc<dyn Clock>,
    /// The fund's zone, which fixes each commit's business day.
    offset: UtcOffset,
    /// Running totals as committed. The ledger is the only writer, so the
    /// cache cannot go stale; it saves a read of the store per settlement.
    usages: HashMap<PatientYearKey, Usage>,
    /// The audit chain as committed: each batch seals its records after it.
    chain: Head,
    /// A commit to a shared store failed without saying whether it held
    /// (the connection broke at the COMMIT): its records may be stored, so
    /// the next batch starts a new chain rather than seal them again.
    chain_unsure: bool,
    /// Records of reads, taken by each batch.
    reads: Arc<ReadRecords>,
    /// The ledger was asked to stop: nothing more is committed.
    stopped: bool,
}

/// Most running totals the ledger keeps in memory (about 100 bytes each);
/// past it the cache is emptied and refills from the store.
const USAGE_CACHE_MAX: usize = 200_000;

/// A patient-year as a plain value: the 18 bytes of the resident ID and the
/// year, so looking one up allocates nothing.
type PatientYearKey = ([u8; 18], Year);

fn patient_year_key(patient: &ResidentId, year: Year) -> PatientYearKey {
    let mut id = [0u8; 18];
    // A ResidentId is always 18 ASCII characters.
    id.copy_from_slice(&patient.as_str().as_bytes()[..18]);
    (id, year)
}

/// The ledger thread: takes the queue in batches and commits each under the
/// writer's lock.
struct Thread {
    writer: Arc<Mutex<Writer>>,
    /// See [`Ledger::waiting`]; lowered once a batch is answered.
    waiting: Arc<AtomicUsize>,
    /// See [`Ledger::lone`]; set by each batch.
    lone: Arc<AtomicBool>,
    reads: Arc<ReadRecords>,
}

impl Thread {
    /// Takes the queue in batches until asked to stop. Records of reads
    /// alone do not start a commit: they wait for a write, a barrier or a
    /// stop, until [`BATCH_MAX`] of them wait, or until the first has waited
    /// [`READ_HOLD`], so a stream of reads costs one commit (one sync) per
    /// hold instead of one per few reads.
    fn run(self, mut queue: mpsc::Receiver<Command>) {
        // The wait with a deadline needs a timer; the commits stay on this
        // thread, outside the runtime.
        let timer = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(timer) => timer,
            Err(error) => {
                tracing::error!(%error, "the ledger cannot start its timer; serving stops");
                self.fail();
                self.reads.room.close();
                return;
            }
        };
        let mut hold_until: Option<tokio::time::Instant> = None;
        let mut stopping = false;
        while !stopping {
            let next = match hold_until {
                None => Ok(queue.blocking_recv()),
                // The timeout is made inside the runtime, whose timer it needs.
                Some(deadline) => {
                    timer.block_on(async { tokio::time::timeout_at(deadline, queue.recv()).await })
                }
            };
            let first = match next {
                Ok(Some(first)) => first,
                // The hold is over, or every handle is gone.
                Ok(None) | Err(_) => {
                    self.batch(Vec::new());
                    hold_until = None;
                    stopping = next.is_ok();
                    continue;
                }
            };
            let mut weight = first.weight();
            let mut commands = vec![first];
            while weight < BATCH_MAX {
                match queue.try_recv() {
                    Ok(command) => {
                        weight += command.weight();
                        commands.push(command);
                    }
                    Err(_) => break,
                }
            }
            if commands.iter().all(|c| matches!(c, Command::Reads)) && self.reads.len() < BATCH_MAX
            {
                hold_until.get_or_insert_with(|| tokio::time::Instant::now() + READ_HOLD);
                continue;
            }
            stopping = self.batch(commands);
            hold_until = None;
        }
        self.reads.room.close();
    }

    /// Commits `commands` under the writer's lock, then lowers the count of
    /// waiting commands by those it answered. Returns true when the ledger
    /// stops. A writer whose lock a panic poisoned may be half way through a
    /// batch: nothing more is committed.
    fn batch(&self, commands: Vec<Command>) -> bool {
        let answered = commands.iter().filter(|c| c.counted()).count();
        let stopping = match self.writer.lock() {
            Ok(mut writer) => {
                let stopping = writer.process(commands);
                writer.stopped |= stopping;
                stopping
            }
            Err(poisoned) => {
                drop(poisoned);
                tracing::error!("a commit panicked; serving stops");
                self.fail();
                true
            }
        };
        self.lone.store(answered <= 1, Ordering::SeqCst);
        self.waiting.fetch_sub(answered, Ordering::SeqCst);
        stopping
    }

    /// Commits nothing more, and says so to readers and the health check.
    fn fail(&self) {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writer.durable.send_replace(Durability::Failed);
        writer.stopped = true;
    }
}

impl Writer {
    /// Applies a batch of commands in order, commits, answers. Answers that
    /// rest only on data already committed (replays, conflicts, unknown
    /// keys, failures) leave at once; the rest after the commit. A batch
    /// that a shared store undid because another instance wrote the same
    /// records is run again, up to [`TRIES_MAX`] times. Returns true when
    /// asked to stop.
    fn process(&mut self, commands: Vec<Command>) -> bool {
        let stopping = commands.iter().any(|c| matches!(c, Command::Stop));
        let mut open: Vec<Option<Command>> = commands
            .into_iter()
            .filter(|c| !matches!(c, Command::Stop | Command::Reads))
            .map(Some)
            .collect();
        let reads = self.reads.take();
        if open.is_empty() && reads.is_empty() {
            return stopping;
        }
        // Whatever the commit's fate, these records no longer wait.
        let _room = RoomBack(Arc::clone(&self.reads), reads.len());
        let mut tries = 1;
        loop {
            let (waiting, committed) = self.attempt(&mut open, &reads);
            if let Err(StoreError::Contended(why)) = &committed
                && tries < TRIES_MAX
            {
                tracing::debug!(tries, %why, "batch undone by a concurrent writer; running it again");
                self.metrics.batch_retried();
                tries += 1;
                continue;
            }
            for (i, reply) in waiting {
                let failed = committed.clone().map_err(LedgerError::from);
                match (open[i].take(), reply) {
                    (
                        Some(
                            Command::Settle { reply, .. }
                            | Command::Change { reply, .. }
                            | Command::TopUp { reply, .. },
                        ),
                        Reply::Recorded(result),
                    ) => drop(reply.send(failed.and(result))),
                    (Some(Command::PutPerson { reply, .. }), Reply::Done) => {
                        drop(reply.send(failed))
                    }
                    (Some(Command::Barrier { reply }), Reply::Done) => drop(reply.send(failed)),
                    (Some(Command::PutPersons { reply, .. }), Reply::Persons(outcomes)) => {
                        drop(reply.send(failed.map(|()| outcomes)))
                    }
                    (
                        Some(
                            Command::Settle { reply, .. }
                            | Command::Change { reply, .. }
                            | Command::TopUp { reply, .. },
                        ),
                        Reply::Failed(error),
                    ) => drop(reply.send(failed.and(Err(error)))),
                    (Some(Command::PutPersons { reply, .. }), Reply::Failed(error)) => {
                        drop(reply.send(failed.and(Err(error))))
                    }
                    (Some(Command::PutPerson { reply, .. }), Reply::Failed(error)) => {
                        drop(reply.send(failed.and(Err(error))))
                    }
                    _ => unreachable!("each waiting reply matches its command"),
                }
            }
            return stopping;
        }
    }

    /// One run of the open commands: answers at once what rests on
    /// committed data (taking those commands out), commits the rest, and
    /// returns what they wait to be told with the commit's result.
    fn attempt(
        &mut self,
        commands: &mut [Option<Command>],
        reads: &[audit::Event],
    ) -> (Vec<(usize, Reply)>, Result<(), StoreError>) {
        let now = self.clock.now();
        let stamp = Stamp {
            at: now,
            day: BusinessDay::of(now, self.offset),
        };
        let plan = match self.shared {
            true => plan_of(commands),
            false => Plan::default(),
        };
        let store = Arc::clone(&self.store);
        let started = match self.chain_unsure {
            true => store.audit_head().map(|head| {
                self.chain = head;
                self.chain_unsure = false;
            }),
            false => Ok(()),
        };
        let access = match started.and_then(|()| store.begin(&plan)) {
            Ok(Some(txn)) => Access::Shared(txn),
            Ok(None) => Access::Direct(store.as_ref()),
            Err(error) => {
                let waiting = commands
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.as_ref().map(|c| (i, Reply::failed(c))))
                    .collect();
                return (waiting, Err(error));
            }
        };
        let mut pending = Pending::new(access, &self.usages, self.meta, stamp);
        pending.events.extend(reads.iter().cloned());
        let mut waiting = Vec::with_capacity(commands.len());
        for (i, slot) in commands.iter_mut().enumerate() {
            let answer = match slot.as_ref() {
                None | Some(Command::Stop | Command::Reads) => continue,
                Some(Command::Barrier { .. }) => {
                    waiting.push((i, Reply::Done));
                    continue;
                }
                Some(Command::Settle {
                    claim,
                    assessing,
                    application,
                    by,
                    ..
                }) => pending.settle(claim, assessing, application.as_deref(), by),
                Some(Command::Change {
                    key, change, by, ..
                }) => pending.change(key, change, by),
                Some(Command::TopUp {
                    window,
                    assessing,
                    application,
                    by,
                    ..
                }) => pending.top_up(window, assessing, application, by),
                Some(Command::PutPerson { person, by, .. }) => {
                    match pending.put_person_audited(Person::clone(person), by) {
                        Ok(()) => waiting.push((i, Reply::Done)),
                        Err(error) => waiting.push((i, Reply::Failed(error.into()))),
                    }
                    continue;
                }
                Some(Command::PutPersons { persons, by, .. }) => {
                    match pending.put_persons(persons, by) {
                        Ok(outcomes) => waiting.push((i, Reply::Persons(outcomes))),
                        // Undone by another instance: the whole batch runs again.
                        Err(error @ StoreError::Contended(_)) => {
                            waiting.push((i, Reply::Failed(error.into())))
                        }
                        Err(error) => {
                            if let Some(Command::PutPersons { reply, .. }) = slot.take() {
                                drop(reply.send(Err(error.into())));
                            }
                        }
                    }
                    continue;
                }
            };
            match answer {
                Answer::AfterCommit(result) => waiting.push((i, Reply::Recorded(result))),
                // A read undone by another instance ended the transaction:
                // the commit fails the same way and the batch runs again.
                Answer::Now(Err(LedgerError::Store(error @ StoreError::Contended(_)))) => {
                    waiting.push((i, Reply::Failed(error.into())))
                }
                // A caller that gave up has dropped its receiver; a retry
                // will be answered the same way.
                Answer::Now(result) => {
                    if let Some(
                        Command::Settle { reply, .. }
                        | Command::Change { reply, .. }
                        | Command::TopUp { reply, .. },
                    ) = slot.take()
                    {
                        drop(reply.send(result));
                    }
                }
            }
        }
        let usages = std::mem::take(&mut pending.usages);
        let Pending {
            access,
            mut batch,
            events,
            ..
        } = pending;
        // Sealed in the order the batch took them; the chain moves on only
        // if the commit holds.
        let mut chain = self.chain;
        batch.audit = events.into_iter().map(|event| chain.seal(event)).collect();
        let committed = self.commit(access, &batch, waiting.len());
        if let Err(StoreError::Io(_)) = &committed
            && self.shared
            && !batch.audit.is_empty()
        {
            self.chain_unsure = true;
        }
        if committed.is_ok() {
            self.chain = chain;
            if !self.shared {
                self.remember(&batch, usages);
            }
            if !batch.persons.is_empty() {
                self.roster.committed(&batch.persons);
            }
        }
        (waiting, committed)
    }

    /// Keeps the totals a commit made durable.
    fn remember(&mut self, batch: &Batch, keys: HashMap<PatientYearKey, usize>) {
        if self.usages.len() + keys.len() > USAGE_CACHE_MAX {
            self.usages.clear();
        }
        for (key, i) in keys {
            self.usages.insert(key, batch.usages[i].2);
        }
    }

    fn commit(
        &mut self,
        mut access: Access<'_>,
        batch: &Batch,
        requests: usize,
    ) -> Result<(), StoreError> {
        // A shared store's transaction is ended even when it wrote nothing.
        if let Access::Direct(_) = access
            && batch.is_empty()
        {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let applied = match (&mut access, batch.is_empty()) {
            (_, true) => Ok(()),
            (Access::Direct(store), false) => store.apply(batch),
            (Access::Shared(txn), false) => txn.apply(batch),
        };
        self.metrics.applied(started.elapsed().as_secs_f64());
        let flushing = std::time::Instant::now();
        // Everything this batch answers waits for this: the journal's
        // fdatasync, or the COMMIT's WAL flush (synchronous_commit on).
        let result = applied.and_then(|()| match access {
            Access::Direct(store) => store.flush(),
            Access::Shared(txn) => txn.commit(),
        });
        self.metrics
            .flushed(flushing.elapsed().as_secs_f64(), requests);
        match &result {
            Ok(()) => {
                self.meta = Meta {
                    last_commit: batch.commit,
                    next_settlement_id: batch.next_settlement_id,
                };
                self.durable.send_replace(Durability::UpTo(batch.commit));
                tracing::trace!(
                    commit = batch.commit,
                    settlements = batch.settlements.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "committed"
                );
            }
            Err(error) => {
                // A failure that changed nothing leaves the durable point where
                // it was; one that may have changed the store ends serving.
                match error {
                    StoreError::Poisoned(_) => {
                        self.durable.send_replace(Durability::Failed);
                        tracing::error!(commit = batch.commit, %error, "commit failed");
                    }
                    // Run again by the caller.
                    StoreError::Contended(_) => {}
                    _ => tracing::error!(commit = batch.commit, %error, "commit failed"),
                }
            }
        }
        result
    }
}

/// Gives back the room of the read records a batch took, when it is done.
struct RoomBack(Arc<ReadRecords>, usize);

impl Drop for RoomBack {
    fn drop(&mut self) {
        self.0.room.add_permits(self.1);
    }
}

/// The moment a batch is stamped with, and its business day.
#[derive(Clone, Copy)]
struct Stamp {
    at: Timestamp,
    day: BusinessDay,
}

/// What a command's answer rests on.
enum Answer {
    /// Data already durable (or nothing at all): answer at once.
    Now(Result<Recorded, LedgerError>),
    /// A write of this batch: answer once it is committed.
    AfterCommit(Result<Recorded, LedgerError>),
}

/// How a batch reads and commits.
enum Access<'a> {
    /// A store only this process writes: read directly, committed with
    /// `apply` and `flush`.
    Direct(&'a dyn Store),
    /// A shared store: read and committed in one transaction.
    Shared(Box<dyn Txn + 'a>),
}

/// The answer a command waits for until its batch is committed.
#[allow(
    clippy::large_enum_variant,
    reason = "the large variant is the common one; boxing would only add an allocation"
)]
enum Reply {
    Recorded(Result<Recorded, LedgerError>),
    Done,
    Persons(Vec<PutOutcome>),
    /// A failure the commit's own result decides (a contended read).
    Failed(LedgerError),
}

impl Reply {
    /// The reply of a command whose batch could not start (the commit's
    /// error replaces it).
    fn failed(command: &Command) -> Reply {
        match command {
            Command::PutPerson { .. } | Command::Barrier { .. } | Command::Stop => Reply::Done,
            Command::Reads => unreachable!("the ledger's wake-up waits for no reply"),
            Command::PutPersons { .. } => Reply::Persons(Vec::new()),
            Command::Settle { .. } | Command::Change { .. } | Command::TopUp { .. } => {
                Reply::Recorded(Err(LedgerError::Stopped))
            }
        }
    }
}

/// What the open commands will read, for a shared store to lock up front.
fn plan_of(commands: &[Option<Command>]) -> Plan {
    let mut plan = Plan::default();
    for command in commands.iter().flatten() {
        match command {
            Command::Settle {
                claim, assessing, ..
            } => {
                if let Assessing::InBatch(_) = assessing {
                    plan.roster.push(claim.patient_id().clone());
                }
                plan.claims.push(claim.key().clone());
                plan.patient_years
                    .push((claim.patient_id().clone(), claim.year()));
                plan.new_settlements += 1;
            }
            Command::Change { key, .. } => plan.claims.push(key.clone()),
            Command::TopUp {
                window,
                patient_year,
                assessing,
                ..
            } => {
                if let Assessing::InBatch(_) = assessing {
                    plan.roster.push(patient_year.0.clone());
                }
                plan.claims.push(window.clone());
                plan.patient_years.push(patient_year.clone());
                plan.new_settlements += 1;
            }
            Command::PutPersons { persons, .. } => {
                plan.persons.extend(persons.iter().map(|p| p.id().clone()))
            }
            Command::PutPerson { .. }
            | Command::Barrier { .. }
            | Command::Stop
            | Command::Reads => {}
        }
    }
    plan
}

/// One batch being built: the writes so far and the state they lead to.
struct Pending<'a, 's> {
    access: Access<'s>,
    /// Totals as committed before this batch.
    committed: &'a HashMap<PatientYearKey, Usage>,
    batch: Batch,
    now: Stamp,
    /// Settlements written in this batch, by claim key (index into `batch.settlements`).
    written: HashMap<ClaimKey, usize>,
    /// Running totals changed in this batch (index into `batch.usages`).
    usages: HashMap<PatientYearKey, usize>,
    /// Roster records written in this batch (index into `batch.persons`).
    persons: HashMap<ResidentId, usize>,
    /// Audit events of this batch, in order: sealed when it is committed.
    events: Vec<audit::Event>,
}

impl<'a, 's> Pending<'a, 's> {
    fn new(
        access: Access<'s>,
        committed: &'a HashMap<PatientYearKey, Usage>,
        meta: Meta,
        now: Stamp,
    ) -> Self {
        Pending {
            access,
            committed,
            batch: Batch::after(meta),
            now,
            written: HashMap::new(),
            usages: HashMap::new(),
            persons: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// The audit event of a write of this batch.
    fn audited(&mut self, by: &Origin, subject: Subject, detail: String) {
        let event = by.event(self.now.at, Phase::Call, subject, None, "OK", detail);
        self.events.push(event);
    }

    /// The settlement under `key` as this batch leaves it, and whether it was
    /// written in this batch.
    fn find(&mut self, key: &ClaimKey) -> Result<Option<(Settlement, bool)>, StoreError> {
        if let Some(&i) = self.written.get(key) {
            return Ok(Some((self.batch.settlements[i].clone(), true)));
        }
        let found = match &mut self.access {
            Access::Direct(store) => store.settlement_by_claim(key)?.map(|found| found.value),
            Access::Shared(txn) => txn.settlement_by_claim(key)?,
        };
        Ok(found.map(|settlement| (settlement, false)))
    }

    fn usage(&mut self, patient: &ResidentId, year: Year) -> Result<Usage, StoreError> {
        let key = patient_year_key(patient, year);
        if let Some(&i) = self.usages.get(&key) {
            return Ok(self.batch.usages[i].2);
        }
        if let Some(usage) = self.committed.get(&key) {
            return Ok(*usage);
        }
        let stored = match &mut self.access {
            Access::Direct(store) => store.usage(patient, year)?.map(|u| u.value),
            Access::Shared(txn) => txn.usage(patient, year)?,
        };
        Ok(stored.unwrap_or_default())
    }

    fn person(&mut self, id: &ResidentId) -> Result<Option<Person>, StoreError> {
        match &mut self.access {
            Access::Direct(store) => Ok(store.person(id)?.map(|read| read.value)),
            Access::Shared(txn) => txn.person(id),
        }
    }

    /// A roster record as this batch leaves it.
    fn roster_record(&mut self, id: &ResidentId) -> Result<Option<Person>, StoreError> {
        match self.persons.get(id) {
            Some(&i) => Ok(Some(self.batch.persons[i].clone())),
            None => self.person(id),
        }
    }

    /// The number of a new settlement: the next in commit order on a store
    /// of one writer, one the shared store hands out otherwise.
    fn settlement_id(&mut self) -> Result<SettlementId, StoreError> {
        match &mut self.access {
            Access::Direct(_) => {
                let id = self.batch.next_settlement_id;
                self.batch.next_settlement_id = id.next();
                Ok(id)
            }
            Access::Shared(txn) => txn.settlement_id(),
        }
    }

    fn set_usage(&mut self, patient: &ResidentId, year: Year, usage: Usage) {
        let key = patient_year_key(patient, year);
        match self.usages.get(&key) {
            Some(&i) => self.batch.usages[i].2 = usage,
            None => {
                self.usages.insert(key, self.batch.usages.len());
                self.batch.usages.push((patient.clone(), year, usage));
            }
        }
    }

    fn write(&mut self, settlement: Settlement) {
        match self.written.get(settlement.claim.key()) {
            Some(&i) => self.batch.settlements[i] = settlement,
            None => {
                self.written
                    .insert(settlement.claim.key().clone(), self.batch.settlements.len());
                self.batch.settlements.push(settlement);
            }
        }
    }

    /// Writes a roster record; a later write of the same person in this
    /// batch replaces it, so the batch holds each person once.
    fn put_person(&mut self, person: Person) {
        match self.persons.get(person.id()) {
            Some(&i) => self.batch.persons[i] = person,
            None => {
                self.persons
                    .insert(person.id().clone(), self.batch.persons.len());
                self.batch.persons.push(person);
            }
        }
    }

    /// Writes one roster record (an upsert), with the audit record of what
    /// it changed.
    fn put_person_audited(&mut self, person: Person, by: &Origin) -> Result<(), StoreError> {
        let before = self.roster_record(person.id())?;
        let detail = person.changes_from(before.as_ref());
        self.audited(by, Subject::Patient(person.id().clone()), detail);
        self.put_person(person);
        Ok(())
    }

    /// Writes the records that differ from what is stored (or written
    /// earlier in this batch) and says what each did, with an audit record
    /// of each one created or changed. Every read comes first, so a failed
    /// read writes nothing.
    fn put_persons(
        &mut self,
        persons: &[Person],
        by: &Origin,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        let mut stored = Vec::with_capacity(persons.len());
        for person in persons {
            stored.push(match self.persons.contains_key(person.id()) {
                true => None,
                false => self.person(person.id())?,
            });
        }
        let mut outcomes = Vec::with_capacity(persons.len());
        for (person, stored) in persons.iter().zip(stored) {
            let before = match self.persons.get(person.id()) {
                Some(&i) => Some(&self.batch.persons[i]),
                None => stored.as_ref(),
            };
            let outcome = match before {
                None => PutOutcome::Created,
                Some(before) if before == person => PutOutcome::Unchanged,
                Some(_) => PutOutcome::Updated,
            };
            if outcome != PutOutcome::Unchanged {
                let detail = person.changes_from(before);
                self.audited(by, Subject::Patient(person.id().clone()), detail);
                self.put_person(person.clone());
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// An answer about an existing settlement: at once if it is durable,
    /// after the commit if this batch wrote it (a replay of, or a conflict
    /// with, a write that a failed commit would undo).
    fn about(in_batch: bool, result: Result<Recorded, LedgerError>) -> Answer {
        if in_batch {
            Answer::AfterCommit(result)
        } else {
            Answer::Now(result)
        }
    }

    fn settle(
        &mut self,
        claim: &Claim,
        assessing: &Assessing,
        application: Option<&Application>,
        by: &Origin,
    ) -> Answer {
        // A retry of the same request: the same claim, by the same channel
        // (an application: with the same documents, by the same principal).
        let same = |existing: &Settlement| {
            existing.claim == *claim
                && match (&existing.application, application) {
                    (None, None) => true,
                    (Some(was), Some(now)) => {
                        was.documents == now.documents && was.submitted_by == now.submitted_by
                    }
                    _ => false,
                }
        };
        match self.find(claim.key()) {
            Err(error) => Answer::Now(Err(error.into())),
            Ok(Some((existing, in_batch))) if same(&existing) => Pending::about(
                in_batch,
                Ok(Recorded {
                    settlement: existing,
                    replayed: true,
                }),
            ),
            Ok(Some((existing, in_batch))) => {
                Pending::about(in_batch, Err(LedgerError::Conflict(Box::new(existing))))
            }
            Ok(None) => match self.record(claim, assessing, application, by) {
                Ok(recorded) => Answer::AfterCommit(Ok(recorded)),
                Err(error) => Answer::Now(Err(error)),
            },
        }
    }

    fn record(
        &mut self,
        claim: &Claim,
        assessing: &Assessing,
        application: Option<&Application>,
        by: &Origin,
    ) -> Result<Recorded, LedgerError> {
        let (patient, year) = (claim.patient_id().clone(), claim.year());
        let assessed;
        let assessment = match assessing {
            Assessing::Done(assessment) => assessment,
            Assessing::InBatch(book) => {
                let person = self.roster_record(&patient)?;
                assessed = rules::assess_under(book, claim, person.as_ref())
                    .map_err(LedgerError::NoPolicy)?;
                &assessed
            }
        };
        let usage = self.usage(&patient, year)?;
        let outcome = rules::apply_year(claim, assessment, &usage);
        let charged = usage.charge(&outcome).ok_or_else(|| {
            StoreError::Corrupt(format!("running total of {patient} in {year} overflows"))
        })?;
        // Decided once, here, on the year as this commit leaves it.
        let referral = rules::referral(assessment.cap.as_ref(), &outcome, charged.patient_pays);
        let settlement = Settlement {
            id: self.settlement_id()?,
            claim: claim.clone(),
            outcome,
            settled_at: self.now.at,
            settled_day: self.now.day,
            settled_by: by.name.clone(),
            referral,
            reversal: None,
            application: application.cloned(),
            superseded_by: None,
        };
        self.set_usage(&patient, year, charged);
        let detail = format!(
            "{} {}: assistance {}{}",
            match application {
                None => "settlement",
                Some(_) => "application",
            },
            settlement.id,
            settlement.outcome.assistance,
            if settlement.outcome.capped {
                ", capped"
            } else {
                ""
            }
        );
        self.audited(
            by,
            Subject::Claim(claim.key().clone(), Some(patient)),
            detail,
        );
        self.write(settlement.clone());
        Ok(Recorded {
            settlement,
            replayed: false,
        })
    }

    fn change(&mut self, key: &ClaimKey, change: &Change, by: &Origin) -> Answer {
        let (settlement, in_batch) = match self.find(key) {
            Err(error) => return Answer::Now(Err(error.into())),
            Ok(None) => return Answer::Now(Err(LedgerError::NotFound)),
            Ok(Some(found)) => found,
        };
        let id = settlement.id;
        let replay = |settlement| {
            Pending::about(
                in_batch,
                Ok(Recorded {
                    settlement,
                    replayed: true,
                }),
            )
        };
        let refused = |why: String| Answer::Now(Err(LedgerError::Refused(why)));
        let state = settlement.application_state();
        match (change, state) {
            (Change::Reverse(_), None) if settlement.reversal.is_some() => replay(settlement),
            (Change::Reverse(_), None) if settlement.superseded_by.is_some() => refused(format!(
                "settlement {id} is topped up by application {}: withdraw or reject the \
                 application first",
                settlement
                    .superseded_by
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )),
            (Change::Reverse(reason), None) => self.give_back(settlement, reason, None, by),
            (Change::Reverse(_), Some(_)) => refused(format!(
                "settlement {id} is an application (依申请救助), not a window settlement: a \
                 caseworker withdraws it, or a reviewer rejects it"
            )),
            (_, None) => refused(format!(
                "settlement {id} was settled at the window, not on application"
            )),
            (Change::Approve(_) | Change::Reject(_), Some(_))
                if settlement
                    .application
                    .as_ref()
                    .is_some_and(|a| a.submitted_by == by.principal) =>
            {
                Answer::Now(Err(LedgerError::SameHands(id)))
            }
            (Change::Approve(payment), Some(ApplicationState::Approved)) => {
                let approval = settlement
                    .application
                    .as_ref()
                    .and_then(|a| a.approval.as_ref());
                match approval {
                    Some(approval) if approval.payment_ref == *payment => replay(settlement),
                    _ => refused(format!(
                        "application {id} is already approved under another payment reference"
                    )),
                }
            }
            (Change::Reject(_), Some(ApplicationState::Rejected))
            | (Change::Withdraw(_), Some(ApplicationState::Withdrawn)) => replay(settlement),
            (
                _,
                Some(
                    state @ (ApplicationState::Approved
                    | ApplicationState::Rejected
                    | ApplicationState::Withdrawn),
                ),
            ) => refused(format!("application {id} is already {}", state.as_str())),
            (Change::Approve(payment), Some(ApplicationState::Pending)) => {
                self.approve(settlement, payment, by)
            }
            (Change::Reject(reason), Some(ApplicationState::Pending)) => {
                self.give_back(settlement, reason, Some(Closing::Rejected), by)
            }
            (Change::Withdraw(reason), Some(ApplicationState::Pending)) => {
                self.give_back(settlement, reason, Some(Closing::Withdrawn), by)
            }
        }
    }

    /// For a top-up application given back: the window settlement it stood
    /// in for counts again, in `usage` and on its record.
    fn restore_window(
        &mut self,
        settlement: &Settlement,
        usage: Usage,
    ) -> Result<Usage, StoreError> {
        let Some(top_up) = settlement
            .application
            .as_ref()
            .and_then(|a| a.top_up.as_ref())
        else {
            return Ok(usage);
        };
        let damaged = |what: &str| {
            StoreError::Corrupt(format!(
                "application {} tops up settlement {}, which {what}",
                settlement.id, top_up.settlement_id
            ))
        };
        let (mut window, _) = self
            .find(&top_up.key)?
            .ok_or_else(|| damaged("is missing"))?;
        if window.superseded_by != Some(settlement.id) {
            return Err(damaged("does not name it"));
        }
        let usage = usage
            .charge(&window.outcome)
            .ok_or_else(|| damaged("overflows the running total"))?;
        window.superseded_by = None;
        self.write(window);
        Ok(usage)
    }

    /// Records a top-up application of the window settlement under
    /// `window`: the stay worked out as if settled at discharge on the
    /// roster as it is now, standing in the window settlement's place in
    /// the running total, owing the difference.
    fn top_up(
        &mut self,
        window: &ClaimKey,
        assessing: &Assessing,
        application: &Application,
        by: &Origin,
    ) -> Answer {
        match self.try_top_up(window, assessing, application, by) {
            Ok(answer) => answer,
            Err(error) => Answer::Now(Err(error)),
        }
    }

    fn try_top_up(
        &mut self,
        window_key: &ClaimKey,
        assessing: &Assessing,
        application: &Application,
        by: &Origin,
    ) -> Result<Answer, LedgerError> {
        let (mut window, _) = self.find(window_key)?.ok_or(LedgerError::NotFound)?;
        let id = window.id;
        if window.application.is_some() {
            return Err(LedgerError::Refused(format!(
                "settlement {id} is an application: a top-up pays the rest of a window settlement"
            )));
        }
        if window.reversal.is_some() {
            return Err(LedgerError::Refused(format!(
                "settlement {id} was reversed: there is nothing to top up"
            )));
        }
        if let Some(existing) = window.superseded_by {
            let key = TopUp::key(window_key, id, existing);
            let (earlier, in_batch) = self.find(&key)?.ok_or_else(|| {
                StoreError::Corrupt(format!("settlement {id} names a missing top-up {existing}"))
            })?;
            let same = earlier.application.as_ref().is_some_and(|a| {
                a.documents == application.documents && a.submitted_by == application.submitted_by
            });
            if !same {
                return Err(LedgerError::Refused(format!(
                    "settlement {id} is already topped up by application {existing}"
                )));
            }
            return Ok(Pending::about(
                in_batch,
                Ok(Recorded {
                    settlement: earlier,
                    replayed: true,
                }),
            ));
        }
        let claim = window.claim.clone();
        let (patient, year) = (claim.patient_id().clone(), claim.year());
        let assessed;
        let assessment = match assessing {
            Assessing::Done(assessment) => assessment,
            Assessing::InBatch(book) => {
                let person = self.roster_record(&patient)?;
                assessed = rules::assess_under(book, &claim, person.as_ref())
                    .map_err(LedgerError::NoPolicy)?;
                &assessed
            }
        };
        let corrupt = |what: &str| {
            LedgerError::Store(StoreError::Corrupt(format!(
                "running total of {patient} in {year} {what} settlement {id}"
            )))
        };
        let without = self
            .usage(&patient, year)?
            .refund(&window.outcome)
            .ok_or_else(|| corrupt("does not hold"))?;
        let outcome = rules::apply_year(&claim, assessment, &without);
        if outcome.assistance <= window.outcome.assistance {
            return Err(LedgerError::Refused(format!(
                "settlement {id} would pay {} now, no more than the {} it paid: nothing is owed",
                outcome.assistance, window.outcome.assistance
            )));
        }
        let charged = without
            .charge(&outcome)
            .ok_or_else(|| corrupt("overflows with the top-up of"))?;
        let new_id = self.settlement_id()?;
        let mut application = application.clone();
        application.top_up = Some(TopUp {
            settlement_id: id,
            key: window_key.clone(),
            window_paid: window.outcome.assistance,
        });
        let owed = application.owed(outcome.assistance);
        let settlement = Settlement {
            id: new_id,
            claim: claim.rekeyed(TopUp::key(window_key, id, new_id)),
            outcome,
            settled_at: self.now.at,
            settled_day: self.now.day,
            settled_by: by.name.clone(),
            // The window settlement's referral stands; a top-up is not
            // referred again.
            referral: None,
            reversal: None,
            application: Some(application),
            superseded_by: None,
        };
        window.superseded_by = Some(new_id);
        self.set_usage(&patient, year, charged);
        let detail = format!(
            "application {new_id} tops up settlement {id}: assistance {}, {owed} owed",
            settlement.outcome.assistance
        );
        self.audited(
            by,
            Subject::Claim(window_key.clone(), Some(patient)),
            detail,
        );
        self.write(window);
        self.write(settlement.clone());
        Ok(Answer::AfterCommit(Ok(Recorded {
            settlement,
            replayed: false,
        })))
    }

    /// Records the approval of a pending application: it counts as paid;
    /// the cap already holds its reservation.
    fn approve(&mut self, mut settlement: Settlement, payment: &PaymentRef, by: &Origin) -> Answer {
        if let Some(application) = settlement.application.as_mut() {
            application.approval = Some(Approval {
                at: self.now.at,
                day: self.now.day,
                by: by.name.clone(),
                payment_ref: payment.clone(),
            });
        }
        let detail = format!(
            "application {} approved: assistance {} paid under {}",
            settlement.id,
            settlement.outcome.assistance,
            payment.as_str()
        );
        let patient = settlement.claim.patient_id().clone();
        let key = settlement.claim.key().clone();
        self.audited(by, Subject::Claim(key, Some(patient)), detail);
        self.write(settlement.clone());
        Answer::AfterCommit(Ok(Recorded {
            settlement,
            replayed: false,
        }))
    }

    /// Reverses a window settlement (`closing` `None`), or closes a pending
    /// application without payment: what it charged goes back to its year.
    fn give_back(
        &mut self,
        mut settlement: Settlement,
        reason: &Reason,
        closing: Option<Closing>,
        by: &Origin,
    ) -> Answer {
        let (patient, year) = (
            settlement.claim.patient_id().clone(),
            settlement.claim.year(),
        );
        let refunded = self.usage(&patient, year).and_then(|usage| {
            usage.refund(&settlement.outcome).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "running total of {patient} in {year} does not hold settlement {}",
                    settlement.id
                ))
            })
        });
        let usage = match refunded.and_then(|usage| self.restore_window(&settlement, usage)) {
            Err(error) => return Answer::Now(Err(error.into())),
            Ok(usage) => usage,
        };
        settlement.reversal = Some(Reversal {
            at: self.now.at,
            reason: reason.clone(),
            day: self.now.day,
            by: by.name.clone(),
        });
        if let Some(application) = settlement.application.as_mut() {
            application.closing = closing;
        }
        self.set_usage(&patient, year, usage);
        let detail = match closing {
            None => format!(
                "settlement {} reversed: assistance {} returned",
                settlement.id, settlement.outcome.assistance
            ),
            Some(closing) => format!(
                "application {} {}: reserved assistance {} returned",
                settlement.id,
                match closing {
                    Closing::Rejected => "rejected",
                    Closing::Withdrawn => "withdrawn",
                },
                settlement.outcome.assistance
            ),
        };
        let key = settlement.claim.key().clone();
        self.audited(by, Subject::Claim(key, Some(patient)), detail);
        self.write(settlement.clone());
        Answer::AfterCommit(Ok(Recorded {
            settlement,
            replayed: false,
        }))
    }
}

#[cfg(test)]
mod tests;
