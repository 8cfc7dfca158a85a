//! The service's use cases, independent of the wire: quote, settle, reverse,
//! read settlements and usage, keep the roster, show policies.
//!
//! Each use case takes checked domain values, reads what it needs from the
//! store (waiting until what it read is durable), applies the pure rules, and
//! hands writes to the ledger. Errors say whether the caller sent something
//! wrong or something broke; the transport maps them to status codes.
//!
//! The operators' use cases (snapshots) live in `app/admin.rs`; roster
//! exchange (bulk import and export) in `app/roster.rs`; the fund office's
//! (reconciliation by hospital and day, export) in `app/reconciliation.rs`
//! and referrals to temporary assistance in `app/referrals.rs`.

mod admin;
mod applications;
mod audit;
mod probes;
mod reconciliation;
mod referrals;
mod retroactive;
mod roster;
mod simulation;
mod statistics;

pub use admin::{SNAPSHOT_CHUNK_BYTES, SnapshotChunks, SnapshotEncryption};
pub use applications::{APPLICATION_QUEUE_READ_MAX, Decision, QueueQuery};
pub use reconciliation::{DayReconciliation, DayTotals, EXPORT_DAYS_MAX, ExportStream};
pub use retroactive::{Candidate, CandidatePage};
pub use roster::{
    IMPORT_BATCH_MAX, IMPORT_ERRORS_MAX, IMPORT_RECORDS_MAX, Import, ImportRejection, ImportSummary,
};
pub use statistics::RegionYear;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use arc_swap::ArcSwap;

use crate::{
    audit::Event,
    auth::{Action, Caller, Refusal, authorize},
    clock::Clock,
    domain::{
        Claim, ClaimKey, Money, Person, Policy, PolicyBook, PolicyId, Quote, Reason, RegionCode,
        ResidentId, Settlement, SettlementId, UtcOffset, Violations, Year,
    },
    ledger::{Assessing, Change, Ledger, LedgerError, Recorded},
    metrics::Metrics,
    roster_cache::RosterCache,
    rules,
    store::{CommitNumber, Store, StoreError},
};

/// Most patients one `BatchGetAnnualUsage` asks about.
pub const BATCH_PATIENTS_MAX: usize = 500;

/// Settlements per page when the caller does not say.
pub const PAGE_SIZE_DEFAULT: usize = 50;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller sent malformed input; every bad field is named.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// What the caller named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The claim key was used for a different claim.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller may not do this (its role, or another hospital's data).
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller reached a limit on what it may do in a while.
    #[error("{0}")]
    Exhausted(String),
    /// No policy applies to the patient's region and year.
    #[error("no medical assistance policy applies to region {region} in {year}")]
    NoPolicy {
        /// The roster region.
        region: RegionCode,
        /// The cap year.
        year: Year,
    },
    /// Storage is failing or the service is stopping; retrying later is safe.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Stored data is damaged; an operator must look.
    #[error("internal error: {0}")]
    Internal(String),
    /// The service cannot do this in the way it is deployed (for example a
    /// snapshot of a store that is backed up by other means).
    #[error("{0}")]
    Unsupported(String),
    /// The request does not apply to the record as it stands (an
    /// application already decided, a window settlement withdrawn as an
    /// application).
    #[error("{0}")]
    Refused(String),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Io(_) | StoreError::Poisoned(_) | StoreError::Contended(_) => {
                AppError::Unavailable(error.to_string())
            }
            StoreError::Corrupt(_) => AppError::Internal(error.to_string()),
            StoreError::Unsupported(why) => AppError::Unsupported(why),
        }
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        AppError::PermissionDenied(refusal.to_string())
    }
}

impl From<LedgerError> for AppError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Store(error) => error.into(),
            LedgerError::Stopped => AppError::Unavailable("the service is shutting down".into()),
            LedgerError::NotFound => {
                AppError::NotFound("no settlement under this claim key".into())
            }
            LedgerError::Conflict(existing) => conflict(&existing),
            LedgerError::NoPolicy(missing) => missing.into(),
            LedgerError::Refused(why) => AppError::Refused(why),
            error @ LedgerError::SameHands(_) => AppError::PermissionDenied(error.to_string()),
        }
    }
}

