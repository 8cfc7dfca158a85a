//! Opening, rebuilding and closing the embedded store, and the thread that
//! keeps its base copy fresh.
//!
//! What opening does depends on how the store was left (see
//! [`super::super::checkpoint`] and [`super::super::base`]):
//!
//! | checkpoint | base copy | opening |
//! |---|---|---|
//! | clean | whole | mark the store open, then trust sled (it must hold the clean commit); if sled proves damaged, rebuild |
//! | open, or none | whole | rebuild sled from the base and the journal (after a crash, a power cut, or a restore) |
//! | clean, or written before base copies | none, or damaged | trust sled, with no fallback; then write a base at once |
//! | none | none | a new store (or one from before the journal) |
//! | open | none, or damaged | refuse: nothing whole to rebuild from |
//!
//! Damage found while opening sled, a panic inside sled included, is an
//! error, never a crash of the process.

use std::{
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, OnceLock, atomic::AtomicU64},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{
    BEFORE_APPLICATIONS, BEFORE_CLASSES, Core, JOURNAL_DIR, META_COMMIT, META_SCHEMA, NOT_SLEDS,
    RESTORE_BATCH, RESTORE_FLUSH_EVERY, SCHEMA_VERSION, SledOptions, SledStore, check_schema,
    encode, get_u64, io, known_schema, migrate_v1, open_sled, replay_one, stored_schema,
};
use crate::store::{
    CommitNumber, StoreError,
    audit_log::AuditLog,
    base::{self, BaseCopy},
    checkpoint::{self, Checkpoint, sync_dir, sync_tree},
    journal::{self, Journal, Recovered},
    legacy,
    snapshot::{Item, SnapshotSummary, Source},
};

/// How often the base keeper looks at the journal's size.
const BASE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a failed base copy waits before it is tried again.
const BASE_RETRY_MAX: Duration = Duration::from_secs(300);
/// How long closing waits for sled's threads to let go of its files.
const SLED_RELEASE_WAIT: Duration = Duration::from_secs(10);
/// The data directory's lock file.
pub(super) const LOCK_NAME: &str = "lock";

