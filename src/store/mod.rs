//! Storage: where settlements, running totals and the roster live.
//!
//! The store only stores. It knows nothing of the rules; it applies what the
//! ledger hands it atomically, makes it durable when asked, and answers
//! reads. The trait is small so that another backend (a networked database)
//! can stand in for the embedded one, [`SledStore`].
//!
//! Applying and flushing are separate so the ledger can apply the next batch
//! while the previous one is being flushed; a backend whose writes are
//! durable as soon as they are applied makes `flush` a no-op.
//!
//! Every stored value carries the number of the commit that wrote it
//! ([`Versioned`]). The ledger publishes which commits are durable, and
//! readers wait until the value they read is, so no caller ever sees a write
//! that a crash could still take back.

pub mod audit_log;
pub mod base;
pub mod checkpoint;
pub mod journal;
pub mod legacy;
pub mod postgres;
mod sled_store;
pub mod snapshot;

pub use postgres::{PostgresStore, Schema};
pub use sled_store::{REBASE_AFTER_BYTES_DEFAULT, SledOptions, SledStore};

thread_local! {
    /// Set while [`catch_damage`] runs on this thread: a panic there is
    /// reported by its caller as damage, in one line.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work`, turning a panic inside it (sled's, reading damaged files)
/// into `Err` with the panic's message, which the caller reports as
/// damage. While it runs, the process's panic hook stays quiet for this
/// thread (see [`panic_is_caught`]).
pub fn catch_damage<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    CATCHING.with(|flag| flag.set(true));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    CATCHING.with(|flag| flag.set(false));
    caught.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message")
            .to_owned()
    })
}

/// True while this thread runs [`catch_damage`]: a panic hook then leaves
/// the report to the caller.
pub fn panic_is_caught() -> bool {
    CATCHING.with(|flag| flag.get())
}

/// Items of a full scan; each may fail on its own (a damaged record).
pub type ScanIter<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + 'a>;

use std::ops::RangeInclusive;

use crate::domain::{
    BusinessDay, ClaimKey, HospitalId, Person, RegionCode, ResidentId, Settlement, SettlementId,
    Usage, Year,
};

/// The number of one atomic commit; commits are numbered 1, 2, 3, ... in order.
pub type CommitNumber = u64;

/// A stored value and the commit that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// The commit that wrote it.
    pub commit: CommitNumber,
}

/// Where the ledger left off, read once when the service starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The last commit that was made (0 for a new store).
    pub last_commit: CommitNumber,
    /// The number the next new settlement gets.
    pub next_settlement_id: SettlementId,
}

/// The first number of a batch as the journal and snapshots hold it since
/// settlements carry applications: no commit number of an earlier batch
/// ever was this, nor is it [`legacy::BATCH_TAG_V3`], so a reader tells the
/// layouts apart by it (see [`legacy`]).
pub const BATCH_TAG: u64 = u64::MAX - 1;

/// Everything one batch writes, applied all together or not at all. It is
/// also the journal's record of the commit, encoded after [`BATCH_TAG`].
#[derive(Clone, Debug)]
pub struct Batch {
    /// This commit's number: one more than the last.
    pub commit: CommitNumber,
    /// The settlement number counter after this commit.
    pub next_settlement_id: SettlementId,
    /// Settlements created or changed (reversed), with their claim keys.
    pub settlements: Vec<Settlement>,
    /// Running totals changed, by patient and cap year.
    pub usages: Vec<(ResidentId, Year, Usage)>,
    /// Roster records created or replaced.
    pub persons: Vec<Person>,
    /// Audit records sealed with this commit: of the writes in it, and of
    /// reads answered since the last commit.
    pub audit: Vec<crate::audit::Record>,
}

impl serde::Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (
            BATCH_TAG,
            self.commit,
            self.next_settlement_id,
            &self.settlements,
            &self.usages,
            &self.persons,
            &self.audit,
        )
            .serialize(serializer)
    }
}