impl From<rules::NoPolicy> for AppError {
    fn from(rules::NoPolicy { region, year }: rules::NoPolicy) -> Self {
        AppError::NoPolicy { region, year }
    }
}

fn conflict(existing: &Settlement) -> AppError {
    let key = existing.claim.key();
    AppError::AlreadyExists(match existing.application {
        None => format!(
            "claim {}/{} was already settled as settlement {} with different contents, or at \
             the window; settle a corrected bill under a new claim number",
            key.hospital_id, key.claim_id, existing.id
        ),
        Some(_) => format!(
            "claim {}/{} is settled on application as settlement {}: a stay is settled once, \
             at the window or on application",
            key.hospital_id, key.claim_id, existing.id
        ),
    })
}

/// How a caller names one settlement.
#[derive(Clone, Debug)]
pub enum SettlementRef {
    /// By the service's number.
    Id(SettlementId),
    /// By the hospital's claim key.
    Claim(ClaimKey),
}

/// One patient's cap, use and remainder for one year.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnualUsage {
    /// The patient.
    pub patient_id: ResidentId,
    /// The cap year.
    pub year: Year,
    /// The roster region whose policy sets the cap.
    pub region: RegionCode,
    /// That policy.
    pub policy_id: PolicyId,
    /// The annual cap under it.
    pub annual_cap: Money,
    /// Assistance paid by settlements that are not reversed.
    pub used: Money,
    /// `annual_cap - used`, never below zero.
    pub remaining: Money,
    /// Settlements that are not reversed, zero amounts included.
    pub settlement_count: u32,
    /// What the patient paid over the settlements that are not reversed.
    pub patient_pays_total: Money,
    /// The whole running total: deductible, band position, outpatient and
    /// tilted assistance consumed.
    pub total: crate::domain::Usage,
}

/// One page of a patient-year's settlements.
#[derive(Clone, Debug)]
pub struct SettlementPage {
    /// Oldest first.
    pub settlements: Vec<Settlement>,
    /// Where the next page starts; `None` on the last page.
    pub next_after: Option<SettlementId>,
}

/// Most long reads ([`App::long_read`]) that run at once.
pub const LONG_READS_MAX: usize = 2;

/// The application: store, policies and ledger, and the use cases over them.
pub struct App {
    store: Arc<dyn Store>,
    /// Read once per request; a configuration reload swaps the whole book,
    /// so a request in flight finishes under the policies it started with.
    policies: ArcSwap<PolicyBook>,
    ledger: Arc<Ledger>,
    roster: Arc<RosterCache>,
    metrics: Arc<Metrics>,
    page_size_max: usize,
    /// What audit records of calls are stamped with (commits are stamped by
    /// the ledger with the same clock).
    clock: Arc<dyn Clock>,
    /// The patients each hospital token named in the last hour.
    probes: probes::PatientWindows,
    /// The fund's recovery keys snapshots are sealed to (`[backup]`),
    /// swapped whole on a configuration reload.
    backup_recipients: ArcSwap<crate::seal::Recipients>,
    /// One permit per long read running (see [`App::long_read`]).
    long_reads: Arc<tokio::sync::Semaphore>,
}

impl App {
    /// Starts the ledger on `store`, to settle under `policies`; lists hold
    /// at most `limits.page_size_max` settlements, and a hospital token may
    /// name at most `limits.patients_per_hour_max` patients an hour.
    /// Commits are stamped by `clock` and fall on business days in the zone
    /// `offset`.
    pub fn start(
        store: Arc<dyn Store>,
        policies: PolicyBook,
        metrics: Arc<Metrics>,
        limits: &crate::config::Limits,
        clock: Arc<dyn Clock>,
        offset: UtcOffset,
    ) -> Result<App, StoreError> {
        let roster = Arc::new(RosterCache::new());
        let ledger = Ledger::start(
            Arc::clone(&store),
            Arc::clone(&metrics),
            Arc::clone(&roster),
            Arc::clone(&clock),
            offset,
        )?;
        Ok(App {
            store,
            policies: ArcSwap::from_pointee(policies),
            ledger: Arc::new(ledger),
            roster,
            metrics,
            page_size_max: limits.page_size_max,
            clock,
            probes: probes::PatientWindows::new(limits.patients_per_hour_max),
            backup_recipients: ArcSwap::default(),
            long_reads: Arc::new(tokio::sync::Semaphore::new(LONG_READS_MAX)),
        })
    }

