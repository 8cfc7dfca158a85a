//! Roster exchange with civil affairs: bulk import and export.
//!
//! An import is fed record by record as the stream arrives. Valid records
//! are cut into batches of [`IMPORT_BATCH_MAX`], each one ledger command and
//! so one commit (one fdatasync), and the next batch is handed over while
//! the previous one commits. What an import holds in memory is one batch
//! being filled, one committing, the first [`IMPORT_ERRORS_MAX`] rejections,
//! and the patient IDs seen so far (for the duplicate check: 18 bytes each,
//! bounded by [`IMPORT_RECORDS_MAX`]).
//!
//! An export scans the store in a blocking thread and hands records over a
//! bounded channel, each chunk only once the commits that wrote it are
//! durable.

use std::{collections::HashSet, sync::Arc};

use tokio::sync::mpsc;

use super::{AUDIT, App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{Person, RegionCode, Violations},
    ledger::{PUT_PERSONS_MAX, PersonsAnswer, PutOutcome},
    store::Store,
};

/// Records per commit of an import.
pub const IMPORT_BATCH_MAX: usize = PUT_PERSONS_MAX;
/// Rejections an import reports one by one; past it they are only counted.
pub const IMPORT_ERRORS_MAX: usize = 1_000;
/// Records one import may carry (a county has about 100,000 assisted
/// people); past it the import stops, keeping what was committed.
pub const IMPORT_RECORDS_MAX: usize = 2_000_000;
/// Records an export reads ahead of its client.
const EXPORT_CHUNK: usize = 256;

/// One rejected record of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRejection {
    /// Its 0-based position in the stream.
    pub index: u64,
    /// Its patient ID as sent.
    pub patient_id: String,
    /// What is wrong with it.
    pub violations: Violations,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records received, good and bad.
    pub received: u64,
    /// New roster records.
    pub created: u64,
    /// Records that replaced a different one.
    pub updated: u64,
    /// Records already stored identical.
    pub unchanged: u64,
    /// The first [`IMPORT_ERRORS_MAX`] rejections, in stream order.
    pub errors: Vec<ImportRejection>,
}

impl ImportSummary {
    /// Records rejected, reported or not.
    pub fn rejected(&self) -> u64 {
        self.received - self.created - self.updated - self.unchanged
    }

    fn count(&mut self, outcomes: &[PutOutcome]) {
        for outcome in outcomes {
            match outcome {
                PutOutcome::Created => self.created += 1,
                PutOutcome::Updated => self.updated += 1,
                PutOutcome::Unchanged => self.unchanged += 1,
            }
        }
    }
}

/// An import under way: push records in stream order, then finish.
pub struct Import<'a> {
    app: &'a App,
    by: Caller,
    /// Patient IDs seen so far (a resident ID is 18 ASCII bytes).
    seen: HashSet<[u8; 18]>,
    batch: Vec<Person>,
    /// The batch the ledger is committing.
    committing: Option<PersonsAnswer>,
    summary: ImportSummary,
}

impl App {
    /// Starts an import of roster records (role roster_admin).
    pub fn import_persons(&self, by: &Caller) -> Result<Import<'_>, AppError> {
        authorize(by, Action::WriteRoster)?;
        Ok(Import {
            app: self,
            by: by.clone(),
            seen: HashSet::new(),
            batch: Vec::with_capacity(IMPORT_BATCH_MAX),
            committing: None,
            summary: ImportSummary::default(),
        })
    }

    /// Streams the roster records of `region` (everyone when `None`) that the
    /// caller may see, ordered by patient ID. If the caller stops reading,
    /// the scan stops.
    pub fn export_persons(
        &self,
        region: Option<RegionCode>,
        by: &Caller,
    ) -> Result<mpsc::Receiver<Result<Person, AppError>>, AppError> {
        authorize(by, Action::ReadRoster)?;
        let (sender, receiver) = mpsc::channel(EXPORT_CHUNK);
        let store: Arc<dyn Store> = Arc::clone(&self.store);
        let durable = self.ledger.durability();
        let runtime = tokio::runtime::Handle::current();
        let principal = by.name.clone();
        let by = Arc::clone(&by.principal);
        tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
            let mut sent = 0u64;
            let mut scan = store.persons(None);
            loop {
                let (read, end) = match scan.next().transpose() {
                    Ok(read) => {
                        let end = read.is_none();
                        (read, end)
                    }
                    Err(error) => {
                        tracing::warn!(principal, %error, "roster export failed");
                        let _ = sender.blocking_send(Err(error.into()));
                        return;
                    }
                };
                let wanted = |person: &Person| {
                    region.is_none_or(|c| c.covers(person.region())) && by.sees(person.region())
                };
                if let Some(read) = read.filter(|r| wanted(&r.value)) {
                    chunk.push(read);
                }
                if chunk.len() < EXPORT_CHUNK && !end {
                    continue;
                }
                let newest = chunk.iter().map(|r| r.commit).max().unwrap_or(0);
                if let Err(error) = runtime.block_on(durable.reached(newest)) {
                    let _ = sender.blocking_send(Err(error.into()));
                    return;
                }
                for read in chunk.drain(..) {
                    if sender.blocking_send(Ok(read.value)).is_err() {
                        return;
                    }
                    sent += 1;
                }
                if end {
                    break;
                }
            }
            tracing::info!(target: AUDIT, principal, action = "roster_export",
                region = region.map(|r| r.to_string()).unwrap_or_default(),
                records = sent, "roster exported");
        });
        Ok(receiver)
    }
}