/// The fields of a batch after its tag, in order.
type BatchFields = (
    u64,
    CommitNumber,
    SettlementId,
    Vec<Settlement>,
    Vec<(ResidentId, Year, Usage)>,
    Vec<Person>,
    Vec<crate::audit::Record>,
);

impl<'de> serde::Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (tag, commit, next_settlement_id, settlements, usages, persons, audit) =
            BatchFields::deserialize(deserializer)?;
        if tag != BATCH_TAG {
            return Err(serde::de::Error::custom(
                "not a batch of this layout (an earlier one: see store::legacy)",
            ));
        }
        Ok(Batch {
            commit,
            next_settlement_id,
            settlements,
            usages,
            persons,
            audit,
        })
    }
}

impl Batch {
    /// An empty commit that follows `meta`.
    pub fn after(meta: Meta) -> Batch {
        Batch {
            commit: meta.last_commit + 1,
            next_settlement_id: meta.next_settlement_id,
            settlements: Vec::new(),
            usages: Vec::new(),
            persons: Vec::new(),
            audit: Vec::new(),
        }
    }

    /// True when the commit would write nothing.
    pub fn is_empty(&self) -> bool {
        self.settlements.is_empty()
            && self.usages.is_empty()
            && self.persons.is_empty()
            && self.audit.is_empty()
    }
}

/// Why the store could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk or the database failed and nothing was changed: retrying is safe.
    #[error("storage failed: {0}")]
    Io(String),
    /// Stored bytes could not be read back: the data directory is damaged.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A commit failed after it may have changed the store (for example at
    /// the flush). Nothing more is served until the service restarts and the
    /// store recovers its last durable state from its log.
    #[error("storage failed ({0}); restart the service to recover")]
    Poisoned(String),
    /// The store cannot do this at all (it is another backend's job).
    #[error("{0}")]
    Unsupported(String),
    /// Another instance wrote the same rows at the same moment (a lock
    /// cycle, a serialization failure, or the same new claim key) and the
    /// database undid this transaction. Nothing was written: the ledger runs
    /// the batch again.
    #[error("another instance changed the same records: {0}")]
    Contended(String),
}

/// A page of the audit trail (see [`Store::audit_records`]).
#[derive(Clone, Debug, Default)]
pub struct AuditPage {
    /// The records found, in the order stored.
    pub records: Vec<crate::audit::Record>,
    /// Where the next page starts, if the trail may go on.
    pub next: Option<crate::audit::Cursor>,
}

/// What one batch will read, known before it runs, so that a shared store
/// can lock all of it in one round trip (see [`Store::begin`]).
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Claim keys settled or reversed.
    pub claims: Vec<ClaimKey>,
    /// Patient-years whose running totals new settlements charge.
    pub patient_years: Vec<(ResidentId, Year)>,
    /// Roster records an import compares against, locked.
    pub persons: Vec<ResidentId>,
    /// Roster records the batch assesses claims on, read without a lock.
    pub roster: Vec<ResidentId>,
    /// Most new settlements the batch can create (its settle requests).
    pub new_settlements: usize,
}