    /// Completes with `true` if storage fails beyond recovery while serving
    /// (see [`Ledger::failed`]).
    pub async fn store_failed(&self) -> bool {
        self.ledger.failed().await
    }

    /// Whether the store can be reached now, for a store across a network
    /// (see [`crate::store::Store::availability`]).
    pub fn store_availability(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.store.availability()
    }

    /// Finishes queued writes and stops the ledger.
    pub async fn shutdown(&self) {
        self.ledger.stop().await;
    }

    /// Runs `work`, a read of much of the store (a policy simulation, a
    /// search for retroactive candidates), on a blocking thread. At most
    /// [`LONG_READS_MAX`] run at once: another is refused as exhausted. When
    /// the caller goes away, `work`'s `stopped` says so and it ends early.
    /// `work` returns what it found and the newest commit it read; the
    /// answer waits until that commit is durable.
    async fn long_read<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl FnOnce(&dyn Fn() -> bool) -> Result<(T, CommitNumber), StoreError> + Send + 'static,
    ) -> Result<T, AppError> {
        /// Tells `work` to stop when the call's future is dropped.
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let running = Arc::clone(&self.long_reads)
            .try_acquire_owned()
            .map_err(|_| {
                AppError::Exhausted(format!(
                    "{LONG_READS_MAX} long reads (policy simulations, candidate searches) are \
                     running: try the {what} again when one has answered"
                ))
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let (found, newest) = tokio::task::spawn_blocking(move || {
            let _running = running;
            work(&|| stop.load(Ordering::Relaxed))
        })
        .await
        .map_err(|e| AppError::Internal(format!("the {what} failed: {e}")))??;
        self.ledger
            .durable(crate::store::Versioned {
                value: (),
                commit: newest,
            })
            .await?;
        Ok(found)
    }

    /// How many records a page holds when `page_size` is asked for: 0 means
    /// the default, more than the maximum means the maximum.
    fn page_limit(&self, page_size: usize) -> usize {
        match page_size {
            0 => PAGE_SIZE_DEFAULT.min(self.page_size_max),
            n => n.min(self.page_size_max),
        }
    }

    /// The time on the service's clock.
    pub fn now(&self) -> crate::domain::Timestamp {
        self.clock.now()
    }

    /// Queues the audit record of a call for the next commit (see
    /// [`Ledger::audit`]). A record that can no longer be queued (the
    /// ledger stopped) is logged as lost.
    pub async fn audit(&self, event: Event) {
        if self.ledger.audit(event).await.is_err() {
            tracing::error!("an audit record was lost: the ledger has stopped");
        }
    }

    /// Queues the audit record of a call without waiting, where nothing can
    /// wait (a response dropped half-way): at once if the queue has room,
    /// else from a task.
    pub fn audit_soon(self: &Arc<Self>, event: Event) {
        if let Err(event) = self.ledger.try_audit(event) {
            let app = Arc::clone(self);
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn(async move { app.audit(*event).await })),
                Err(_) => tracing::error!("an audit record was lost: no runtime to queue it"),
            }
        }
    }

    /// Refuses a hospital token a patient past its hourly limit of distinct
    /// patients (see [`probes`]).
    fn bound_probing(&self, claim: &Claim, by: &Caller) -> Result<(), AppError> {
        if by.role != crate::auth::Role::Hospital
            || self.probes.admit(&by.id, claim.patient_id(), self.now())
        {
            return Ok(());
        }
        self.metrics.patient_limit_reached();
        Err(AppError::Exhausted(
            "this token has quoted or settled as many distinct patients in the last hour as \
             it may ([limits] patients_per_hour_max); patients already named go on"
                .into(),
        ))
    }

    /// Quotes a claim against the current state. Records nothing.
    pub async fn pre_settle(&self, claim: Claim, by: &Caller) -> Result<Quote, AppError> {
        authorize(by, Action::Quote(&claim.key().hospital_id))?;
        self.bound_probing(&claim, by)?;
        let assessment = self.assess(&claim).await?;
        let usage = match self.store.usage(claim.patient_id(), claim.year())? {
            Some(read) => self.ledger.durable(read).await?,
            None => Default::default(),
        };
        let outcome = rules::apply_year(&claim, &assessment, &usage);
        // What Settle would decide, were nothing else settled first.
        let paid_total = usage
            .patient_pays
            .checked_add(outcome.patient_pays)
            .unwrap_or(Money::MAX);
        let referral = rules::referral(assessment.cap.as_ref(), &outcome, paid_total);
        Ok(Quote {
            claim,
            outcome,
            referral,
        })
    }

    /// Settles a claim once: records it and charges the cap, or replays the
    /// settlement already recorded under its key.
    pub async fn settle(&self, claim: Claim, by: &Caller) -> Result<Recorded, AppError> {
        authorize(by, Action::Settle(&claim.key().hospital_id))?;
        self.bound_probing(&claim, by)?;
        // The ledger checks the key, in order, and answers retries itself:
        // a new claim (the common case) costs no extra read here.
        let assessing = match self.store.shared() {
            // The batch reads its patients' roster records in its own
            // transaction, all at once, and assesses there.
            true => Assessing::InBatch(self.policies.load_full()),
            false => match self.assess(&claim).await {
                Ok(assessment) => Assessing::Done(Box::new(assessment)),
                // A retry still replays if its region's policy has since gone.
                Err(error @ AppError::NoPolicy { .. }) => {
                    return self.replay(&claim).await?.ok_or(error);
                }
                Err(error) => return Err(error),
            },
        };
        let recorded = self
            .ledger
            .settle(claim, assessing, None, by.origin.clone())
            .await?;
        if !recorded.replayed {
            self.metrics.settled(&recorded.settlement.outcome);
            if let Some(reason) = recorded.settlement.referral {
                self.metrics.referred(reason);
            }
            audit_settlement("settle", &recorded.settlement, by);
        }
        Ok(recorded)
    }

    /// The settlement already recorded for this very claim, if any; a
    /// different claim under its key is a conflict.
    async fn replay(&self, claim: &Claim) -> Result<Option<Recorded>, AppError> {
        let Some(read) = self.store.settlement_by_claim(claim.key())? else {
            return Ok(None);
        };
        let existing = self.ledger.durable(read).await?;
        if existing.claim != *claim {
            return Err(conflict(&existing));
        }
        Ok(Some(Recorded {
            settlement: existing,
            replayed: true,
        }))
    }

    /// Reverses the settlement under `key`, giving its amount back to its
    /// year's cap; reversing again replays.
    pub async fn reverse(
        &self,
        key: ClaimKey,
        reason: Reason,
        by: &Caller,
    ) -> Result<Recorded, AppError> {
        authorize(by, Action::Reverse(&key.hospital_id))?;
        let recorded = self
            .ledger
            .change(key, Change::Reverse(reason), by.origin.clone())
            .await?;
        if !recorded.replayed {
            self.metrics
                .reversed(recorded.settlement.outcome.assistance);
            audit_settlement("reverse", &recorded.settlement, by);
        }
        Ok(recorded)
    }

    /// One recorded settlement. One the caller may not see (another
    /// hospital's, or a patient's outside its regions) is answered exactly
    /// as one that does not exist: the same read, the same code and words.
    pub async fn settlement(
        &self,
        which: SettlementRef,
        by: &Caller,
    ) -> Result<Settlement, AppError> {
        authorize(by, Action::ReadSettlements)?;
        let read = match &which {
            SettlementRef::Id(id) => self.store.settlement(*id)?,
            SettlementRef::Claim(key) => self.store.settlement_by_claim(key)?,
        };
        let missing = || {
            AppError::NotFound(match &which {
                SettlementRef::Id(id) => format!("no settlement {id}"),
                SettlementRef::Claim(key) => {
                    format!(
                        "no settlement for claim {}/{}",
                        key.hospital_id, key.claim_id
                    )
                }
            })
        };
        let settlement = self.ledger.durable(read.ok_or_else(missing)?).await?;
        if !by.sees_settlement(&settlement) {
            return Err(missing());
        }
        Ok(settlement)
    }

    /// A roster patient's cap, use and remainder for a year.
    pub async fn annual_usage(
        &self,
        patient_id: ResidentId,
        year: Year,
        by: &Caller,
    ) -> Result<AnnualUsage, AppError> {
        authorize(by, Action::ReadUsage)?;
        let person = self.read_person_for(&patient_id, by).await?;
        self.usage_of(&self.policies.load(), patient_id, &person, year)
            .await
    }

    /// The annual usage of many patients, in the order asked; those not on
    /// the roster (or outside the caller's regions) are returned apart, in
    /// the order asked.
    pub async fn batch_annual_usage(
        &self,
        patient_ids: Vec<ResidentId>,
        year: Year,
        by: &Caller,
    ) -> Result<(Vec<AnnualUsage>, Vec<ResidentId>), AppError> {
        authorize(by, Action::ReadUsage)?;
        // One book for the whole answer, even if a reload comes meanwhile.
        let book = self.policies.load();
        let (mut usages, mut not_found) = (Vec::new(), Vec::new());
        for patient_id in patient_ids {
            match self.find_person_for(&patient_id, by).await? {
                Some(person) => usages.push(self.usage_of(&book, patient_id, &person, year).await?),
                None => not_found.push(patient_id),
            }
        }
        Ok((usages, not_found))
    }

    async fn usage_of(
        &self,
        book: &PolicyBook,
        patient_id: ResidentId,
        person: &Person,
        year: Year,
    ) -> Result<AnnualUsage, AppError> {
        let policy = policy_for(book, person.region(), year)?;
        let usage = match self.store.usage(&patient_id, year)? {
            Some(read) => self.ledger.durable(read).await?,
            None => Default::default(),
        };
        Ok(AnnualUsage {
            patient_id,
            year,
            region: person.region(),
            policy_id: policy.id().clone(),
            annual_cap: policy.annual_cap(),
            used: usage.used,
            remaining: policy.annual_cap().saturating_sub(usage.used),
            settlement_count: usage.settlement_count,
            patient_pays_total: usage.patient_pays,
            total: usage,
        })
    }

    /// A page of a patient-year's settlements, oldest first. `page_size` 0
    /// means the default; larger than the maximum means the maximum. A
    /// caller limited to regions gets none of a patient enrolled elsewhere
    /// (or not on the roster), as for a patient with no settlements.
    pub async fn list_settlements(
        &self,
        patient_id: &ResidentId,
        year: Year,
        page_size: usize,
        after: Option<SettlementId>,
        by: &Caller,
    ) -> Result<SettlementPage, AppError> {
        authorize(by, Action::ListSettlements)?;
        if !by.regions.is_empty() && self.find_person_for(patient_id, by).await?.is_none() {
            return Ok(SettlementPage {
                settlements: Vec::new(),
                next_after: None,
            });
        }
        let limit = self.page_limit(page_size);
        // One more than asked tells whether another page follows.
        let mut reads = self
            .store
            .settlements_of(patient_id, year, after, limit + 1)?;
        let more = reads.len() > limit;
        reads.truncate(limit);
        let mut settlements = Vec::with_capacity(reads.len());
        for read in reads {
            settlements.push(self.ledger.durable(read).await?);
        }
        let next_after = more.then(|| settlements.last().map(|s| s.id)).flatten();
        Ok(SettlementPage {
            settlements,
            next_after,
        })
    }

    /// Creates or replaces a roster record.
    pub async fn upsert_person(&self, person: Person, by: &Caller) -> Result<Person, AppError> {
        authorize(by, Action::WriteRoster)?;
        self.may_write(&person, by).await?;
        self.ledger
            .put_person(person.clone(), by.origin.clone())
            .await?;
        tracing::info!(
            target: AUDIT,
            principal = %by.principal,
            action = "roster_write",
            patient = %person.id(),
            region = %person.region(),
            enrollments = person.enrollments().len(),
            "roster record written"
        );
        Ok(person)
    }

    /// One roster record.
    pub async fn person(&self, id: &ResidentId, by: &Caller) -> Result<Person, AppError> {
        authorize(by, Action::ReadRoster)?;
        Ok(Person::clone(&*self.read_person_for(id, by).await?))
    }

    /// Refuses a roster write by a caller limited to regions when the record
    /// it writes, or the one it would replace, is enrolled elsewhere.
    async fn may_write(&self, person: &Person, by: &Caller) -> Result<(), AppError> {
        if by.regions.is_empty() {
            return Ok(());
        }
        let replaced = self.find_person(person.id()).await?;
        let outside =
            !by.sees(person.region()) || replaced.is_some_and(|stored| !by.sees(stored.region()));
        match outside {
            true => Err(AppError::PermissionDenied(
                "this token may not write roster records outside its regions".into(),
            )),
            false => Ok(()),
        }
    }

    /// The policy that applies to a region and year, for a caller who asks.
    pub fn policy(&self, region: RegionCode, year: Year, by: &Caller) -> Result<Policy, AppError> {
        authorize(by, Action::ReadPolicy)?;
        policy_for(&self.policies.load(), region, year).cloned()
    }

    /// The policy book in force: for answers that show what a roster
    /// record means under it (the grace periods of the national 1101).
    pub fn policy_book(&self) -> Arc<PolicyBook> {
        self.policies.load_full()
    }

    /// Serves `policies` to requests that start from now on.
    pub fn set_policies(&self, policies: PolicyBook) {
        self.policies.store(Arc::new(policies));
    }

    /// A roster record, from the cache when it holds one. A store other
    /// instances write too is always read: their roster writes do not reach
    /// this process's cache.
    async fn find_person(&self, id: &ResidentId) -> Result<Option<Arc<Person>>, AppError> {
        if self.store.shared() {
            return match self.store.person(id)? {
                Some(read) => Ok(Some(Arc::new(self.ledger.durable(read).await?))),
                None => Ok(None),
            };
        }
        let generation = match self.roster.get(id) {
            Ok(person) => return Ok(Some(person)),
            Err(generation) => generation,
        };
        let Some(read) = self.store.person(id)? else {
            return Ok(None);
        };
        let person = Arc::new(self.ledger.durable(read).await?);
        self.roster.offer(generation, Arc::clone(&person));
        Ok(Some(person))
    }

    /// A roster record the caller may see: one enrolled outside its
    /// regions is `None`, exactly as one that is not on the roster.
    async fn find_person_for(
        &self,
        id: &ResidentId,
        by: &Caller,
    ) -> Result<Option<Arc<Person>>, AppError> {
        Ok(self
            .find_person(id)
            .await?
            .filter(|person| by.sees(person.region())))
    }

    async fn read_person_for(&self, id: &ResidentId, by: &Caller) -> Result<Arc<Person>, AppError> {
        self.find_person_for(id, by)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("patient {id} is not on the roster")))
    }

    async fn assess(&self, claim: &Claim) -> Result<rules::Assessment, AppError> {
        let person = self.find_person(claim.patient_id()).await?;
        Ok(rules::assess_under(
            &self.policies.load(),
            claim,
            person.as_deref(),
        )?)
    }
}

