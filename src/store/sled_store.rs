//! The embedded store: one sled tree, one atomic sled batch per commit, made
//! durable by the journal before any answer, and by checkpoints in the
//! background.
//!
//! sled 0.34 is not durable by itself: its flush writes the log with
//! `sync_file_range` (no file metadata, no drive cache flush) and it never
//! syncs the directory it creates files in. So:
//!
//! - `apply` writes the batch into sled (one atomic sled batch) and stages
//!   its encoded record in the [`Journal`];
//! - `flush` writes the staged records with one `pwrite` and waits for one
//!   `fdatasync`: the ledger answers only after it;
//! - a checkpoint thread, about once a second, flushes sled, `fsync`s every
//!   file and directory sled keeps, records the commit that covers in the
//!   `checkpoint` file, and drops the journal segments it no longer needs;
//! - opening recovers: sled must hold at least the checkpoint's commit
//!   (else it lost acknowledged writes, and opening is refused), and the
//!   journal's later commits are applied again (each carries its commit
//!   number, so this is idempotent), followed by a checkpoint.
//!
//! Data directory: sled's own files (`db`, `conf`, `snap.*`, `blobs/`) at the
//! top, `journal/` and `checkpoint` beside them.
//!
//! Layout of the tree (all in one tree, so one batch covers every write):
//!
//! | key | value |
//! |---|---|
//! | `S` settlement number (8 bytes, big-endian) | commit, settlement |
//! | `C` hospital length (1 byte), hospital, claim | settlement number |
//! | `P` resident ID (18), year (2), settlement number (8) | nothing: the patient-year index |
//! | `U` resident ID (18), year (2) | commit, running total |
//! | `R` resident ID (18) | commit, roster record |
//! | `H` hospital length (1), hospital, day (4), settlement number (8) | nothing: the hospital-day index |
//! | `D` day (4), settlement number (8) | nothing: the day index, every hospital |
//! | `F` day settled (4), settlement number (8) | region (6): referred and not reversed |
//! | `M` name | schema version, last commit, next settlement number |
//!
//! Values are postcard-encoded. Big-endian numbers make key order equal
//! numeric order, so a patient-year's settlements scan oldest first.
//!
//! A day is a business day ([`BusinessDay`], days since 1970 with the sign
//! bit flipped so keys sort as days do). A settlement has `H` and `D` entries
//! for the day it was settled and, once reversed on another day, for that day
//! too: the index of reconciliation (3201/3202) and export, which therefore
//! never scan every settlement. The days are on the settlement record, fixed
//! by the ledger when it commits, so the index is a function of the batch.
//!
//! Schema version 2 added the days and names to the settlement record and the
//! `H`/`D` index; a version 1 store is brought up to date once when opened
//! (see [`super::legacy`]).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    io::Write,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

use super::legacy::{self, BatchV1, SettlementV1, UsageV1};
use super::{
    Batch, CommitNumber, CommitStep, FaultPlan, Meta, Scan, ScanIter, Store, StoreError, Versioned,
    checkpoint::{self, sync_dir, sync_tree},
    journal::{self, Journal, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN},
    snapshot::{self, Item, SnapshotSummary, SnapshotWriter},
};
use crate::domain::{
    BusinessDay, ClaimId, ClaimKey, HospitalId, Money, Person, RegionCode, ResidentId, Settlement,
    SettlementId, Usage, UtcOffset, Year,
};

/// The layout version this code reads and writes.
const SCHEMA_VERSION: u32 = 2;
/// While a version 1 store is being brought up to date: the key of the last
/// running total rewritten, so an interrupted migration resumes after it.
const META_MIGRATING: &[u8] = b"Mmigrating_v2";
/// Records rewritten per atomic step of the migration (a patient-year is
/// never split).
const MIGRATE_CHUNK: usize = 256;
/// Migration steps between two flushes of sled.
const MIGRATE_FLUSH_STEPS: usize = 32;
const META_SCHEMA: &[u8] = b"Mschema";
const META_COMMIT: &[u8] = b"Mcommit";
const META_NEXT_ID: &[u8] = b"Mnext_settlement_id";
/// The journal's directory inside the data directory.
const JOURNAL_DIR: &str = "journal";
/// Entries a restore writes into the tree at once.
const RESTORE_BATCH: usize = 256;
/// Entries a restore writes between two flushes of sled.
const RESTORE_FLUSH_EVERY: usize = 8_192;
/// What is not sled's in the data directory (and syncs itself).
const NOT_SLEDS: &[&str] = &[JOURNAL_DIR, checkpoint::FILE_NAME, "checkpoint.tmp"];

/// Tuning of the embedded store.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// Bytes of page cache sled may keep in memory.
    pub cache_bytes: u64,
    /// Size of each journal segment file.
    pub journal_segment_bytes: u64,
    /// How often sled is checkpointed while commits arrive: the journal
    /// holds about this much time of commits.
    pub checkpoint_interval: Duration,
    /// The fund's zone, used only to work out the business days of the
    /// settlements of a store written before days were recorded. `None`
    /// (tools that do not read the configuration, such as `verify`) refuses
    /// to open such a store rather than guess the zone: the server, which
    /// knows it, brings the store up to date when it starts.
    pub utc_offset: Option<UtcOffset>,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_bytes: 128 * 1024 * 1024,
            journal_segment_bytes: SEGMENT_BYTES_DEFAULT,
            checkpoint_interval: Duration::from_secs(1),
            utc_offset: None,
        }
    }
}

/// The sled tree and the directory it lives in: what a checkpoint needs.
#[derive(Clone)]
struct Tree {
    db: sled::Db,
    dir: PathBuf,
}

impl Tree {
    /// Makes sled durable up to `commit`, every commit at or below which it
    /// already holds, then records that in the checkpoint file.
    fn checkpoint(&self, commit: CommitNumber) -> Result<(), StoreError> {
        self.db.flush().map_err(io)?;
        sync_tree(&self.dir, NOT_SLEDS)?;
        checkpoint::write(&self.dir, commit)
    }
}

