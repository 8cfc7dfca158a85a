//! The embedded store: one sled tree, written key by key per commit, made
//! durable by the journal before any answer, and rebuildable from a base
//! copy and the journal whatever a power cut does to sled's files.
//!
//! sled 0.34 is not durable by itself: its flush writes the log with
//! `sync_file_range` (no file metadata, no drive cache flush), it never
//! syncs the directory it creates files in, and it reuses log segments, so
//! a power cut on a disk with a write-back cache can tear pages of its log
//! that were on disk long before. So:
//!
//! - `apply` writes the batch into sled key by key (records before the
//!   index entries that point to them, see [`Writes`]) and stages its
//!   encoded record in the [`Journal`];
//! - `flush` writes the staged records with one `pwrite` and waits for one
//!   `fdatasync`: the ledger answers only after it;
//! - a background thread writes a new base copy of the whole store (see
//!   [`super::base`]) once the journal since the last one has grown, and
//!   then drops the journal segments it holds;
//! - closing syncs sled's files and records a clean stop in the
//!   `checkpoint` file; opening trusts sled's files only after a clean
//!   stop, and otherwise rebuilds them from the base copy and the journal
//!   ([`recovery`] has the whole table).
//!
//! Data directory: sled's own files (`db`, `conf`, `snap.*`, `blobs/`) at the
//! top, `journal/`, `base.snapshot`, `checkpoint` and `lock` beside them.
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
//! (see [`super::legacy`]). Version 3 appended the 2021 framework's fields
//! to the records; a version 2 store is only marked 3 (see
//! `BEFORE_CLASSES`). Version 4 appended the application to the settlement
//! record; a version 2 or 3 store is only marked 4 (see
//! `BEFORE_APPLICATIONS`).

#[cfg(test)]
mod layout_tests;
mod recovery;

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    io::Write,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Serialize, de::DeserializeOwned};

use super::legacy::{
    self, BATCH_TAG_V3, BatchV1, BatchV2, BatchV3, BatchWithoutAudit, SettlementV1, SettlementV2,
    SettlementV3, UsageV1, UsageV2,
};
use super::{
    AuditPage, Batch, CommitNumber, CommitStep, FaultPlan, Meta, Scan, ScanIter, Store, StoreError,
    StoreObserver, Versioned,
    audit_log::AuditLog,
    base::{self, BaseCopy},
    checkpoint::{self, sync_dir, sync_tree},
    journal::{self, Journal, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN},
    snapshot::{self, SnapshotSummary, SnapshotWriter},
};
use crate::domain::{
    BusinessDay, ClaimId, ClaimKey, HospitalId, Money, Person, RegionCode, ResidentId, Settlement,
    SettlementId, Usage, UtcOffset, Year,
};
use recovery::{BaseKeeper, Closing};

/// The layout version this code reads and writes.
const SCHEMA_VERSION: u32 = 4;
/// Layout 2: the days and names on settlements. Layout 3 writes records the
/// same way, with the 2021 framework's fields appended (claim kind,
/// breakdown, the running total's deductible and band position), which
/// this build reads whether they are there or not. A build of layout 2
/// would read them too, dropping those fields, and rewrite running totals
/// without them: so a layout 2 store is marked 3 when this build opens it,
/// and such builds refuse it from then on.
const BEFORE_CLASSES: u32 = 2;
/// Layout 3: the 2021 framework's fields. Layout 4 appends the application
/// (依申请救助) to each settlement record and tags its journal batches
/// anew ([`super::BATCH_TAG`]); a build of layout 3 would read today's
/// records dropping the application, so a layout 3 store is marked 4 when
/// this build opens it, as a layout 2 one is.
const BEFORE_APPLICATIONS: u32 = 3;
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
const NOT_SLEDS: &[&str] = &[
    JOURNAL_DIR,
    checkpoint::FILE_NAME,
    checkpoint::TEMPORARY_NAME,
    base::FILE_NAME,
    base::TEMPORARY_NAME,
    recovery::LOCK_NAME,
];
/// Most audit records one page reads to find its matches.
const AUDIT_SCAN_MAX: usize = 1_000_000;
/// The base copy written when nothing else sets its size.
pub const REBASE_AFTER_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Tuning of the embedded store.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// Bytes of page cache sled may keep in memory.
    pub cache_bytes: u64,
    /// Size of each journal segment file.
    pub journal_segment_bytes: u64,
    /// A new base copy is written once the journal after the last one holds
    /// this many bytes, or as many as the base copy itself if that is more:
    /// the journal then stays within the size of the store (plus this), and
    /// so does the time a rebuild replays it.
    pub rebase_after_bytes: u64,
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
            rebase_after_bytes: REBASE_AFTER_BYTES_DEFAULT,
            utc_offset: None,
        }
    }
}