impl Import<'_> {
    /// Takes the next record of the stream: a checked record, or what is
    /// wrong with it. Fails only when the import cannot go on (storage
    /// failing, too many records); what was committed stays.
    pub async fn push(
        &mut self,
        record: Result<Person, Violations>,
        patient_id: &str,
    ) -> Result<(), AppError> {
        let index = self.summary.received;
        if index >= IMPORT_RECORDS_MAX as u64 {
            let mut violations = Violations::new();
            violations.add(
                "",
                format!("at most {IMPORT_RECORDS_MAX} records per import: split the file"),
            );
            return Err(AppError::Invalid(violations));
        }
        self.summary.received += 1;
        let person = match record {
            Ok(person) => person,
            Err(violations) => {
                self.reject(index, patient_id, violations);
                return Ok(());
            }
        };
        if let Err(AppError::PermissionDenied(why)) = self.app.may_write(&person, &self.by).await {
            let mut violations = Violations::new();
            violations.add("person.region_code", why);
            self.reject(index, patient_id, violations);
            return Ok(());
        }
        if !self.seen.insert(id_bytes(&person)) {
            let mut violations = Violations::new();
            violations.add(
                "person.patient_id",
                "appears earlier in this import; send each person once",
            );
            self.reject(index, patient_id, violations);
            return Ok(());
        }
        self.batch.push(person);
        if self.batch.len() == IMPORT_BATCH_MAX {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Commits what is left and says what the import did.
    pub async fn finish(mut self) -> Result<ImportSummary, AppError> {
        self.hand_over().await?;
        self.settle().await?;
        let summary = self.summary;
        tracing::info!(
            target: AUDIT,
            principal = %self.by.principal,
            action = "roster_import",
            received = summary.received,
            created = summary.created,
            updated = summary.updated,
            unchanged = summary.unchanged,
            rejected = summary.rejected(),
            "roster imported"
        );
        Ok(summary)
    }

    fn reject(&mut self, index: u64, patient_id: &str, violations: Violations) {
        if self.summary.errors.len() < IMPORT_ERRORS_MAX {
            self.summary.errors.push(ImportRejection {
                index,
                patient_id: patient_id.chars().take(64).collect(),
                violations,
            });
        }
    }

    /// Waits for the batch being committed, then hands over the one filled.
    async fn hand_over(&mut self) -> Result<(), AppError> {
        self.settle().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(IMPORT_BATCH_MAX));
        let by = self.by.origin.clone();
        self.committing = Some(self.app.ledger.submit_persons(batch, by).await?);
        Ok(())
    }

    /// Waits until the batch being committed is durable and counts it.
    async fn settle(&mut self) -> Result<(), AppError> {
        if let Some(answer) = self.committing.take() {
            let outcomes = answer.outcomes().await?;
            self.summary.count(&outcomes);
        }
        Ok(())
    }
}

fn id_bytes(person: &Person) -> [u8; 18] {
    let mut id = [0u8; 18];
    // A ResidentId is always 18 ASCII characters.
    id.copy_from_slice(&person.id().as_str().as_bytes()[..18]);
    id
}