/// The embedded store, on sled 0.34 (the stable line).
pub struct SledStore {
    db: sled::Db,
    journal: Arc<Journal>,
    /// Set when a commit or a checkpoint failed after it may have changed the
    /// tree: from then on nothing is read or written until the service
    /// restarts, so no one sees (or builds on) a write that is not durable.
    poisoned: Arc<OnceLock<String>>,
    /// The last commit the journal holds durably; checkpoints cover up to it.
    journaled: Arc<AtomicU64>,
    /// The last commit applied to the tree (durable or not yet).
    applied: AtomicU64,
    checkpointer: Option<Checkpointer>,
    /// Injected failures, for tests only.
    faults: Option<Arc<dyn FaultPlan>>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and recovers it: sled from its
    /// log, then the journal's commits that sled's last checkpoint does not
    /// hold. Refuses a store that holds fewer commits than were acknowledged.
    pub fn open(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        if options.journal_segment_bytes < SEGMENT_BYTES_MIN {
            return Err(StoreError::Io(format!(
                "journal segments must be at least {SEGMENT_BYTES_MIN} bytes"
            )));
        }
        create_data_dir(dir)?;
        let checkpointed = checkpoint::read(dir)?;
        let journal_dir = dir.join(JOURNAL_DIR);
        let had_journal = journal_dir.exists();
        let tree = Tree {
            db: open_sled(dir, options)?,
            dir: dir.to_owned(),
        };
        // sled's own recovery may have rewritten files without syncing them.
        sync_tree(dir, NOT_SLEDS)?;
        let schema = check_schema(&tree.db)?;
        let held = get_u64(&tree.db, META_COMMIT)?.unwrap_or(0);
        match checkpointed {
            Some(acknowledged) if held < acknowledged => {
                return Err(StoreError::Corrupt(format!(
                    "{} holds commits up to {held}, but commits up to {acknowledged} were \
                     made durable and acknowledged: sled's log is damaged and sled cut it \
                     short. Do not serve from this directory: restore the last snapshot \
                     (medassist snapshot restore) and run medassist verify",
                    dir.display()
                )));
            }
            None if had_journal => {
                return Err(StoreError::Corrupt(format!(
                    "{} has a journal but no checkpoint file: the directory is damaged \
                     or incomplete; restore the last snapshot",
                    dir.display()
                )));
            }
            None if held > 0 => tracing::info!(
                commit = held,
                "store written before the journal existed: taking its first checkpoint"
            ),
            _ => {}
        }
        if schema == legacy::VERSION && options.utc_offset.is_none() {
            return Err(StoreError::Unsupported(format!(
                "{} was written by an older version (layout {}): start medassist serve on it \
                 once, with its configuration, to bring it up to date (this uses the fund's \
                 [reconciliation] utc_offset, which this command does not read)",
                dir.display(),
                legacy::VERSION
            )));
        }
        let replayed = replay(&tree.db, held, journal::recover(&journal_dir)?, schema)?;
        let last = held.max(replayed.unwrap_or(0));
        if let (legacy::VERSION, Some(offset)) = (schema, options.utc_offset) {
            migrate_v1(&tree.db, offset)?;
        }
        tree.checkpoint(last)?;
        let journal = Arc::new(Journal::start(&journal_dir, options.journal_segment_bytes)?);
        if let Some(through) = replayed {
            tracing::info!(
                from = held + 1,
                through,
                "recovered commits from the journal"
            );
        }
        let poisoned = Arc::new(OnceLock::new());
        let journaled = Arc::new(AtomicU64::new(last));
        let checkpointer = Checkpointer::start(
            tree,
            Arc::clone(&journal),
            Arc::clone(&journaled),
            Arc::clone(&poisoned),
            last,
            options.checkpoint_interval,
        )?;
        Ok(SledStore {
            db: checkpointer.tree.db.clone(),
            journal,
            poisoned,
            journaled,
            applied: AtomicU64::new(last),
            checkpointer: Some(checkpointer),
            faults: None,
        })
    }

    /// Opens the store with failures injected at chosen commit steps. For
    /// tests of failure handling; production uses [`SledStore::open`].
    pub fn open_with_faults(
        dir: &Path,
        options: SledOptions,
        faults: Arc<dyn FaultPlan>,
    ) -> Result<SledStore, StoreError> {
        let mut store = SledStore::open(dir, options)?;
        store.faults = Some(faults);
        Ok(store)
    }

    fn fails(&self, step: CommitStep) -> bool {
        self.faults.as_ref().is_some_and(|plan| plan.fails(step))
    }

    fn poison(&self, reason: String) -> StoreError {
        poison(&self.poisoned, reason)
    }

    fn healthy(&self) -> Result<(), StoreError> {
        match self.poisoned.get() {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn get_versioned<T: DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<Versioned<T>>, StoreError> {
        self.healthy()?;
        self.db
            .get(key)
            .map_err(io)?
            .map(|bytes| versioned(&bytes))
            .transpose()
    }

    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        get_u64(&self.db, key)
    }

    /// Encodes every write of the batch before touching the tree, so an
    /// encoding failure changes nothing.
    fn writes_of(batch: &Batch) -> Result<sled::Batch, StoreError> {
        let mut writes = sled::Batch::default();
        for settlement in &batch.settlements {
            let id = settlement.id.get().to_be_bytes();
            writes.insert(
                settlement_key(settlement.id),
                encode(&(batch.commit, settlement))?,
            );
            writes.insert(claim_key(settlement.claim.key()), &id);
            let mut index =
                patient_year_key(settlement.claim.patient_id(), settlement.claim.year());
            index.extend_from_slice(&id);
            writes.insert(index, &[]);
            for key in day_keys(settlement) {
                writes.insert(key, &[]);
            }
            // Referred and not reversed: listed; reversed: no longer.
            if settlement.referral.is_some() {
                let key = referral_key(settlement.settled_day, settlement.id);
                match settlement.listed_referral_region() {
                    Some(region) => writes.insert(key, region.as_str().as_bytes()),
                    None => writes.remove(key),
                }
            }
        }
        for (patient, year, usage) in &batch.usages {
            writes.insert(usage_key(patient, *year), encode(&(batch.commit, usage))?);
        }
        for person in &batch.persons {
            writes.insert(person_key(person.id()), encode(&(batch.commit, person))?);
        }
        writes.insert(META_COMMIT, &batch.commit.to_be_bytes());
        writes.insert(META_NEXT_ID, &batch.next_settlement_id.get().to_be_bytes());
        Ok(writes)
    }
}

impl Store for SledStore {
    fn meta(&self) -> Result<Meta, StoreError> {
        self.healthy()?;
        Ok(Meta {
            last_commit: self.get_u64(META_COMMIT)?.unwrap_or(0),
            next_settlement_id: self
                .get_u64(META_NEXT_ID)?
                .map_or(SettlementId::FIRST, SettlementId::new),
        })
    }