/// One batch's transaction on a store that other processes write too. Its
/// reads see committed data and lock what they read until [`Txn::commit`],
/// so the rules decide on totals no other instance can change meanwhile.
pub trait Txn {
    /// The settlement under a claim key, locked.
    fn settlement_by_claim(&mut self, key: &ClaimKey) -> Result<Option<Settlement>, StoreError>;
    /// A patient's running total for a cap year, locked; `None` before the
    /// first settlement.
    fn usage(&mut self, patient: &ResidentId, year: Year) -> Result<Option<Usage>, StoreError>;
    /// A roster record as committed: locked if the plan named it among
    /// [`Plan::persons`] or did not name it at all.
    fn person(&mut self, id: &ResidentId) -> Result<Option<Person>, StoreError>;
    /// A number for a new settlement, unique across every instance.
    fn settlement_id(&mut self) -> Result<SettlementId, StoreError>;
    /// Writes the batch inside the transaction.
    fn apply(&mut self, batch: &Batch) -> Result<(), StoreError>;
    /// Commits durably (or, with nothing applied, just ends the transaction).
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A step of a commit at which a test can make it fail (see [`FaultPlan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStep {
    /// After the batch is encoded, before anything is written.
    BeforeWrite,
    /// When the batch is applied to the tree: the tree refuses it and
    /// nothing is written.
    AtApply,
    /// After the batch applied, instead of the flush: the writes are in the
    /// tree but not durable.
    AtFlush,
}

/// Decides whether a commit step fails. Production stores have none; tests
/// use it to prove that every failure leaves no partial state and that a
/// retry after recovery settles exactly once.
pub trait FaultPlan: Send + Sync + 'static {
    /// True when the commit should fail at `step`.
    fn fails(&self, step: CommitStep) -> bool;
}

/// Told what the store does in the background, for the metrics: the store
/// only stores, and does not know the metrics registry.
pub trait StoreObserver: Send + Sync + 'static {
    /// A base copy was written (in `seconds`, of `bytes`), or failed.
    fn base_written(&self, result: Result<(f64, u64), ()>);
}

/// The operations the ledger and the readers need.
pub trait Store: Send + Sync + 'static {
    /// Where the ledger left off.
    fn meta(&self) -> Result<Meta, StoreError>;

    /// One person's roster record.
    fn person(&self, id: &ResidentId) -> Result<Option<Versioned<Person>>, StoreError>;

    /// One settlement, by its number.
    fn settlement(&self, id: SettlementId) -> Result<Option<Versioned<Settlement>>, StoreError>;

    /// One settlement, by its claim key.
    fn settlement_by_claim(
        &self,
        key: &ClaimKey,
    ) -> Result<Option<Versioned<Settlement>>, StoreError>;

    /// A patient's running total for a cap year; `None` before the first settlement.
    fn usage(
        &self,
        patient: &ResidentId,
        year: Year,
    ) -> Result<Option<Versioned<Usage>>, StoreError>;

    /// Up to `limit` settlements of a patient's cap year, oldest first,
    /// starting after `after`.
    fn settlements_of(
        &self,
        patient: &ResidentId,
        year: Year,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError>;

    /// Up to `limit` settlements settled or reversed on the business days
    /// `days` (of one hospital, or of all when `hospital` is `None`), in
    /// number order, each once, starting after `after`. Reads the day index:
    /// the cost follows the days and the settlements returned, not the store.
    fn settlements_on_days(
        &self,
        hospital: Option<&HospitalId>,
        days: RangeInclusive<BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError>;

    /// Up to `limit` settlements referred to temporary assistance and not
    /// reversed, of `region` (a city takes in its counties), settled on the
    /// business days `days`, oldest first, starting after `after`.
    fn referrals(
        &self,
        region: RegionCode,
        days: RangeInclusive<BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError>;

    /// Writes the whole batch atomically: afterwards every read sees all of
    /// it, and on failure none of it. Not yet durable.
    fn apply(&self, batch: &Batch) -> Result<(), StoreError>;

    /// Makes every batch applied so far durable; returns once it is.
    fn flush(&self) -> Result<(), StoreError>;

    /// True when other processes write this store too: nothing read from it
    /// may then be cached, because another instance may change it.
    fn shared(&self) -> bool {
        false
    }

    /// Opens the transaction one batch runs in, on a shared store; `None`
    /// for a store only this process writes, which the ledger reads
    /// directly and commits with [`Store::apply`] and [`Store::flush`].
    fn begin(&self, plan: &Plan) -> Result<Option<Box<dyn Txn + '_>>, StoreError> {
        let _ = plan;
        Ok(None)
    }

    /// Where this process's audit chain stands: the chain the ledger seals
    /// records into, from the last record stored (the embedded store keeps
    /// one chain for ever; a shared store starts one per instance's run).
    fn audit_head(&self) -> Result<crate::audit::Head, StoreError>;

    /// Up to `limit` audit records that answer `query`, after `after` (from
    /// the start when `None`). A page that stops early says where it got
    /// to in [`AuditPage::next`], also when it found little: a store that
    /// must read records to filter them bounds how many it reads per page.
    fn audit_records(
        &self,
        query: &crate::audit::Query,
        after: Option<crate::audit::Cursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError>;

    /// Removes audit records older than `before` (whole segments or rows),
    /// keeping the chain checkable from the first kept; returns how many.
    fn prune_audit(&self, before: crate::domain::Timestamp) -> Result<u64, StoreError>;

    /// Registers who is told of the store's background work (once; later
    /// calls are ignored). Stores with none do nothing.
    fn observe(&self, observer: std::sync::Arc<dyn StoreObserver>) {
        let _ = observer;
    }

    /// Whether the store can be reached now, for a store across a network:
    /// the server reports `NOT_SERVING` while it is `false`.
    fn availability(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }

    /// Every roster record after patient `after` (from the first when
    /// `None`), ordered by patient ID, read as it streams (a record written
    /// during the scan may or may not be in it).
    fn persons(&self, after: Option<&ResidentId>) -> ScanIter<'_, Versioned<Person>> {
        let _ = after;
        Box::new(std::iter::once(Err(StoreError::Unsupported(
            "this store cannot list the roster".into(),
        ))))
    }

    /// Every settlement, by number, read as it streams (a settlement written
    /// during the scan may or may not be in it): what a policy simulation
    /// replays on a running service.
    fn settlements(&self) -> ScanIter<'_, Versioned<Settlement>> {
        Box::new(std::iter::once(Err(StoreError::Unsupported(
            "this store cannot list its settlements".into(),
        ))))
    }
    /// Writes a consistent snapshot of the whole store to `out` while
    /// writes go on (see [`snapshot`]); `taken_at_micros` is recorded in it.
    fn save_snapshot(
        &self,
        out: &mut dyn std::io::Write,
        taken_at_micros: i64,
    ) -> Result<snapshot::SnapshotSummary, StoreError> {
        let _ = (out, taken_at_micros);
        Err(StoreError::Unsupported(
            "this store does not take snapshots".into(),
        ))
    }
}

/// Reading everything, for the offline consistency check (`medassist verify`).
/// Each scan streams, so a large store is checked in bounded memory.
pub trait Scan: Store {
    /// Every settlement, by number.
    fn scan_settlements(&self) -> ScanIter<'_, Versioned<Settlement>>;
    /// Every entry of the claim-key index.
    fn scan_claim_index(&self) -> ScanIter<'_, (ClaimKey, SettlementId)>;
    /// Every entry of the patient-year index.
    fn scan_patient_year_index(&self) -> ScanIter<'_, (ResidentId, Year, SettlementId)>;
    /// Every running total.
    fn scan_usages(&self) -> ScanIter<'_, (ResidentId, Year, Versioned<Usage>)>;
    /// Every roster record.
    fn scan_persons(&self) -> ScanIter<'_, Versioned<Person>>;
    /// Every entry of the day index: of one hospital, or (`None`) of all.
    fn scan_day_index(&self) -> ScanIter<'_, (Option<HospitalId>, BusinessDay, SettlementId)>;
    /// Every entry of the referral index: day settled, settlement, region.
    fn scan_referral_index(&self) -> ScanIter<'_, (BusinessDay, SettlementId, RegionCode)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves a panic inside `catch_damage` comes back as its message (so
    /// opening reports it as damage in one line) and that the panic hook is
    /// told to stay quiet only while it runs.
    #[test]
    fn a_panic_in_the_store_is_reported_as_damage() {
        assert!(!panic_is_caught());
        let caught = catch_damage(|| {
            assert!(panic_is_caught());
            panic!("tried to serialize Uninitialized")
        });
        assert_eq!(
            caught,
            Err::<(), _>("tried to serialize Uninitialized".into())
        );
        assert!(!panic_is_caught());
        assert_eq!(catch_damage(|| 7), Ok(7));
    }
}