/// The exclusive lock on a data directory, held while a store is open, so
/// two processes never open (or rebuild) one directory together.
pub(super) struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_NAME);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        let deadline = Instant::now() + LOCK_WAIT;
        while !try_lock(&file).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))? {
            if Instant::now() >= deadline {
                return Err(StoreError::Io(format!(
                    "{} is in use by another process (is the service still running?)",
                    dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(DirLock { _file: file })
    }
}

/// How long opening waits for a lock held elsewhere before it refuses. A
/// lock belongs to the open file, and a process that forks shares its open
/// files with the child until the child's `exec` closes them: a store
/// closed while another thread of its process starts a program (the
/// `snapshot restore` or `verify` a tool runs) stays locked for that
/// moment after it closed. A running service holds it for good, and is
/// refused after this wait.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Takes `flock(LOCK_EX)` on `file` without waiting: false when another
/// open file holds it. It is released when the file is closed.
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows for the call.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        return Ok(true);
    }
    match std::io::Error::last_os_error() {
        error if error.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        error => Err(error),
    }
}

/// Waits until every file of a closed sled tree in `dir` is closed: sled
/// locks `db` with `flock` and its last background task closes it a moment
/// after the tree is dropped. Until then a task of the old tree could still
/// write, so nothing may sync, rebuild or reopen it. False when it did not
/// happen within [`SLED_RELEASE_WAIT`].
pub(super) fn await_sled_released(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join("db")) else {
        return true;
    };
    let deadline = Instant::now() + SLED_RELEASE_WAIT;
    loop {
        match try_lock(&file) {
            Ok(true) | Err(_) => return true,
            Ok(false) if Instant::now() >= deadline => return false,
            Ok(false) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// What an open store holds from the start: its directory's lock and its
/// audit trail.
struct Held {
    audit: AuditLog,
    _lock: DirLock,
}

/// A sled tree opened, and the last commit it holds.
struct Opened {
    db: sled::Db,
    last: CommitNumber,
}

/// How the base copy stands after opening: whole (at which commit), or to
/// be written before serving.
enum BaseState {
    Whole(BaseCopy),
    Rewrite(&'static str),
}

/// Opens (or creates) the store in `dir`, as the table of the module says.
/// A panic anywhere in it (sled's, on damaged files) is damage, reported as
/// every other refusal is.
pub(super) fn open(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
    crate::store::catch_damage(|| open_unguarded(dir, options)).unwrap_or_else(|panic| {
        Err(StoreError::Corrupt(format!(
            "opening {} failed inside the store ({panic}): its files are damaged; restore \
             the last snapshot (medassist snapshot restore) and run medassist verify",
            dir.display()
        )))
    })
}

fn open_unguarded(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
    super::create_data_dir(dir)?;
    let lock = DirLock::acquire(dir)?;
    // With the directory ours, sled's own lock on `db` can still be held
    // for a moment by a child forked before it was closed (see LOCK_WAIT).
    await_sled_released(dir);
    let journal_dir = dir.join(JOURNAL_DIR);
    let recovered = journal::recover(&journal_dir)?;
    let found = checkpoint::read(dir)?;
    // After a clean stop the trail's files were synced whole; otherwise
    // what follows their last sync comes back from the journal.
    let clean = matches!(found, Some(Checkpoint::Clean(_)));
    let held = Held {
        audit: AuditLog::open(dir, !clean)?,
        _lock: lock,
    };
    let copy = base::check(dir);
    let mut marked_open = false;
    let (opened, base) = match (found, copy) {
        (Some(Checkpoint::Clean(commit)), Ok(Some(copy))) => {
            // From here a power cut leaves sled's files untrusted.
            checkpoint::write(dir, Checkpoint::Open(commit))?;
            marked_open = true;
            let opened = match trusted(dir, options, commit, &journal_dir, &recovered) {
                Err(StoreError::Corrupt(why)) => {
                    tracing::warn!(%why, "sled's files are damaged: rebuilding them from the base copy and the journal");
                    if !await_sled_released(dir) {
                        return Err(StoreError::Io(
                            "sled did not close its damaged files; restart the service".into(),
                        ));
                    }
                    rebuild(dir, options, &journal_dir, &recovered)?
                }
                other => other?,
            };
            (opened, BaseState::Whole(copy))
        }
        (Some(Checkpoint::Open(_) | Checkpoint::Legacy(_)) | None, Ok(Some(copy))) => {
            tracing::info!(
                base_commit = copy.last_commit,
                "the store was not closed cleanly: rebuilding sled from the base copy and the journal"
            );
            (
                rebuild(dir, options, &journal_dir, &recovered)?,
                BaseState::Whole(copy),
            )
        }
        (Some(Checkpoint::Clean(commit) | Checkpoint::Legacy(commit)), copy) => {
            let why = match copy {
                Ok(_) => "the store has no base copy yet",
                Err(error) => {
                    tracing::error!(%error, "the base copy is damaged: writing a new one from sled");
                    "the base copy was damaged"
                }
            };
            let opened = trusted(dir, options, commit, &journal_dir, &recovered)
                .map_err(|error| refuse_untrusted(dir, error))?;
            (opened, BaseState::Rewrite(why))
        }
        (None, Ok(None)) => (
            new_or_older(dir, options, &journal_dir, &recovered)?,
            BaseState::Rewrite("the store has no base copy yet"),
        ),
        (Some(Checkpoint::Open(_)), Ok(None)) => {
            return Err(StoreError::Corrupt(format!(
                "{} was not closed cleanly and has no base copy to rebuild from: restore \
                 the last snapshot (medassist snapshot restore) and run medassist verify",
                dir.display()
            )));
        }
        (Some(Checkpoint::Open(_)) | None, Err(damage)) => {
            return Err(StoreError::Corrupt(format!(
                "{} was not closed cleanly and its base copy is damaged, so it cannot be \
                 rebuilt ({damage}): restore the last snapshot and run medassist verify",
                dir.display()
            )));
        }
    };
    finish_open(dir, options, held, opened, base, &recovered, marked_open)
}

/// Brings an opened tree up to date and starts serving from it: migrates an
/// older layout, continues the journal, writes a base copy if the journal
/// and the old one do not cover every commit, marks the store open.
fn finish_open(
    dir: &Path,
    options: SledOptions,
    held: Held,
    opened: Opened,
    base: BaseState,
    recovered: &Recovered,
    marked_open: bool,
) -> Result<SledStore, StoreError> {
    let Held { _lock: lock, audit } = held;
    let Opened { db, last } = opened;
    // A tree rebuilt from a base copy has not been checked yet.
    let schema = known_schema(stored_schema(&db)?)?;
    if schema == legacy::VERSION && options.utc_offset.is_none() {
        return Err(StoreError::Unsupported(format!(
            "{} was written by an older version (layout {}): start medassist serve on it \
             once, with its configuration, to bring it up to date (this uses the fund's \
             [reconciliation] utc_offset, which this command does not read)",
            dir.display(),
            legacy::VERSION
        )));
    }
    if schema != legacy::VERSION {
        recover_audit(&audit, &dir.join(JOURNAL_DIR), recovered)?;
    }
    let mut base = base;
    if let (legacy::VERSION, Some(offset)) = (schema, options.utc_offset) {
        migrate_v1(&db, offset)?;
        // The rewritten records are in no journal record.
        base = BaseState::Rewrite("the layout was migrated");
    }
    if matches!(schema, BEFORE_CLASSES | BEFORE_APPLICATIONS) {
        db.insert(META_SCHEMA, encode(&SCHEMA_VERSION)?)
            .map_err(io)?;
        tracing::info!(
            "store marked layout version {SCHEMA_VERSION}: builds of layout {schema} refuse it \
             from now on"
        );
        // Durable at once, so a rebuild after a power cut finds it too.
        base = BaseState::Rewrite("the layout was marked");
    }
    if let BaseState::Whole(copy) = &base
        && !covers(recovered, copy.last_commit, last)
    {
        base = BaseState::Rewrite("the journal does not reach back to the base copy");
    }
    let journal = Arc::new(Journal::resume(
        &dir.join(JOURNAL_DIR),
        options.journal_segment_bytes,
        recovered,
    )?);
    let core = Core {
        db,
        dir: dir.to_owned(),
        journal,
        poisoned: Arc::new(OnceLock::new()),
        journaled: Arc::new(AtomicU64::new(last)),
        applied: Arc::new(AtomicU64::new(last)),
        observer: Arc::new(OnceLock::new()),
        audit: Arc::new(audit),
    };
    let copy = match base {
        BaseState::Whole(copy) => {
            // What the journal gave back to the trail is synced before the
            // journal segments that held it can go.
            core.audit.sync()?;
            core.journal.release_through(copy.last_commit)?;
            copy
        }
        BaseState::Rewrite(why) => {
            tracing::info!(commit = last, why, "writing a base copy of the store");
            core.write_base()?
        }
    };
    if !marked_open {
        checkpoint::write(dir, Checkpoint::Open(last))?;
    }
    if recovered.last_commit.is_some_and(|l| l > copy.last_commit) {
        tracing::info!(
            base_commit = copy.last_commit,
            last_commit = last,
            "the journal holds commits after the base copy"
        );
    }
    let keeper = BaseKeeper::start(core.clone(), copy, options.rebase_after_bytes)?;
    Ok(SledStore {
        core,
        keeper: Some(keeper),
        faults: None,
        closing: Closing {
            dir: dir.to_owned(),
            clean: None,
            _lock: lock,
        },
    })
}

/// Gives the trail back the records the journal holds after the commit its
/// files were synced through (an unclean stop cut them back to it); records
/// already there are skipped.
fn recover_audit(
    audit: &AuditLog,
    journal_dir: &Path,
    recovered: &Recovered,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (recovered.first_commit, recovered.last_commit) else {
        return Ok(());
    };
    let from = audit.synced_commit().max(first - 1);
    if last <= from {
        return Ok(());
    }
    journal::read_records(journal_dir, from, last, |record| {
        let batch = super::decode_batch(&record.payload)?;
        audit.append(record.commit, &batch.audit)
    })
}

/// True when the journal holds every commit after `base` up to `last`.
fn covers(recovered: &Recovered, base: CommitNumber, last: CommitNumber) -> bool {
    last <= base
        || (recovered
            .first_commit
            .is_some_and(|first| first <= base + 1)
            && recovered.last_commit.is_some_and(|held| held >= last))
}

/// Opens sled's files as they are, which holds only after a clean stop (or
/// a stop by a version that synced sled itself): sled must hold at least
/// `acknowledged`, and the journal's later commits are applied again. A
/// panic inside sled is damage.
fn trusted(
    dir: &Path,
    options: SledOptions,
    acknowledged: CommitNumber,
    journal_dir: &Path,
    recovered: &Recovered,
) -> Result<Opened, StoreError> {
    crate::store::catch_damage(|| {
        let db = open_sled(dir, options)?;
        let schema = check_schema(&db)?;
        let held = get_u64(&db, META_COMMIT)?.unwrap_or(0);
        if held < acknowledged {
            return Err(StoreError::Corrupt(format!(
                "{} holds commits up to {held}, but commits up to {acknowledged} were \
                 made durable and acknowledged: sled's log is damaged and sled cut it short",
                dir.display()
            )));
        }
        let last = match recovered.last_commit {
            Some(last) if last > held => {
                journal::read_records(journal_dir, held, last, |record| {
                    replay_one(&db, record.commit, &record.payload, schema)
                })?;
                tracing::info!(
                    from = held + 1,
                    through = last,
                    "recovered commits from the journal"
                );
                last
            }
            _ => held,
        };
        Ok(Opened { db, last })
    })
    .unwrap_or_else(|panic| {
        Err(StoreError::Corrupt(format!(
            "sled failed reading its files ({panic}): they are damaged"
        )))
    })
}

/// The refusal of a store sled cannot open when there is no base copy to
/// rebuild from.
fn refuse_untrusted(dir: &Path, error: StoreError) -> StoreError {
    match error {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!(
            "{why}. {} has no whole base copy to rebuild from: do not serve from it; restore \
             the last snapshot (medassist snapshot restore) and run medassist verify",
            dir.display()
        )),
        other => other,
    }
}

/// A directory with no checkpoint and no base copy: a new store, or one
/// written before the journal existed (sled alone, synced by its own
/// flush). A journal with records here means files are missing.
fn new_or_older(
    dir: &Path,
    options: SledOptions,
    journal_dir: &Path,
    recovered: &Recovered,
) -> Result<Opened, StoreError> {
    if recovered.last_commit.is_some() {
        return Err(StoreError::Corrupt(format!(
            "{} has a journal but no checkpoint file: the directory is damaged or \
             incomplete; restore the last snapshot",
            dir.display()
        )));
    }
    match trusted(dir, options, 0, journal_dir, recovered) {
        Ok(opened) if opened.last > 0 => {
            tracing::info!(
                commit = opened.last,
                "store written before the journal existed: writing its first base copy"
            );
            Ok(opened)
        }
        // Nothing was ever committed: whatever sled left (a first start
        // cut short) is thrown away.
        Ok(Opened { db, .. }) => {
            drop(db);
            await_sled_released(dir);
            fresh(dir, options)
        }
        Err(StoreError::Corrupt(_)) => fresh(dir, options),
        Err(other) => Err(other),
    }
}

/// A new, empty tree.
fn fresh(dir: &Path, options: SledOptions) -> Result<Opened, StoreError> {
    remove_sled_files(dir)?;
    let db = open_sled(dir, options)?;
    check_schema(&db)?;
    Ok(Opened { db, last: 0 })
}

/// Removes every file sled keeps in `dir`, and makes that durable.
fn remove_sled_files(dir: &Path) -> Result<(), StoreError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let removed = match name {
            "blobs" => std::fs::remove_dir_all(&path),
            "db" | "conf" => std::fs::remove_file(&path),
            _ if name.starts_with("snap.") => std::fs::remove_file(&path),
            _ => continue,
        };
        removed.map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
    }
    sync_dir(dir)
}

/// Builds sled anew from the base copy, then the journal's commits after
/// it. sled's old files are removed first; the base and the journal are
/// only read, so a rebuild cut short is simply done again.
fn rebuild(
    dir: &Path,
    options: SledOptions,
    journal_dir: &Path,
    recovered: &Recovered,
) -> Result<Opened, StoreError> {
    let started = Instant::now();
    remove_sled_files(dir)?;
    let db = open_sled(dir, options)?;
    let copy = load(&db, |each| base::load(dir, each))?;
    let schema = stored_schema(&db)?;
    let last = match recovered.last_commit {
        Some(last) if last > copy.last_commit => {
            journal::read_records(journal_dir, copy.last_commit, last, |record| {
                replay_one(&db, record.commit, &record.payload, schema)
            })
            .map_err(|error| {
                StoreError::Corrupt(format!(
                    "{} cannot be rebuilt from its base copy (commit {}) and journal: {error}",
                    dir.display(),
                    copy.last_commit
                ))
            })?;
            last
        }
        _ => copy.last_commit,
    };
    tracing::info!(
        base_commit = copy.last_commit,
        entries = copy.entries,
        last_commit = last,
        seconds = started.elapsed().as_secs_f64(),
        "rebuilt sled from the base copy and the journal"
    );
    Ok(Opened { db, last })
}

/// Loads a snapshot's items, which `read` hands out, into the empty tree
/// `db`: entries in batches, then its journal records in order. The tree
/// then holds the snapshot's last commit.
pub(super) fn load(
    db: &sled::Db,
    read: impl FnOnce(
        &mut dyn FnMut(Item) -> Result<(), StoreError>,
    ) -> Result<SnapshotSummary, StoreError>,
) -> Result<SnapshotSummary, StoreError> {
    let mut entries = sled::Batch::default();
    let (mut queued, mut loaded) = (0, 0);
    let summary = read(&mut |item| {
        match item {
            Item::Entry(key, value) => {
                entries.insert(key, value);
                queued += 1;
                if queued == RESTORE_BATCH {
                    db.apply_batch(std::mem::take(&mut entries)).map_err(io)?;
                    queued = 0;
                    loaded += RESTORE_BATCH;
                    // sled keeps unwritten pages in memory; writing them out
                    // as the load goes keeps its memory flat.
                    if loaded % RESTORE_FLUSH_EVERY == 0 {
                        db.flush().map_err(io)?;
                    }
                }
            }
            Item::Record(commit, payload) => {
                if queued > 0 {
                    db.apply_batch(std::mem::take(&mut entries)).map_err(io)?;
                    queued = 0;
                }
                replay_one(db, commit, &payload, stored_schema(db)?)?;
            }
        }
        Ok(())
    })?;
    db.apply_batch(entries).map_err(io)?;
    // The copy's own commit counter is fuzzy; the tree holds the last.
    db.insert(META_COMMIT, &summary.last_commit.to_be_bytes())
        .map_err(io)?;
    Ok(summary)
}

/// Makes a new data directory `dir` from a snapshot, after checking it
/// whole: a damaged or truncated one (or one its source cannot open, such
/// as a sealed file and the wrong key) is refused and nothing is written. `dir` must be missing or empty. The snapshot becomes the store's
/// base copy, and the store is built from it once, by opening it.
pub(super) fn restore(
    source: Source<'_>,
    dir: &Path,
    options: SledOptions,
) -> Result<SnapshotSummary, StoreError> {
    let input = std::io::BufReader::with_capacity(1 << 20, source()?);
    let summary = crate::store::snapshot::check(input).map_err(|error| match error {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!("{why}; nothing was restored")),
        other => other,
    })?;
    let occupied = std::fs::read_dir(dir).map(|mut entries| entries.next().is_some());
    if occupied.unwrap_or(false) {
        return Err(StoreError::Io(format!(
            "{} is not empty: restore into a new directory",
            dir.display()
        )));
    }
    super::create_data_dir(dir)?;
    base::install(&mut source()?, dir)?;
    drop(open(dir, options)?);
    Ok(summary)
}