    fn person(&self, id: &ResidentId) -> Result<Option<Versioned<Person>>, StoreError> {
        self.get_versioned(&person_key(id))
    }

    fn persons(&self) -> ScanIter<'_, Versioned<Person>> {
        self.scan_persons()
    }

    fn settlement(&self, id: SettlementId) -> Result<Option<Versioned<Settlement>>, StoreError> {
        self.get_versioned(&settlement_key(id))
    }

    fn settlement_by_claim(
        &self,
        key: &ClaimKey,
    ) -> Result<Option<Versioned<Settlement>>, StoreError> {
        self.healthy()?;
        match self.get_u64(&claim_key(key))? {
            None => Ok(None),
            Some(id) => {
                let found = self.settlement(SettlementId::new(id))?;
                found.map(Some).ok_or_else(|| {
                    StoreError::Corrupt(format!("claim index points to missing settlement {id}"))
                })
            }
        }
    }

    fn usage(
        &self,
        patient: &ResidentId,
        year: Year,
    ) -> Result<Option<Versioned<Usage>>, StoreError> {
        self.get_versioned(&usage_key(patient, year))
    }

    fn settlements_of(
        &self,
        patient: &ResidentId,
        year: Year,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        self.healthy()?;
        let prefix = patient_year_key(patient, year);
        let mut start = prefix.clone();
        start.extend_from_slice(
            &after
                .map_or(0, |id| id.get().saturating_add(1))
                .to_be_bytes(),
        );
        let mut found = Vec::new();
        for entry in self.db.range(start..).take(limit) {
            let (key, _) = entry.map_err(io)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let id = be_u64(&key[prefix.len()..])?;
            let settlement = self.settlement(SettlementId::new(id))?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "patient-year index points to missing settlement {id}"
                ))
            })?;
            found.push(settlement);
        }
        Ok(found)
    }

    fn settlements_on_days(
        &self,
        hospital: Option<&HospitalId>,
        days: RangeInclusive<BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        self.healthy()?;
        let from = after
            .map_or(0, |id| id.get().saturating_add(1))
            .to_be_bytes();
        // One cursor per day, merged by settlement number: memory grows with
        // the number of days (at most a year's), never with the settlements.
        let mut cursors = Vec::new();
        let mut heads = BinaryHeap::new();
        let mut day = *days.start();
        while day <= *days.end() {
            let prefix = day_prefix(hospital, day);
            let mut start = prefix.clone();
            start.extend_from_slice(&from);
            let mut cursor = DayCursor {
                entries: self.db.range(start..),
                prefix,
            };
            if let Some(id) = cursor.next_id()? {
                heads.push(Reverse((id, cursors.len())));
            }
            cursors.push(cursor);
            day = day.next();
        }
        let mut found: Vec<Versioned<Settlement>> = Vec::new();
        while found.len() < limit {
            let Some(Reverse((id, i))) = heads.pop() else {
                break;
            };
            if let Some(next) = cursors[i].next_id()? {
                heads.push(Reverse((next, i)));
            }
            // Settled on one day of the range and reversed on another.
            if found.last().is_some_and(|s| s.value.id.get() == id) {
                continue;
            }
            let settlement = self.settlement(SettlementId::new(id))?.ok_or_else(|| {
                StoreError::Corrupt(format!("day index points to missing settlement {id}"))
            })?;
            found.push(settlement);
        }
        Ok(found)
    }

    fn referrals(
        &self,
        region: RegionCode,
        days: RangeInclusive<BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        self.healthy()?;
        let mut start = referral_key(*days.start(), SettlementId::new(0));
        if let Some(after) = after {
            // Resume just after the last one answered, even if it has since
            // been reversed and left the index.
            if let Some(last) = self.settlement(after)? {
                start = start.max(referral_key(last.value.settled_day, after.next()));
            }
        }
        let end = referral_key(days.end().next(), SettlementId::new(0));
        let mut found = Vec::new();
        for entry in self.db.range(start..end) {
            if found.len() >= limit {
                break;
            }
            let (key, value) = entry.map_err(io)?;
            let damaged = || StoreError::Corrupt("malformed referral index entry".into());
            let of = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| RegionCode::parse(text).ok())
                .ok_or_else(damaged)?;
            if !region.covers(of) {
                continue;
            }
            let id = be_u64(key.get(5..).ok_or_else(damaged)?)?;
            let settlement = self.settlement(SettlementId::new(id))?.ok_or_else(|| {
                StoreError::Corrupt(format!("referral index points to missing settlement {id}"))
            })?;
            found.push(settlement);
        }
        Ok(found)
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.healthy()?;
        let writes = Self::writes_of(batch)?;
        let record = encode(batch)?;
        if record.len() > self.journal.payload_max() {
            return Err(StoreError::Io(format!(
                "commit {} is {} bytes, more than a journal record holds",
                batch.commit,
                record.len()
            )));
        }
        if self.fails(CommitStep::BeforeWrite) {
            return Err(StoreError::Io("injected failure before the write".into()));
        }
        if self.fails(CommitStep::AtApply) {
            return Err(StoreError::Io("injected failure applying the batch".into()));
        }
        // One sled batch: atomic for readers (it holds sled's write lock, as
        // a transaction's commit would, without a transaction's read set and
        // copies: there is one writer) and for sled's recovery.
        self.db
            .apply_batch(writes)
            .map_err(|error| self.poison(error.to_string()))?;
        self.applied.store(batch.commit, Ordering::Release);
        // The tree now holds the batch: if it cannot reach the journal, it
        // must not be served.
        self.journal
            .stage(batch.commit, &record)
            .map_err(|error| self.poison(error.to_string()))
    }

    fn save_snapshot(
        &self,
        out: &mut dyn Write,
        taken_at_micros: i64,
    ) -> Result<SnapshotSummary, StoreError> {
        self.healthy()?;
        let base = self.journaled.load(Ordering::Acquire);
        let _kept = self.journal.pin(base)?;
        let failed = |e: std::io::Error| StoreError::Io(format!("snapshot: {e}"));
        let mut writer = SnapshotWriter::start(out, base, taken_at_micros).map_err(failed)?;
        for entry in self.db.iter() {
            let (key, value) = entry.map_err(io)?;
            writer.entry(&key, &value).map_err(failed)?;
        }
        // Everything the copy saw was applied by now; once it is durable,
        // the journal completes every commit the copy caught half-way.
        let last = self.applied.load(Ordering::Acquire);
        self.await_journaled(last)?;
        self.journal.each_record(base, last, |record| {
            writer
                .record(record.commit, &record.payload)
                .map_err(failed)
        })?;
        let entries = writer.entries();
        writer.finish(last).map_err(failed)?;
        Ok(SnapshotSummary {
            base_commit: base,
            last_commit: last,
            entries,
            records: last - base,
            taken_at_micros,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.healthy()?;
        let synced = if self.fails(CommitStep::AtFlush) {
            Err("injected failure at the flush".to_owned())
        } else {
            self.journal.sync().map_err(|e| e.to_string())
        };
        // A failed sync leaves the tree holding writes that are not durable,
        // and (as PostgreSQL learned) a retried fsync cannot be trusted: stop
        // serving. Restarting recovers the last durable state.
        if let Some(commit) = synced.map_err(|reason| self.poison(reason))? {
            self.journaled.store(commit, Ordering::Release);
        }
        Ok(())
    }
}

impl SledStore {
    /// Waits (briefly: a commit takes milliseconds) until `commit` is durable.
    fn await_journaled(&self, commit: CommitNumber) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.journaled.load(Ordering::Acquire) < commit {
            self.healthy()?;
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Io(format!(
                    "commit {commit} did not become durable within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Makes a new data directory `dir` from a snapshot file, after checking
    /// the whole file: a damaged or truncated one is refused and nothing is
    /// written. `dir` must be missing or empty. The restored store holds the
    /// snapshot's last commit and opens like any other.
    pub fn restore_snapshot(
        file: &Path,
        dir: &Path,
        options: SledOptions,
    ) -> Result<SnapshotSummary, StoreError> {
        let open = || {
            std::fs::File::open(file)
                .map(std::io::BufReader::new)
                .map_err(|e| StoreError::Io(format!("{}: {e}", file.display())))
        };
        let summary = snapshot::check(open()?)?;
        let occupied = std::fs::read_dir(dir).map(|mut entries| entries.next().is_some());
        if occupied.unwrap_or(false) {
            return Err(StoreError::Io(format!(
                "{} is not empty: restore into a new directory",
                dir.display()
            )));
        }
        create_data_dir(dir)?;
        let tree = Tree {
            db: open_sled(dir, options)?,
            dir: dir.to_owned(),
        };
        let mut entries = sled::Batch::default();
        let (mut queued, mut loaded) = (0, 0);
        snapshot::read(open()?, |item| {
            match item {
                Item::Entry(key, value) => {
                    entries.insert(key, value);
                    queued += 1;
                    if queued == RESTORE_BATCH {
                        tree.db
                            .apply_batch(std::mem::take(&mut entries))
                            .map_err(io)?;
                        queued = 0;
                        loaded += RESTORE_BATCH;
                        // sled keeps unwritten pages in memory; writing them
                        // out as the load goes keeps a restore's memory flat.
                        if loaded % RESTORE_FLUSH_EVERY == 0 {
                            tree.db.flush().map_err(io)?;
                        }
                    }
                }
                Item::Record(commit, payload) => {
                    if queued > 0 {
                        tree.db
                            .apply_batch(std::mem::take(&mut entries))
                            .map_err(io)?;
                        queued = 0;
                    }
                    replay_one(&tree.db, commit, &payload, stored_schema(&tree.db)?)?;
                }
            }
            Ok(())
        })?;
        tree.db.apply_batch(entries).map_err(io)?;
        // The copy's own commit counter is fuzzy; the store holds the last.
        tree.db
            .insert(META_COMMIT, &summary.last_commit.to_be_bytes())
            .map_err(io)?;
        tree.checkpoint(summary.last_commit)?;
        drop(tree);
        drop(SledStore::open(dir, options)?);
        Ok(summary)
    }
}

impl SledStore {
    /// Writes a new data directory `dir` as version 1 of this service did:
    /// the commits of `in_tree` in sled, those of `in_journal` only in the
    /// journal (as when the service stopped before sled's checkpoint). Only
    /// for tests of the migration of older stores; the service never calls it.
    #[doc(hidden)]
    pub fn write_version_1(
        dir: &Path,
        in_tree: &[BatchV1],
        in_journal: &[BatchV1],
    ) -> Result<(), StoreError> {
        let options = SledOptions::default();
        drop(SledStore::open(dir, options)?);
        let db = open_sled(dir, options)?;
        db.insert(META_SCHEMA, encode(&legacy::VERSION)?)
            .map_err(io)?;
        for batch in in_tree {
            db.apply_batch(writes_of_v1(batch)?).map_err(io)?;
        }
        db.flush().map_err(io)?;
        let journal = Journal::start(&dir.join(JOURNAL_DIR), SEGMENT_BYTES_MIN)?;
        for batch in in_journal {
            journal.stage(batch.commit, &encode(batch)?)?;
        }
        journal.sync()?;
        Ok(())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // The last checkpoint leaves nothing in the journal to replay.
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
    }
}

impl SledStore {
    fn scan<'a, T: 'a>(
        &'a self,
        prefix: &'static [u8],
        read: impl Fn(&[u8], &[u8]) -> Result<T, StoreError> + 'a,
    ) -> ScanIter<'a, T> {
        if let Err(error) = self.healthy() {
            return Box::new(std::iter::once(Err(error)));
        }
        Box::new(self.db.scan_prefix(prefix).map(move |entry| {
            let (key, value) = entry.map_err(io)?;
            read(&key[prefix.len()..], &value)
        }))
    }
}

impl Scan for SledStore {
    fn scan_settlements(&self) -> ScanIter<'_, Versioned<Settlement>> {
        self.scan(b"S", |_, value| versioned(value))
    }

    fn scan_claim_index(&self) -> ScanIter<'_, (ClaimKey, SettlementId)> {
        self.scan(b"C", |key, value| {
            let damaged = || StoreError::Corrupt("malformed claim index entry".into());
            let (&len, rest) = key.split_first().ok_or_else(damaged)?;
            let (hospital, claim) = rest
                .split_at_checked(usize::from(len))
                .ok_or_else(damaged)?;
            let text = |bytes| std::str::from_utf8(bytes).map_err(|_| damaged());
            let key = ClaimKey {
                hospital_id: HospitalId::parse(text(hospital)?).map_err(|_| damaged())?,
                claim_id: ClaimId::parse(text(claim)?).map_err(|_| damaged())?,
            };
            Ok((key, SettlementId::new(be_u64(value)?)))
        })
    }

    fn scan_patient_year_index(&self) -> ScanIter<'_, (ResidentId, Year, SettlementId)> {
        self.scan(b"P", |key, _| {
            let (patient, year) = patient_year_of(key)?;
            Ok((patient, year, SettlementId::new(be_u64(&key[20..])?)))
        })
    }

    fn scan_usages(&self) -> ScanIter<'_, (ResidentId, Year, Versioned<Usage>)> {
        self.scan(b"U", |key, value| {
            let (patient, year) = patient_year_of(key)?;
            Ok((patient, year, versioned(value)?))
        })
    }

    fn scan_persons(&self) -> ScanIter<'_, Versioned<Person>> {
        self.scan(b"R", |_, value| versioned(value))
    }

    fn scan_day_index(&self) -> ScanIter<'_, (Option<HospitalId>, BusinessDay, SettlementId)> {
        let damaged = || StoreError::Corrupt("malformed day index entry".into());
        let day_and_id = move |rest: &[u8]| {
            let day = rest.get(..4).ok_or_else(damaged)?;
            let day = BusinessDay::from_key_bytes([day[0], day[1], day[2], day[3]]);
            Ok::<_, StoreError>((day, SettlementId::new(be_u64(&rest[4..])?)))
        };
        let every = self.scan(b"D", move |key, _| {
            let (day, id) = day_and_id(key)?;
            Ok((None, day, id))
        });
        let by_hospital = self.scan(b"H", move |key, _| {
            let (&len, rest) = key.split_first().ok_or_else(damaged)?;
            let (hospital, rest) = rest
                .split_at_checked(usize::from(len))
                .ok_or_else(damaged)?;
            let hospital = std::str::from_utf8(hospital)
                .ok()
                .and_then(|text| HospitalId::parse(text).ok())
                .ok_or_else(damaged)?;
            let (day, id) = day_and_id(rest)?;
            Ok((Some(hospital), day, id))
        });
        Box::new(every.chain(by_hospital))
    }

    fn scan_referral_index(&self) -> ScanIter<'_, (BusinessDay, SettlementId, RegionCode)> {
        self.scan(b"F", |key, value| {
            let damaged = || StoreError::Corrupt("malformed referral index entry".into());
            let day = key.get(..4).ok_or_else(damaged)?;
            let day = BusinessDay::from_key_bytes([day[0], day[1], day[2], day[3]]);
            let id = SettlementId::new(be_u64(&key[4..])?);
            let region = std::str::from_utf8(value)
                .ok()
                .and_then(|text| RegionCode::parse(text).ok())
                .ok_or_else(damaged)?;
            Ok((day, id, region))
        })
    }
}