/// What the store's threads share: the tree, the journal, how far each
/// reaches, and whether a failure stopped the store.
#[derive(Clone)]
struct Core {
    db: sled::Db,
    dir: PathBuf,
    journal: Arc<Journal>,
    /// Set when a commit failed after it may have changed the tree: from
    /// then on nothing is read or written until the service restarts, so no
    /// one sees (or builds on) a write that is not durable.
    poisoned: Arc<OnceLock<String>>,
    /// The last commit the journal holds durably.
    journaled: Arc<AtomicU64>,
    /// The last commit applied to the tree (durable or not yet), counted
    /// as soon as its application begins.
    applied: Arc<AtomicU64>,
    /// Told of each base copy, for the metrics.
    observer: Arc<OnceLock<Arc<dyn StoreObserver>>>,
    /// The audit trail's files.
    audit: Arc<AuditLog>,
}

impl Core {
    /// Writes a consistent snapshot of the whole tree to `out` while writes
    /// go on (see [`super::snapshot`]).
    fn save_snapshot(
        &self,
        out: &mut dyn Write,
        taken_at_micros: i64,
    ) -> Result<SnapshotSummary, StoreError> {
        if let Some(reason) = self.poisoned.get() {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        let base = self.journaled.load(Ordering::Acquire);
        let _kept = self.journal.pin(base)?;
        let failed = |e: std::io::Error| StoreError::Io(format!("snapshot: {e}"));
        let mut writer = SnapshotWriter::start(out, base, taken_at_micros).map_err(failed)?;
        for entry in self.db.iter() {
            let (key, value) = entry.map_err(io)?;
            writer.entry(&key, &value).map_err(failed)?;
        }
        // Every commit the copy may have seen was counted as applied before
        // it reached the tree; once it is durable, the journal completes
        // every commit the copy caught half-way.
        let last = self.applied.load(Ordering::SeqCst);
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

    /// Waits (briefly: a commit takes milliseconds) until `commit` is durable.
    fn await_journaled(&self, commit: CommitNumber) -> Result<(), StoreError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.journaled.load(Ordering::Acquire) < commit {
            if let Some(reason) = self.poisoned.get() {
                return Err(StoreError::Poisoned(reason.clone()));
            }
            if Instant::now() > deadline {
                return Err(StoreError::Io(format!(
                    "commit {commit} did not become durable within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Writes a new base copy, then drops the journal segments it holds.
    fn write_base(&self) -> Result<BaseCopy, StoreError> {
        let started = Instant::now();
        let taken_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let written = base::write(&self.dir, |out| self.save_snapshot(out, taken_at)).and_then(
            |(summary, bytes)| {
                self.journal.release_through(summary.last_commit)?;
                Ok(BaseCopy {
                    last_commit: summary.last_commit,
                    bytes,
                })
            },
        );
        let seconds = started.elapsed().as_secs_f64();
        if let Some(observer) = self.observer.get() {
            observer.base_written(
                written
                    .as_ref()
                    .map(|copy| (seconds, copy.bytes))
                    .map_err(|_| ()),
            );
        }
        if let Ok(copy) = &written {
            tracing::info!(
                commit = copy.last_commit,
                bytes = copy.bytes,
                seconds,
                "wrote a base copy of the store"
            );
        }
        written
    }
}

/// The embedded store, on sled 0.34 (the stable line).
pub struct SledStore {
    core: Core,
    keeper: Option<BaseKeeper>,
    /// Injected failures, for tests only.
    faults: Option<Arc<dyn FaultPlan>>,
    /// Declared last: dropped after the tree (see [`Closing`]).
    closing: Closing,
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and recovers it: from sled's
    /// files after a clean stop, else rebuilt from the base copy and the
    /// journal. Refuses a store that holds fewer commits than were
    /// acknowledged, saying why.
    pub fn open(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        if options.journal_segment_bytes < SEGMENT_BYTES_MIN {
            return Err(StoreError::Io(format!(
                "journal segments must be at least {SEGMENT_BYTES_MIN} bytes"
            )));
        }
        recovery::open(dir, options)
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
        poison(&self.core.poisoned, reason)
    }

    fn healthy(&self) -> Result<(), StoreError> {
        match self.core.poisoned.get() {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    fn get_versioned<T: Stored>(&self, key: &[u8]) -> Result<Option<Versioned<T>>, StoreError> {
        self.healthy()?;
        self.core
            .db
            .get(key)
            .map_err(io)?
            .map(|bytes| versioned(&bytes))
            .transpose()
    }

    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        get_u64(&self.core.db, key)
    }

    /// Encodes every write of the batch before touching the tree, so an
    /// encoding failure changes nothing.
    fn writes_of(batch: &Batch) -> Result<Writes, StoreError> {
        let mut writes = Writes::default();
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

    fn persons(&self, after: Option<&ResidentId>) -> ScanIter<'_, Versioned<Person>> {
        let Some(after) = after else {
            return self.scan_persons();
        };
        if let Err(error) = self.healthy() {
            return Box::new(std::iter::once(Err(error)));
        }
        let from = person_key(after);
        Box::new(
            self.core
                .db
                .range(from.clone()..)
                .skip_while(move |entry| entry.as_ref().is_ok_and(|(key, _)| key[..] == from[..]))
                .take_while(|entry| {
                    entry
                        .as_ref()
                        .map_or(true, |(key, _)| key.starts_with(b"R"))
                })
                .map(|entry| versioned(&entry.map_err(io)?.1)),
        )
    }

    fn settlements(&self) -> ScanIter<'_, Versioned<Settlement>> {
        self.scan_settlements()
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
        for entry in self.core.db.range(start..).take(limit) {
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
                entries: self.core.db.range(start..),
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
        for entry in self.core.db.range(start..end) {
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
        if record.len() > self.core.journal.payload_max() {
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
        // Counted as applied before the tree holds any of it: a snapshot's
        // copy walks the tree while batches land, and replays from the
        // journal every commit up to this count once the walk is done. A
        // batch counted only after it landed could be half seen by the walk
        // and missing from the replay (a restored snapshot then held a
        // settlement without its claim key).
        self.core.applied.store(batch.commit, Ordering::SeqCst);
        // Key by key, in the order of `Writes`: a reader that finds an index
        // entry finds the record it points to.
        writes
            .write_to(&self.core.db)
            .map_err(|error| self.poison(error.to_string()))?;
        // The tree now holds the batch: if it cannot reach the journal (and
        // its audit records the trail), it must not be served.
        self.core
            .journal
            .stage(batch.commit, &record)
            .and_then(|()| self.core.audit.append(batch.commit, &batch.audit))
            .map_err(|error| self.poison(error.to_string()))
    }

    fn save_snapshot(
        &self,
        out: &mut dyn Write,
        taken_at_micros: i64,
    ) -> Result<SnapshotSummary, StoreError> {
        self.core.save_snapshot(out, taken_at_micros)
    }

    fn observe(&self, observer: Arc<dyn StoreObserver>) {
        let _ = self.core.observer.set(observer);
    }

    fn audit_head(&self) -> Result<crate::audit::Head, StoreError> {
        self.healthy()?;
        self.core.audit.head()
    }

    fn audit_records(
        &self,
        query: &crate::audit::Query,
        after: Option<crate::audit::Cursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.healthy()?;
        let mut page = AuditPage::default();
        let mut scanned = 0;
        self.core
            .audit
            .scan(after.map_or(0, |cursor| cursor.seq), query.from, |record| {
                scanned += 1;
                let position = crate::audit::Cursor::of(&record);
                let past = record.event.at > query.to;
                if query.matches(&record) {
                    page.records.push(record);
                }
                // Sequence order is the order answers were sealed in: a
                // record past the range ends the query.
                let full = page.records.len() >= limit || scanned >= AUDIT_SCAN_MAX;
                if full && !past {
                    page.next = Some(position);
                }
                Ok(!full && !past)
            })?;
        Ok(page)
    }

    fn prune_audit(&self, before: crate::domain::Timestamp) -> Result<u64, StoreError> {
        self.healthy()?;
        self.core.audit.prune(before)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.healthy()?;
        let synced = if self.fails(CommitStep::AtFlush) {
            Err("injected failure at the flush".to_owned())
        } else {
            self.core.journal.sync().map_err(|e| e.to_string())
        };
        // A failed sync leaves the tree holding writes that are not durable,
        // and (as PostgreSQL learned) a retried fsync cannot be trusted: stop
        // serving. Restarting recovers the last durable state.
        if let Some(commit) = synced.map_err(|reason| self.poison(reason))? {
            self.core.journaled.store(commit, Ordering::Release);
        }
        Ok(())
    }
}

impl SledStore {
    /// Makes a new data directory `dir` from the snapshot `source` reads
    /// (see [`snapshot::Source`]), after checking it whole: a damaged or
    /// truncated one, or one the source cannot open, is refused and nothing
    /// is written. `dir` must be missing or empty. The snapshot becomes the
    /// store's base copy, from which the store is built once.
    pub fn restore_snapshot(
        source: snapshot::Source<'_>,
        dir: &Path,
        options: SledOptions,
    ) -> Result<SnapshotSummary, StoreError> {
        recovery::restore(source, dir, options)
    }

    /// Writes a new data directory `dir` as version 1 of this service did:
    /// the commits of `in_tree` in sled, synced, with a checkpoint of the
    /// first format naming the last of them, and those of `in_journal` only
    /// in the journal (as when the service stopped before sled's next
    /// checkpoint). Only for tests of the migration of older stores; the
    /// service never calls it.
    #[doc(hidden)]
    pub fn write_version_1(
        dir: &Path,
        in_tree: &[BatchV1],
        in_journal: &[BatchV1],
    ) -> Result<(), StoreError> {
        let options = SledOptions::default();
        create_data_dir(dir)?;
        let db = open_sled(dir, options)?;
        db.insert(META_SCHEMA, encode(&legacy::VERSION)?)
            .map_err(io)?;
        for batch in in_tree {
            writes_of_v1(batch)?.write_to(&db).map_err(io)?;
        }
        db.flush().map_err(io)?;
        drop(db);
        sync_tree(dir, NOT_SLEDS)?;
        let checkpointed = in_tree.last().map_or(0, |batch| batch.commit);
        checkpoint::write(dir, checkpoint::Checkpoint::Legacy(checkpointed))?;
        let journal = Journal::resume(
            &dir.join(JOURNAL_DIR),
            SEGMENT_BYTES_MIN,
            &journal::Recovered::default(),
        )?;
        for batch in in_journal {
            journal.stage(batch.commit, &encode(batch)?)?;
        }
        journal.sync()?;
        Ok(())
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.stop();
        }
        if self.core.poisoned.get().is_some() {
            // The next start rebuilds from what is durable.
            return;
        }
        let flushed = self
            .core
            .journal
            .sync()
            .and_then(|_| self.core.db.flush().map_err(io))
            .and_then(|_| self.core.audit.sync());
        match flushed {
            Ok(_) => self.closing.clean = Some(self.core.applied.load(Ordering::Acquire)),
            Err(error) => {
                tracing::error!(%error, "cannot close the store cleanly: it will be rebuilt at the next start")
            }
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
        Box::new(self.core.db.scan_prefix(prefix).map(move |entry| {
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

/// A value of the tree: read in today's layout, or in the one before the
/// 2021 framework's fields. Those were added at the end of the value, so an
/// earlier value is today's cut short: it fails to decode as today's where
/// they begin, and is then read as it was written and brought up to date.
trait Stored: DeserializeOwned {
    /// The value read in the earlier layout, if this type had one.
    fn earlier(bytes: &[u8]) -> Option<Result<(CommitNumber, Self), StoreError>> {
        let _ = bytes;
        None
    }
}

impl Stored for Person {}

impl Stored for Settlement {
    fn earlier(bytes: &[u8]) -> Option<Result<(CommitNumber, Self), StoreError>> {
        Some(
            decode::<(CommitNumber, SettlementV3)>(bytes)
                .map(|(c, s)| (c, s.upgrade()))
                .or_else(|_| {
                    decode::<(CommitNumber, SettlementV2)>(bytes).map(|(c, s)| (c, s.upgrade()))
                }),
        )
    }
}

impl Stored for Usage {
    fn earlier(bytes: &[u8]) -> Option<Result<(CommitNumber, Self), StoreError>> {
        Some(decode::<(CommitNumber, UsageV2)>(bytes).map(|(c, u)| (c, u.upgrade())))
    }
}

fn versioned<T: Stored>(bytes: &[u8]) -> Result<Versioned<T>, StoreError> {
    let (commit, value) = match decode::<(CommitNumber, T)>(bytes) {
        Ok(read) => read,
        Err(error) => match T::earlier(bytes) {
            Some(Ok(read)) => read,
            _ => return Err(error),
        },
    };
    Ok(Versioned { value, commit })
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
        // sled writes its log out every second: not durable (the journal
        // is), but it keeps sled's memory flat.
        .flush_every_ms(Some(1000))
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
/// read to be migrated, version 2 to be marked 3; anything else is refused.
fn check_schema(db: &sled::Db) -> Result<u32, StoreError> {
    match db.get(META_SCHEMA).map_err(io)? {
        Some(bytes) => known_schema(decode(&bytes)?),
        // Made durable by the checkpoint that ends opening.
        None => {
            db.insert(META_SCHEMA, encode(&SCHEMA_VERSION)?)
                .map_err(io)?;
            Ok(SCHEMA_VERSION)
        }
    }
}

/// `version` if this build reads it; a newer build's layout is refused.
fn known_schema(version: u32) -> Result<u32, StoreError> {
    match version {
        legacy::VERSION | BEFORE_CLASSES | BEFORE_APPLICATIONS | SCHEMA_VERSION => Ok(version),
        // Not damage: nothing may be rebuilt or thrown away over it.
        _ => Err(StoreError::Unsupported(format!(
            "data directory has layout version {version}; this build reads layouts {} to \
             {SCHEMA_VERSION} (a newer medassist wrote it: run that one, or restore a snapshot \
             taken before)",
            legacy::VERSION
        ))),
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
/// migration resumes there. Then marks the store this build's version. The journal was
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
        "store brought up to layout version {SCHEMA_VERSION}; the day index is built"
    );
    Ok(())
}

/// What version 1 wrote for a commit: replayed from an older journal before
/// the migration rewrites it.
fn writes_of_v1(batch: &BatchV1) -> Result<Writes, StoreError> {
    let mut writes = Writes::default();
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

/// Applies one journal record's batch to the tree. `schema` is
/// the layout the record was written in: the tree's. (Its audit records are
/// the trail's: see [`recovery`].)
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
        let batch = decode_batch(payload)?;
        (batch.commit, SledStore::writes_of(&batch)?)
    };
    if held != commit {
        return Err(StoreError::Corrupt(format!(
            "journal record {commit} holds commit {held}"
        )));
    }
    writes.write_to(db).map_err(io)
}

/// One commit's writes to the tree, made one key at a time in the order
/// they were added: each record before the index entries that point to it,
/// and the meta keys (the last commit) last. So a reader that finds an index
/// entry finds its record, and one that reads a commit number in `M` finds
/// that commit whole.
///
/// Not a `sled::Batch`: sled 0.34's `apply_batch` seals its log buffer
/// before and after every batch (`PageCache::pin_log`), so each commit cost
/// two log writes, each waited for with `sync_file_range` on sled's I/O
/// threads, competing on the disk with the journal's `fdatasync` that the
/// answer waits for. Nothing needs a batch's atomicity: sled's files are
/// trusted only after a clean stop (otherwise they are rebuilt from the base
/// copy and the journal), and one key's write is atomic to its readers.
#[derive(Default)]
struct Writes(Vec<(sled::IVec, Option<sled::IVec>)>);

impl Writes {
    fn insert(&mut self, key: impl Into<sled::IVec>, value: impl Into<sled::IVec>) {
        self.0.push((key.into(), Some(value.into())));
    }

    fn remove(&mut self, key: impl Into<sled::IVec>) {
        self.0.push((key.into(), None));
    }

    fn write_to(self, db: &sled::Db) -> sled::Result<()> {
        for (key, value) in self.0 {
            match value {
                Some(value) => db.insert(key, value)?,
                None => db.remove(key)?,
            };
        }
        Ok(())
    }
}

/// A batch as the journal or a snapshot holds it: today's (it begins with
/// [`super::BATCH_TAG`]), one written before the 2021 framework's fields, or
/// one written before commits carried audit records (which ends where they
/// would begin).
fn decode_batch(payload: &[u8]) -> Result<Batch, StoreError> {
    match postcard::take_from_bytes::<u64>(payload) {
        Ok((super::BATCH_TAG, _)) => return decode::<Batch>(payload),
        Ok((BATCH_TAG_V3, _)) => return decode::<BatchV3>(payload).map(BatchV3::upgrade),
        _ => {}
    }
    decode::<BatchV2>(payload)
        .map(BatchV2::upgrade)
        .or_else(|error| {
            decode::<BatchWithoutAudit>(payload)
                .map(BatchWithoutAudit::upgrade)
                .map_err(|_| error)
        })
}

fn poison(poisoned: &OnceLock<String>, reason: String) -> StoreError {
    let reason = poisoned.get_or_init(|| reason).clone();
    tracing::error!(%reason, "store poisoned: restart the service to recover");
    StoreError::Poisoned(reason)
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
            claim_kind: Default::default(),
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