/// Closes the store after its tree: declared last in [`SledStore`], it is
/// dropped after every handle on the tree, waits until sled has closed its
/// files, syncs them and, if the store was healthy and everything it
/// applied is journaled, records a clean stop.
pub(super) struct Closing {
    pub(super) dir: PathBuf,
    /// The commit sled holds, set when the store closes healthy.
    pub(super) clean: Option<CommitNumber>,
    pub(super) _lock: DirLock,
}

impl Drop for Closing {
    fn drop(&mut self) {
        let Some(commit) = self.clean else {
            return;
        };
        if !await_sled_released(&self.dir) {
            tracing::error!(
                "sled did not close its files: the store will be rebuilt at the next start"
            );
            return;
        }
        let closed = sync_tree(&self.dir, NOT_SLEDS)
            .and_then(|()| checkpoint::write(&self.dir, Checkpoint::Clean(commit)));
        if let Err(error) = closed {
            tracing::error!(%error, "cannot record a clean stop: the store will be rebuilt at the next start");
        }
    }
}

/// The background thread that writes a new base copy once the journal
/// after the last one has grown past `max(rebase_after_bytes, the base
/// copy's size)`, and so bounds the journal, its disk and a rebuild's time.
pub(super) struct BaseKeeper {
    wake: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl BaseKeeper {
    fn start(
        core: Core,
        mut copy: BaseCopy,
        rebase_after_bytes: u64,
    ) -> Result<BaseKeeper, StoreError> {
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&wake);
        let thread = std::thread::Builder::new()
            .name("medassist-base".into())
            .spawn(move || {
                let (lock, condvar) = &*signal;
                let (mut retry_after, mut backoff) = (Instant::now(), BASE_CHECK_INTERVAL);
                loop {
                    let stopping = match lock.lock() {
                        Ok(guard) => condvar
                            .wait_timeout_while(guard, BASE_CHECK_INTERVAL, |stop| !*stop)
                            .map(|(guard, _)| *guard)
                            .unwrap_or(true),
                        Err(_) => true,
                    };
                    if stopping || core.poisoned.get().is_some() {
                        return;
                    }
                    let due = core
                        .journal
                        .bytes_after(copy.last_commit)
                        .is_ok_and(|bytes| bytes >= rebase_after_bytes.max(copy.bytes));
                    if !due || Instant::now() < retry_after {
                        continue;
                    }
                    match core.write_base() {
                        Ok(written) => {
                            copy = written;
                            backoff = BASE_CHECK_INTERVAL;
                        }
                        Err(error) => {
                            tracing::error!(%error, retry_in = ?backoff, "cannot write a base copy: the journal keeps growing until one is written");
                            retry_after = Instant::now() + backoff;
                            backoff = (backoff * 2).min(BASE_RETRY_MAX);
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the base copy thread: {e}")))?;
        Ok(BaseKeeper {
            wake,
            thread: Some(thread),
        })
    }

    /// Ends the thread (a base copy being written is finished first).
    pub(super) fn stop(mut self) {
        if let Ok(mut stop) = self.wake.0.lock() {
            *stop = true;
        }
        self.wake.1.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the base copy thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The data directory's lock, as a process that forks sees it.

    use super::*;

    /// Proves opening waits for a lock whose open file outlives the store
    /// that held it for a moment, as a child forked just before the store
    /// closed holds it until its `exec`: a clone of the descriptor shares
    /// the lock just as the child's copy does.
    #[test]
    fn a_lock_a_forked_child_holds_for_a_moment_is_waited_for() {
        let dir = tempfile::TempDir::new().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        let childs_copy = held._file.try_clone().unwrap();
        drop(held);
        let (released_tx, released_rx) = std::sync::mpsc::channel();
        let child = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let releasing = Instant::now();
            drop(childs_copy);
            released_tx.send(releasing).unwrap();
        });
        DirLock::acquire(dir.path()).expect("acquired once the child's copy closes");
        let acquired = Instant::now();
        let releasing = released_rx.recv().unwrap();
        assert!(acquired >= releasing, "not before the copy closed");
        child.join().unwrap();
    }

    /// Proves a lock held for good (a running service) is refused after
    /// the wait, with the line that says why.
    #[test]
    fn a_lock_held_for_good_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let _service = DirLock::acquire(dir.path()).unwrap();
        let refused = DirLock::acquire(dir.path()).err().expect("refused");
        assert!(
            refused.to_string().contains("in use by another process"),
            "{refused}"
        );
    }
}