/// A cursor over one day's index entries, from a settlement number on.
struct DayCursor {
    entries: sled::Iter,
    prefix: Vec<u8>,
}

impl DayCursor {
    /// The next settlement number of the day, if any.
    fn next_id(&mut self) -> Result<Option<u64>, StoreError> {
        match self.entries.next() {
            None => Ok(None),
            Some(entry) => {
                let (key, _) = entry.map_err(io)?;
                match key.strip_prefix(self.prefix.as_slice()) {
                    Some(id) => be_u64(id).map(Some),
                    None => Ok(None),
                }
            }
        }
    }
}

fn versioned<T: DeserializeOwned>(bytes: &[u8]) -> Result<Versioned<T>, StoreError> {
    decode::<(CommitNumber, T)>(bytes).map(|(commit, value)| Versioned { value, commit })
}

fn be_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a stored number is not 8 bytes".into()))
}

/// Reads the resident ID (18 bytes) and year (2 bytes) at the start of a key body.
fn patient_year_of(key: &[u8]) -> Result<(ResidentId, Year), StoreError> {
    let damaged = || StoreError::Corrupt("malformed patient-year key".into());
    let id = key
        .get(..18)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(damaged)?;
    let year = key.get(18..20).ok_or_else(damaged)?;
    Ok((
        ResidentId::parse(id).map_err(|_| damaged())?,
        Year::parse(i32::from(u16::from_be_bytes([year[0], year[1]]))).map_err(|_| damaged())?,
    ))
}