fn policy_for(book: &PolicyBook, region: RegionCode, year: Year) -> Result<&Policy, AppError> {
    book.lookup(region, year)
        .ok_or(AppError::NoPolicy { region, year })
}

/// The log target of the log lines of writes: one per settlement, reversal
/// and roster change, naming who did it (`RUST_LOG=medassist::audit=info`).
/// The audit trail itself is kept by the store (see [`crate::audit`]); these
/// lines are for the operators' log system, with every ID masked.
pub const AUDIT: &str = "medassist::audit";

/// The audit event of a recorded change: who, what, and the amounts; the
/// resident ID masked by its `Display`.
fn audit_settlement(action: &str, settlement: &Settlement, by: &Caller) {
    let by = &by.principal;
    let key = settlement.claim.key();
    let outcome = &settlement.outcome;
    tracing::info!(
        target: AUDIT,
        principal = %by,
        action,
        settlement = %settlement.id,
        hospital = %key.hospital_id,
        claim = %key.claim_id,
        patient = %settlement.claim.patient_id(),
        year = %settlement.claim.year(),
        eligible = outcome.eligible,
        total = %settlement.claim.total_cost(),
        assistance = %outcome.assistance,
        patient_pays = %outcome.patient_pays,
        capped = outcome.capped,
        policy = outcome.cap.as_ref().map(|c| c.policy_id.as_str()).unwrap_or(""),
        "{action}"
    );
}
