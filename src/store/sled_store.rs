//! The embedded store: one sled tree, one atomic transaction per applied
//! batch, and sled's flush (which writes and fsyncs its log) to make them
//! durable.

//!
//! Layout (all in one tree, so one transaction covers every write):
//!
//! | key | value |
//! |---|---|
//! | `S` settlement number (8 bytes, big-endian) | commit, settlement |
//! | `C` hospital length (1 byte), hospital, claim | settlement number |
//! | `P` resident ID (18), year (2), settlement number (8) | nothing: the patient-year index |
//! | `U` resident ID (18), year (2) | commit, running total |
//! | `R` resident ID (18) | commit, roster record |
//! | `M` name | schema version, last commit, next settlement number |
//!
//! Values are postcard-encoded. Big-endian numbers make key order equal
//! numeric order, so a patient-year's settlements scan oldest first.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
};

use serde::{Serialize, de::DeserializeOwned};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{
    Batch, CommitNumber, CommitStep, FaultPlan, Meta, Scan, ScanIter, Store, StoreError, Versioned,
};
use crate::domain::{
    ClaimId, ClaimKey, HospitalId, Person, ResidentId, Settlement, SettlementId, Usage, Year,
};

/// The layout version this code reads and writes.
const SCHEMA_VERSION: u32 = 1;
const META_SCHEMA: &[u8] = b"Mschema";
const META_COMMIT: &[u8] = b"Mcommit";
const META_NEXT_ID: &[u8] = b"Mnext_settlement_id";

/// Tuning of the embedded store.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// Bytes of page cache sled may keep in memory.
    pub cache_bytes: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            cache_bytes: 128 * 1024 * 1024,
        }
    }
}

/// The embedded store, on sled 0.34 (the stable line).
pub struct SledStore {
    db: sled::Db,
    /// Set when a commit failed after it may have changed the tree: from then
    /// on nothing is read or written until the service restarts, so no one
    /// sees (or builds on) a write that is not durable.
    poisoned: OnceLock<String>,
    /// Injected failures, for tests only.
    faults: Option<Arc<dyn FaultPlan>>,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, recovering from its log.
    pub fn open(dir: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            // Every commit flushes itself; a timer would only add noise.
            .flush_every_ms(None)
            .open()
            .map_err(|error| match error.to_string() {
                locked if locked.contains("could not acquire lock") => {
                    StoreError::Io(format!("{locked} (is the service still running?)"))
                }
                other => StoreError::Io(other),
            })?;
        let store = SledStore {
            db,
            poisoned: OnceLock::new(),
            faults: None,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Opens the store with failures injected at chosen commit steps. For
    /// tests of failure handling; production uses [`SledStore::open`].
    pub fn open_with_faults(
        dir: &Path,
        options: SledOptions,
        faults: Arc<dyn FaultPlan>,
    ) -> Result<SledStore, StoreError> {
        Ok(SledStore {
            faults: Some(faults),
            ..SledStore::open(dir, options)?
        })
    }

    fn fails(&self, step: CommitStep) -> bool {
        self.faults.as_ref().is_some_and(|plan| plan.fails(step))
    }

    fn poison(&self, reason: String) -> StoreError {
        let reason = self.poisoned.get_or_init(|| reason).clone();
        tracing::error!(%reason, "store poisoned: restart the service to recover");
        StoreError::Poisoned(reason)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        match self.db.get(META_SCHEMA).map_err(io)? {
            Some(bytes) => {
                let version: u32 = decode(&bytes)?;
                if version != SCHEMA_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "data directory has layout version {version}; this build reads {SCHEMA_VERSION}"
                    )));
                }
            }
            None => {
                self.db
                    .insert(META_SCHEMA, encode(&SCHEMA_VERSION)?)
                    .map_err(io)?;
                self.db.flush().map_err(io)?;
            }
        }
        Ok(())
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
        self.db
            .get(key)
            .map_err(io)?
            .map(|bytes| be_u64(&bytes))
            .transpose()
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

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.healthy()?;
        let writes = Self::writes_of(batch)?;
        if self.fails(CommitStep::BeforeWrite) {
            return Err(StoreError::Io("injected failure before the write".into()));
        }
        let applied = self.db.transaction(|tx| {
            tx.apply_batch(&writes)?;
            if self.fails(CommitStep::DuringTransaction) {
                let injected = StoreError::Io("injected failure during the transaction".into());
                return Err(ConflictableTransactionError::Abort(injected));
            }
            Ok(())
        });
        match applied {
            Ok(()) => Ok(()),
            // An aborted transaction wrote nothing.
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(error)) => Err(self.poison(error.to_string())),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.healthy()?;
        let flushed = if self.fails(CommitStep::AtFlush) {
            Err("injected failure at the flush".to_owned())
        } else {
            self.db.flush().map(drop).map_err(|e| e.to_string())
        };
        // The tree may now hold writes that are not durable: stop serving
        // them. Restarting recovers the last durable state from the log.
        flushed.map_err(|reason| self.poison(reason))
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

fn person_key(id: &ResidentId) -> Vec<u8> {
    let mut key = Vec::with_capacity(19);
    key.push(b'R');
    key.extend_from_slice(id.as_str().as_bytes());
    key
}