fn open_sled(dir: &Path, options: SledOptions) -> Result<sled::Db, StoreError> {
    check_sled_settings(dir)?;
    sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_bytes)
        // Checkpoints flush; a timer would only add noise.
        .flush_every_ms(None)
        .open()
        .map_err(|error| match error.to_string() {
            locked if locked.contains("could not acquire lock") => {
                StoreError::Io(format!("{locked} (is the service still running?)"))
            }
            other => StoreError::Corrupt(format!(
                "sled cannot open {}: {other}; its files are damaged or were written \
                 with other settings: restore the last snapshot",
                dir.display()
            )),
        })
}

/// sled checksums its settings file (`conf`) but only warns when the sum
/// fails, then reads settings that may be wrong; a damaged one is refused here.
fn check_sled_settings(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join("conf");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(StoreError::Io(format!("{}: {error}", path.display()))),
    };
    // sled itself rewrites a settings file this short.
    if bytes.len() <= 8 {
        return Ok(());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != sum {
        return Err(StoreError::Corrupt(format!(
            "{} is damaged: its checksum does not match; restore the last snapshot",
            path.display()
        )));
    }
    Ok(())
}

/// Creates the data directory (and missing parents) if needed, and makes
/// every name it created durable by syncing the directory that holds it.
fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| !p.is_dir())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent)?;
    }
    Ok(())
}

/// The store's layout version: a new store gets this build's; version 1 is
/// read to be migrated; anything else is refused.
fn check_schema(db: &sled::Db) -> Result<u32, StoreError> {
    match db.get(META_SCHEMA).map_err(io)? {
        Some(bytes) => {
            let version: u32 = decode(&bytes)?;
            if version != SCHEMA_VERSION && version != legacy::VERSION {
                return Err(StoreError::Corrupt(format!(
                    "data directory has layout version {version}; this build reads \
                     {} and {SCHEMA_VERSION}",
                    legacy::VERSION
                )));
            }
            Ok(version)
        }
        // Made durable by the checkpoint that ends opening.
        None => {
            db.insert(META_SCHEMA, encode(&SCHEMA_VERSION)?)
                .map_err(io)?;
            Ok(SCHEMA_VERSION)
        }
    }
}

/// The layout version of what a tree holds so far (a new one: this build's).
fn stored_schema(db: &sled::Db) -> Result<u32, StoreError> {
    match db.get(META_SCHEMA).map_err(io)? {
        Some(bytes) => decode(&bytes),
        None => Ok(SCHEMA_VERSION),
    }
}

/// Brings a version 1 store up to date: for each patient-year, rewrites its
/// settlements with their business days (in the zone `offset`) and their
/// day index entries, and its running total with what the patient paid;
/// in atomic steps that record the last patient-year done, so an interrupted
/// migration resumes there. Then marks the store version 2. The journal was
/// replayed (in the old encoding) before, so every commit is in the tree,
/// and every settlement has its patient-year's running total. Called once,
/// at start-up.
fn migrate_v1(db: &sled::Db, offset: UtcOffset) -> Result<(), StoreError> {
    migrate_v1_steps(db, offset, MIGRATE_CHUNK, None)
}

/// The migration in steps of about `chunk` records; with `steps_max`, it
/// stops after that many steps as if interrupted (for tests of resuming).
fn migrate_v1_steps(
    db: &sled::Db,
    offset: UtcOffset,
    chunk: usize,
    steps_max: Option<usize>,
) -> Result<(), StoreError> {
    let resumed = db.get(META_MIGRATING).map_err(io)?;
    let mut start = match &resumed {
        // Just after the last patient-year done.
        Some(last) => [last.as_ref(), &[0]].concat(),
        None => b"U".to_vec(),
    };
    tracing::warn!(
        resumed = resumed.is_some(),
        %offset,
        "store written with layout version 1: rewriting settlements with their business \
         days and totals with what patients paid, and building the hospital-day index (once)"
    );
    let started = std::time::Instant::now();
    let (mut settlements, mut patient_years, mut steps) = (0u64, 0u64, 0usize);
    loop {
        if steps_max == Some(steps) {
            return Ok(());
        }
        steps += 1;
        let mut writes = sled::Batch::default();
        let (mut last, mut in_step) = (None, 0);
        for entry in db.range(start.clone()..) {
            let (key, value) = entry.map_err(io)?;
            if !key.starts_with(b"U") || in_step >= chunk {
                break;
            }
            let (patient, year) = patient_year_of(&key[1..])?;
            let (commit, old): (CommitNumber, UsageV1) = decode(&value)?;
            let mut paid = Money::ZERO;
            let prefix = patient_year_key(&patient, year);
            for index in db.scan_prefix(&prefix) {
                let (index, _) = index.map_err(io)?;
                let id = SettlementId::new(be_u64(&index[prefix.len()..])?);
                let stored = db.get(settlement_key(id)).map_err(io)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("patient-year index points to missing {id}"))
                })?;
                let (commit, old): (CommitNumber, SettlementV1) = decode(&stored)?;
                let settlement = old.upgrade(offset);
                if settlement.reversal.is_none() {
                    paid = paid
                        .checked_add(settlement.outcome.patient_pays)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("payments of {patient} in {year} overflow"))
                        })?;
                }
                writes.insert(settlement_key(id), encode(&(commit, &settlement))?);
                for index in day_keys(&settlement) {
                    writes.insert(index, &[]);
                }
                settlements += 1;
                in_step += 1;
            }
            writes.insert(key.clone(), encode(&(commit, old.upgrade(paid)))?);
            patient_years += 1;
            in_step += 1;
            last = Some(key);
        }
        let Some(last) = last else { break };
        writes.insert(META_MIGRATING, last.as_ref());
        db.apply_batch(writes).map_err(io)?;
        // sled keeps unwritten pages in memory (see the restore): writing
        // them out as the migration goes keeps it flat on a large store.
        if steps % MIGRATE_FLUSH_STEPS == 0 {
            db.flush().map_err(io)?;
        }
        start = [last.as_ref(), &[0]].concat();
    }
    let mut done = sled::Batch::default();
    done.insert(META_SCHEMA, encode(&SCHEMA_VERSION)?);
    done.remove(META_MIGRATING);
    db.apply_batch(done).map_err(io)?;
    tracing::warn!(
        settlements,
        patient_years,
        seconds = started.elapsed().as_secs_f64(),
        "store brought up to layout version 2; the day index is built"
    );
    Ok(())
}

/// What version 1 wrote for a commit: replayed from an older journal before
/// the migration rewrites it.
fn writes_of_v1(batch: &BatchV1) -> Result<sled::Batch, StoreError> {
    let mut writes = sled::Batch::default();
    for settlement in &batch.settlements {
        let id = settlement.id.get().to_be_bytes();
        writes.insert(
            settlement_key(settlement.id),
            encode(&(batch.commit, settlement))?,
        );
        writes.insert(claim_key(settlement.claim.key()), &id);
        let mut index = patient_year_key(settlement.claim.patient_id(), settlement.claim.year());
        index.extend_from_slice(&id);
        writes.insert(index, &[]);
    }
    for (patient, year, usage) in &batch.usages {
        writes.insert(usage_key(patient, *year), encode(&(batch.commit, usage))?);
    }
    for person in &batch.persons {
        writes.insert(person_key(person.id()), encode(&(batch.commit, person))?);
    }
    writes.insert(META_COMMIT, &batch.commit.to_be_bytes());
    writes.insert(META_NEXT_ID, &batch.next_settlement_id.get().to_be_bytes());
    Ok(writes)
}

fn get_u64(db: &sled::Db, key: &[u8]) -> Result<Option<u64>, StoreError> {
    db.get(key)
        .map_err(io)?
        .map(|bytes| be_u64(&bytes))
        .transpose()
}

/// Applies the journal's commits that sled does not hold (those after
/// `held`), in order; returns the last one applied.
fn replay(
    db: &sled::Db,
    held: CommitNumber,
    records: Vec<journal::JournalRecord>,
    schema: u32,
) -> Result<Option<CommitNumber>, StoreError> {
    let mut last = None;
    for record in records.into_iter().filter(|r| r.commit > held) {
        let expected = last.unwrap_or(held) + 1;
        if record.commit != expected {
            return Err(StoreError::Corrupt(format!(
                "the journal resumes at commit {} but the store holds commits up to {}",
                record.commit,
                expected - 1
            )));
        }
        replay_one(db, record.commit, &record.payload, schema)?;
        last = Some(record.commit);
    }
    Ok(last)
}

/// Applies one journal record's batch to the tree, atomically. `schema` is
/// the layout the record was written in: the tree's.
fn replay_one(
    db: &sled::Db,
    commit: CommitNumber,
    payload: &[u8],
    schema: u32,
) -> Result<(), StoreError> {
    let (held, writes) = if schema == legacy::VERSION {
        let batch: BatchV1 = decode(payload)?;
        (batch.commit, writes_of_v1(&batch)?)
    } else {
        let batch: Batch = decode(payload)?;
        (batch.commit, SledStore::writes_of(&batch)?)
    };
    if held != commit {
        return Err(StoreError::Corrupt(format!(
            "journal record {commit} holds commit {held}"
        )));
    }
    db.apply_batch(writes).map_err(io)
}

fn poison(poisoned: &OnceLock<String>, reason: String) -> StoreError {
    let reason = poisoned.get_or_init(|| reason).clone();
    tracing::error!(%reason, "store poisoned: restart the service to recover");
    StoreError::Poisoned(reason)
}

/// The background thread that checkpoints sled while commits arrive, and
/// once more when the store closes.
struct Checkpointer {
    tree: Tree,
    wake: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(
        tree: Tree,
        journal: Arc<Journal>,
        journaled: Arc<AtomicU64>,
        poisoned: Arc<OnceLock<String>>,
        mut done: CommitNumber,
        interval: Duration,
    ) -> Result<Checkpointer, StoreError> {
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let (signal, worker) = (Arc::clone(&wake), tree.clone());
        let thread = std::thread::Builder::new()
            .name("medassist-checkpoint".into())
            .spawn(move || {
                let (lock, condvar) = &*signal;
                loop {
                    let stopping = match lock.lock() {
                        Ok(guard) => condvar
                            .wait_timeout_while(guard, interval, |stop| !*stop)
                            .map(|(guard, _)| *guard)
                            .unwrap_or(true),
                        Err(_) => true,
                    };
                    let commit = journaled.load(Ordering::Acquire);
                    if commit > done && poisoned.get().is_none() {
                        let made = worker
                            .checkpoint(commit)
                            .and_then(|()| journal.release_through(commit));
                        match made {
                            Ok(()) => done = commit,
                            Err(error) => {
                                poison(&poisoned, format!("checkpoint failed: {error}"));
                                return;
                            }
                        }
                    }
                    if stopping {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            tree,
            wake,
            thread: Some(thread),
        })
    }

    /// Takes a last checkpoint and ends the thread.
    fn stop(mut self) {
        if let Ok(mut stop) = self.wake.0.lock() {
            *stop = true;
        }
        self.wake.1.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

fn io(error: sled::Error) -> StoreError {
    StoreError::Io(error.to_string())
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("cannot decode: {e}")))
}

fn settlement_key(id: SettlementId) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(b'S');
    key.extend_from_slice(&id.get().to_be_bytes());
    key
}

fn claim_key(key: &ClaimKey) -> Vec<u8> {
    let hospital = key.hospital_id.as_str().as_bytes();
    let claim = key.claim_id.as_str().as_bytes();
    let mut bytes = Vec::with_capacity(2 + hospital.len() + claim.len());
    bytes.push(b'C');
    // Identifiers are at most 64 bytes, so the length fits one byte and the
    // boundary between hospital and claim is never ambiguous.
    bytes.push(hospital.len() as u8);
    bytes.extend_from_slice(hospital);
    bytes.extend_from_slice(claim);
    bytes
}

fn patient_year_key(patient: &ResidentId, year: Year) -> Vec<u8> {
    let mut key = Vec::with_capacity(29);
    key.push(b'P');
    key.extend_from_slice(patient.as_str().as_bytes());
    key.extend_from_slice(&(year.get() as u16).to_be_bytes());
    key
}

fn usage_key(patient: &ResidentId, year: Year) -> Vec<u8> {
    let mut key = patient_year_key(patient, year);
    key[0] = b'U';
    key
}

/// The start of the day-index keys of one day: of one hospital (`H`) or of
/// every hospital (`D`).
fn day_prefix(hospital: Option<&HospitalId>, day: BusinessDay) -> Vec<u8> {
    let mut key = Vec::with_capacity(78);
    match hospital {
        Some(hospital) => {
            let hospital = hospital.as_str().as_bytes();
            key.push(b'H');
            // At most 64 bytes, as in the claim key.
            key.push(hospital.len() as u8);
            key.extend_from_slice(hospital);
        }
        None => key.push(b'D'),
    }
    key.extend_from_slice(&day.key_bytes());
    key
}

/// The referral index key of a settlement settled on `day`.
fn referral_key(day: BusinessDay, id: SettlementId) -> Vec<u8> {
    let mut key = Vec::with_capacity(13);
    key.push(b'F');
    key.extend_from_slice(&day.key_bytes());
    key.extend_from_slice(&id.get().to_be_bytes());
    key
}

/// The day-index keys of a settlement: `H` and `D` for each of its days.
fn day_keys(settlement: &Settlement) -> impl Iterator<Item = Vec<u8>> + '_ {
    let hospital = &settlement.claim.key().hospital_id;
    settlement.business_days().flat_map(move |day| {
        [Some(hospital), None].map(|which| {
            let mut key = day_prefix(which, day);
            key.extend_from_slice(&settlement.id.get().to_be_bytes());
            key
        })
    })
}

fn person_key(id: &ResidentId) -> Vec<u8> {
    let mut key = Vec::with_capacity(19);
    key.push(b'R');
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

#[cfg(test)]
mod tests {
    //! The migration of a version 1 store, built the way version 1 wrote it:
    //! records in the tree and one more commit only in the journal.

    use super::*;
    use crate::{
        domain::{Claim, ClaimInput, Date, Money, Reason, RegionCode, Timestamp},
        rules,
        store::legacy::ReversalV1,
        verify::verify,
    };

    fn claim(claim_id: &str, sequence: u16) -> Claim {
        let codes = vec!["N18".to_owned()];
        let patient = ResidentId::compose(
            RegionCode::parse("320602").unwrap(),
            Date::parse("1960-01-01").unwrap(),
            sequence,
        );
        Claim::parse(&ClaimInput {
            hospital_id: "H001",
            claim_id,
            patient_id: patient.as_str(),
            admission_date: "2025-11-01",
            discharge_date: "2025-11-20",
            diagnosis_codes: &codes,
            total_cost: "50000",
            in_scope_cost: "42000",
            basic_insurance_paid: "25200",
            critical_illness_paid: "6300",
        })
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::from(text.parse::<chrono::DateTime<chrono::Utc>>().unwrap())
    }

    fn old(id: u64, claim: Claim, settled: &str, reversed: Option<&str>) -> SettlementV1 {
        let outcome = rules::apply_cap(&claim, &rules::assess(&claim, None), Money::ZERO);
        SettlementV1 {
            id: SettlementId::new(id),
            claim,
            outcome,
            settled_at: at(settled),
            reversal: reversed.map(|r| ReversalV1 {
                at: at(r),
                reason: Reason::parse("duplicate").unwrap(),
            }),
        }
    }

    /// A commit of settlements of distinct patients, with their totals.
    fn batch(commit: u64, settlements: Vec<SettlementV1>) -> BatchV1 {
        let usages = settlements
            .iter()
            .map(|s| {
                let usage = match s.reversal {
                    None => UsageV1 {
                        used: s.outcome.assistance,
                        settlement_count: 1,
                    },
                    Some(_) => UsageV1::default(),
                };
                (s.claim.patient_id().clone(), s.claim.year(), usage)
            })
            .collect();
        BatchV1 {
            commit,
            next_settlement_id: SettlementId::new(settlements.last().unwrap().id.get() + 1),
            settlements,
            usages,
            persons: Vec::new(),
        }
    }

    fn days(store: &SledStore, day: &str) -> Vec<u64> {
        let day = BusinessDay::from_date(Date::parse(day).unwrap());
        let hospital = HospitalId::parse("H001").unwrap();
        let by_hospital: Vec<u64> = store
            .settlements_on_days(Some(&hospital), day..=day, None, 100)
            .unwrap()
            .iter()
            .map(|s| s.value.id.get())
            .collect();
        let every: Vec<u64> = store
            .settlements_on_days(None, day..=day, None, 100)
            .unwrap()
            .iter()
            .map(|s| s.value.id.get())
            .collect();
        assert_eq!(by_hospital, every, "one hospital: both indexes agree");
        by_hospital
    }

    /// Proves that opening a version 1 store replays its journal in the old
    /// encoding, rewrites every settlement with its business days, builds
    /// the day index (which `verify` then finds complete), and does it once.
    #[test]
    fn a_version_1_store_is_migrated_once_at_start_up() {
        let dir = tempfile::TempDir::new().unwrap();
        let options = SledOptions {
            utc_offset: Some(UtcOffset::CHINA),
            ..SledOptions::default()
        };
        {
            let first = batch(
                1,
                vec![
                    old(1, claim("C-1", 1), "2025-11-30T15:59:59Z", None),
                    old(
                        2,
                        claim("C-2", 2),
                        "2025-11-30T16:00:00Z",
                        Some("2025-12-02T01:00:00Z"),
                    ),
                ],
            );
            let second = batch(
                2,
                vec![old(3, claim("C-3", 3), "2025-12-01T02:00:00Z", None)],
            );
            SledStore::write_version_1(dir.path(), &[first], &[second]).unwrap();
        }

        let refused = SledStore::open(dir.path(), SledOptions::default()).err();
        assert!(
            matches!(&refused, Some(StoreError::Unsupported(why)) if why.contains("medassist serve")),
            "without the fund's zone an older store is not guessed at: {refused:?}"
        );
        let store = SledStore::open(dir.path(), options).unwrap();
        assert_eq!(store.meta().unwrap().last_commit, 2, "the journal replayed");
        assert_eq!(days(&store, "2025-11-30"), [1]);
        assert_eq!(days(&store, "2025-12-01"), [2, 3]);
        assert_eq!(days(&store, "2025-12-02"), [2], "reversed on a later day");
        let report = verify(&store).unwrap();
        assert!(report.is_consistent(), "{report}");
        assert_eq!(report.day_entries, 8);
        let second = store.settlement(SettlementId::new(2)).unwrap().unwrap();
        assert_eq!(second.value.settled_by, "", "names were never recorded");
        let first = &store
            .settlement(SettlementId::new(1))
            .unwrap()
            .unwrap()
            .value;
        let total = store
            .usage(first.claim.patient_id(), first.claim.year())
            .unwrap()
            .unwrap();
        assert_eq!(
            total.value.patient_pays, first.outcome.patient_pays,
            "what the patient paid is worked out from the settlements"
        );
        drop(store);

        let db = open_sled(dir.path(), options).unwrap();
        assert_eq!(stored_schema(&db).unwrap(), SCHEMA_VERSION);
        assert_eq!(db.get(META_MIGRATING).unwrap(), None);
        drop(db);
        let again = SledStore::open(dir.path(), options).unwrap();
        assert!(verify(&again).unwrap().is_consistent());
    }

    /// Proves an interrupted migration resumes where it stopped: one step
    /// of one patient-year is made (settlements rewritten, marker set), the
    /// store is closed, and opening finishes the rest without touching (or
    /// misreading) what was already rewritten.
    #[test]
    fn an_interrupted_migration_resumes_after_the_last_step() {
        let dir = tempfile::TempDir::new().unwrap();
        let options = SledOptions {
            utc_offset: Some(UtcOffset::CHINA),
            ..SledOptions::default()
        };
        let commit = batch(
            1,
            vec![
                old(1, claim("M-1", 11), "2025-11-30T01:00:00Z", None),
                old(2, claim("M-2", 12), "2025-11-30T02:00:00Z", None),
                old(3, claim("M-3", 13), "2025-12-01T02:00:00Z", None),
            ],
        );
        SledStore::write_version_1(dir.path(), &[commit], &[]).unwrap();
        {
            let db = open_sled(dir.path(), options).unwrap();
            migrate_v1_steps(&db, UtcOffset::CHINA, 1, Some(1)).unwrap();
            assert!(
                db.get(META_MIGRATING).unwrap().is_some(),
                "stopped half-way"
            );
            assert_eq!(stored_schema(&db).unwrap(), legacy::VERSION);
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path(), options).unwrap();
        assert_eq!(days(&store, "2025-11-30"), [1, 2]);
        assert_eq!(days(&store, "2025-12-01"), [3]);
        let report = verify(&store).unwrap();
        assert!(report.is_consistent(), "{report}");
        assert_eq!(report.day_entries, 6);
        for id in 1..=3 {
            let s = store
                .settlement(SettlementId::new(id))
                .unwrap()
                .unwrap()
                .value;
            let total = store
                .usage(s.claim.patient_id(), s.claim.year())
                .unwrap()
                .unwrap();
            assert_eq!(total.value.patient_pays, s.outcome.patient_pays);
        }
    }
}
