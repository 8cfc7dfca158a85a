//! PostgreSQL: the store several instances share.
//!
//! The embedded store has one writer, the ledger of its one process. Here
//! every instance has a ledger, and the database keeps them from stepping on
//! each other:
//!
//! - each ledger batch is one transaction. It first locks, in one round trip,
//!   the settlements of its claim keys and the running totals of its
//!   patient-years (`SELECT … FOR UPDATE`, in key order), and reads the
//!   roster records its claims are assessed on; it decides with the rules in
//!   memory on what it read, writes everything with one statement per table,
//!   and commits with `synchronous_commit` at least `on`;
//! - a running total that does not exist yet cannot be locked, so it is
//!   inserted with a plain `INSERT`: of two instances creating it at once the
//!   second fails on the primary key, and a claim key used twice at once
//!   fails on its unique constraint. Those failures, lock cycles (40P01),
//!   serialization failures (40001, also at the COMMIT) and locks not had
//!   within a `lock_timeout` (55P03) come back as
//!   [`StoreError::Contended`] and the ledger runs the batch again, which
//!   then sees the other instance's commit;
//! - each round trip is pipelined, and once one of its statements fails the
//!   server refuses the rest with 25P02 ("current transaction is aborted"):
//!   a round trip fails with its first error (`sql::round_trip`), so a
//!   lost race is run again and any other failure names its cause, never
//!   the abort that follows it;
//! - nothing read is cached: the roster cache and the ledger's running-total
//!   cache are off for a shared store (see [`Store::shared`]).
//!
//! The [`Store`] trait is synchronous (the embedded store blocks on its
//! disk), so this store runs its own small tokio runtime for the driver and
//! its connections, and each call waits for its future there. The waiting
//! thread is a ledger thread, a blocking-pool thread, or a runtime worker
//! that first hands its other tasks away (`block_in_place`).
//!
//! Every connection starts with `enable_seqscan = off` (`NO_TABLE_SCANS`):
//! all statements here find rows by key or page through an index.
//!
//! Reads come from a pool of connections; the ledger has its own. A lost
//! connection is replaced on next use. When no primary can be reached, the
//! store says so at once ([`StoreError::Io`], `UNAVAILABLE` on the wire)
//! instead of waiting on every call, and a monitor retries with backoff and
//! publishes [`Store::availability`] for the health service. Connections
//! are made host by host, each host's attempt bounded as a whole (see
//! [`hosts`]), so a hung primary does not hide the standby promoted behind
//! it; and connections made before the monitor last found no primary are
//! not used again, since they may still lead to the hung one.

mod audit;
mod hosts;
mod migrate;
mod sql;
mod tls;

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    ops::RangeInclusive,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use hosts::{Failed, Hosts};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{runtime::RuntimeFlavor, sync::watch};
use tokio_postgres::{Client, Row, error::SqlState, types::ToSql};

pub use migrate::{MIGRATIONS, Migrated, SCHEMA_VERSION};

use super::{
    Batch, Meta, Plan, Scan, ScanIter, Store, StoreError, Txn, Versioned, snapshot::SnapshotSummary,
};
use crate::domain::{
    BusinessDay, ClaimId, ClaimKey, HospitalId, Person, RegionCode, ResidentId, Settlement,
    SettlementId, Usage, Year,
};

/// Longest one call may take, locks and commit included, before it fails
/// with `UNAVAILABLE`.
const CALL_MAX: Duration = Duration::from_secs(10);
/// How long a connection attempt to one host may take, unless the URL says
/// (`connect_timeout`).
const CONNECT_DEFAULT: Duration = Duration::from_secs(2);
/// Read connections per instance.
const POOL_SIZE: usize = 16;
/// How often the monitor checks a reachable database.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The monitor's first and longest wait between attempts while the
/// database cannot be reached.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Rows per page of a full scan (`verify`, roster export).
const SCAN_PAGE: i64 = 1000;

/// Every statement of this store finds its rows by key, or pages through an
/// index, so no plan should read a whole table. Without this setting a plan
/// made while a table is small (a new database, or one never analyzed)
/// scans it, and a connection keeps that plan as the table grows: each
/// batch then read every settlement and running total, and one settlement
/// took longer with every thousand before it. A session setting, sent with
/// the connection's start-up packet; options the URL gives are kept.
const NO_TABLE_SCANS: &str = "-c enable_seqscan=off";

/// The ledger connection's session: its statements have one shape whatever
/// their arrays hold, so they are planned once, not again at every batch (a
/// custom plan of a lock statement cost more than its execution).
const WRITER_SESSION: &str = "SET plan_cache_mode = force_generic_plan";

/// A statement parameter, owned, to travel to the driver's runtime.
type Param = Box<dyn ToSql + Send + Sync>;

/// The shared store, on one PostgreSQL database.
pub struct PostgresStore {
    /// Runs the driver; shut down in the background on drop, because the
    /// last owner may be an async task.
    runtime: Option<tokio::runtime::Runtime>,
    /// Drives the ledger's connection on the ledger's own thread (see
    /// [`PostgresStore::run_writer`]).
    writer_runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

/// What opening a database does with its schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// Applies the migrations this binary carries that the database lacks
    /// (one instance at a time), and refuses a newer schema: to serve.
    Migrate,
    /// Changes nothing, and refuses any schema but this binary's: to check
    /// (`medassist verify`).
    Expect,
}

/// What the store's futures share.
struct Shared {
    /// The URL's hosts, shared with the pool.
    hosts: Hosts,
    pool: Pool,
    /// The ledger's connection, kept between batches.
    writer: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// False while no primary can be reached: calls fail at once.
    up: watch::Sender<bool>,
    /// Set on the first failure that suggests the database went away, so
    /// the monitor checks at once instead of at its next tick.
    suspect: tokio::sync::Notify,
    /// When the monitor last found no primary. Connections made before are
    /// not used again: they may lead to the old primary, which may hang
    /// rather than close them, or come back.
    lost_at: std::sync::Mutex<Instant>,
    stopping: AtomicBool,
}

/// A connection with the statements the ledger uses, prepared once.
struct Connection {
    client: Client,
    statements: sql::Statements,
    made: Instant,
}

impl PostgresStore {
    /// Connects to `url` (through TLS verified against `ca`, when given)
    /// and does with the database's schema what `schema` says.
    pub fn open(url: &str, ca: Option<&Path>, schema: Schema) -> Result<PostgresStore, StoreError> {
        let (config, hosts) = target(url, ca)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("medassist-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the database runtime: {e}")))?;
        // Host by host, each bounded as a whole (see `hosts`).
        let manager = Manager::from_connect(
            config,
            hosts.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CALL_MAX))
            .create_timeout(Some(CALL_MAX))
            .build()
            .map_err(|e| StoreError::Io(format!("cannot build the connection pool: {e}")))?;
        let (up, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            hosts,
            pool,
            writer: tokio::sync::Mutex::new(None),
            up,
            suspect: tokio::sync::Notify::new(),
            lost_at: std::sync::Mutex::new(Instant::now()),
            stopping: AtomicBool::new(false),
        });
        let writer_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the database runtime: {e}")))?;
        let store = PostgresStore {
            runtime: Some(runtime),
            writer_runtime: Some(writer_runtime),
            shared,
        };
        let migrating = Arc::clone(&store.shared);
        store.run(async move {
            match schema {
                Schema::Migrate => migrate::apply(&migrating.hosts).await.map(drop),
                Schema::Expect => migrate::expect(&migrating.hosts).await,
            }
        })?;
        let monitor = Arc::clone(&store.shared);
        store.handle().spawn(monitor.watch());
        Ok(store)
    }

    /// Applies the migrations `url` lacks and says what it did, without
    /// serving (`medassist migrate`); `ca` as for [`PostgresStore::open`].
    pub fn migrate(url: &str, ca: Option<&Path>) -> Result<Migrated, StoreError> {
        let (_, hosts) = target(url, ca)?;
        // A thread of its own: the caller may be inside a runtime already.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| {
                            StoreError::Io(format!("cannot start the database runtime: {e}"))
                        })?
                        .block_on(migrate::apply(&hosts))
                })
                .join()
                .unwrap_or_else(|_| Err(StoreError::Io("the migration thread panicked".into())))
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        // Present until drop.
        self.runtime
            .as_ref()
            .map(|runtime| runtime.handle())
            .expect("the runtime lives as long as the store")
    }

    /// `work`, at most [`CALL_MAX`], and no longer than until the monitor
    /// finds the primary gone: a call waiting on a primary that hangs would
    /// otherwise wait out the whole bound, and the ledger's queue behind it.
    /// Its outcome is unknown either way, as when the connection breaks.
    fn bounded<T, F: Future<Output = Result<T, StoreError>>>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + use<T, F> {
        // Only a loss from now on counts: while no primary is known, calls
        // fail at once by themselves.
        let mut up = self.shared.up.subscribe();
        async move {
            let lost = async move {
                while up.changed().await.is_ok() {
                    if !*up.borrow_and_update() {
                        return;
                    }
                }
                std::future::pending().await
            };
            tokio::select! {
                outcome = tokio::time::timeout(CALL_MAX, work) => outcome.unwrap_or_else(|_| {
                    Err(StoreError::Io(format!(
                        "the database did not answer within {CALL_MAX:?}"
                    )))
                }),
                () = lost => Err(StoreError::Io(
                    "the PostgreSQL primary was lost while this call waited on it".into(),
                )),
            }
        }
    }

    /// Runs `work` on the store's runtime and waits for it ([`bounded`]).
    ///
    /// [`bounded`]: PostgresStore::bounded
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let work = self.bounded(work);
        self.handle().spawn(async move {
            let _ = done.send(work.await);
        });
        let wait = || result.recv();
        let received = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        received.unwrap_or_else(|_| Err(StoreError::Io("the database runtime stopped".into())))
    }

    /// Runs a step of the ledger's transaction on the calling thread
    /// ([`bounded`]). The ledger's connection lives on a runtime of its
    /// own that this thread drives while it waits, so a round trip costs no
    /// hand-over to another thread and back. Only the ledger's thread, which
    /// runs outside any runtime, calls it.
    fn run_writer<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(runtime) = &self.writer_runtime else {
            return Err(StoreError::Io("the database runtime stopped".into()));
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(StoreError::Io(
                "the ledger's transaction was used from inside an async task".into(),
            ));
        }
        runtime.block_on(self.bounded(work))
    }

    /// Runs one statement on a pooled connection; each connection prepares
    /// a statement once and keeps it.
    fn query(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>, StoreError> {
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            let client = shared.pooled().await?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| shared.failed(e))?;
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| param.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client
                .query(&statement, &params)
                .await
                .map_err(|e| shared.failed(e))
        })
    }

    /// The one record a statement finds, if any.
    fn record_of<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let rows = self.query(sql, params)?;
        rows.first()
            .map(|row| record(row).map(committed))
            .transpose()
    }

    /// The roster records after patient `after`, by patient ID.
    fn persons_after(&self, after: Option<String>) -> ScanIter<'_, Versioned<Person>> {
        self.scan_from(after, move |c, after: Option<String>| async move {
            let rows = c
                .query(
                    "SELECT patient_id, record FROM person WHERE patient_id > $1 \
                     ORDER BY patient_id LIMIT $2",
                    &[&after.unwrap_or_default(), &SCAN_PAGE],
                )
                .await
                .map_err(|e| classify(&e))?;
            rows.iter()
                .map(|row| Ok((row.get::<_, String>(0), committed(record(row)?))))
                .collect()
        })
    }

    /// Pages through a whole table in key order: `page` reads the rows
    /// after the last row of the previous page (`None` at first).
    fn scan<K, T, F, Fut>(&self, page: F) -> ScanIter<'_, T>
    where
        K: Clone + Send + 'static,
        T: Send + 'static,
        F: Fn(deadpool_postgres::Object, Option<K>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<Vec<(K, T)>, StoreError>> + Send,
    {
        self.scan_from(None, page)
    }

    /// [`Self::scan`] from the rows after `after` (`None`: the first).
    fn scan_from<K, T, F, Fut>(&self, mut after: Option<K>, page: F) -> ScanIter<'_, T>
    where
        K: Clone + Send + 'static,
        T: Send + 'static,
        F: Fn(deadpool_postgres::Object, Option<K>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<Vec<(K, T)>, StoreError>> + Send,
    {
        let mut buffered: VecDeque<T> = VecDeque::new();
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            loop {
                if let Some(item) = buffered.pop_front() {
                    return Some(Ok(item));
                }
                if done {
                    return None;
                }
                let (shared, page, from) = (Arc::clone(&self.shared), page.clone(), after.clone());
                let rows = self.run(async move {
                    let client = shared.pooled().await?;
                    page(client, from).await
                });
                match rows {
                    Err(error) => {
                        done = true;
                        return Some(Err(error));
                    }
                    Ok(rows) => {
                        done = (rows.len() as i64) < SCAN_PAGE;
                        for (key, item) in rows {
                            after = Some(key);
                            buffered.push_back(item);
                        }
                    }
                }
            }
        }))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.suspect.notify_one();
        for runtime in [self.runtime.take(), self.writer_runtime.take()]
            .into_iter()
            .flatten()
        {
            runtime.shutdown_background();
        }
    }
}

impl Shared {
    /// A pooled read connection; fails at once while the database is known
    /// to be unreachable.
    async fn pooled(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.reachable()?;
        loop {
            let pooled = self.pool.get().await.map_err(|e| {
                self.suspect.notify_one();
                StoreError::Io(format!("cannot reach a PostgreSQL primary: {e}"))
            })?;
            if deadpool_postgres::Object::metrics(&pooled).created >= self.lost_at() {
                return Ok(pooled);
            }
            // Made before the primary was lost: closed, not reused.
            drop(deadpool_postgres::Object::take(pooled));
        }
    }

    fn lost_at(&self) -> Instant {
        *self.lost_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reachable(&self) -> Result<(), StoreError> {
        match *self.up.borrow() {
            true => Ok(()),
            false => Err(StoreError::Io(
                "no PostgreSQL primary can be reached; retrying in the background".into(),
            )),
        }
    }

    /// Maps a driver error; a lost connection makes the monitor look at once.
    fn failed(&self, error: tokio_postgres::Error) -> StoreError {
        let mapped = classify(&error);
        if error.is_closed() || error.as_db_error().is_none() {
            self.suspect.notify_one();
        }
        mapped
    }

    /// The ledger's connection: the kept one while it is open, else a new
    /// one with its statements prepared.
    async fn writer(&self) -> Result<Arc<Connection>, StoreError> {
        self.reachable()?;
        let mut kept = self.writer.lock().await;
        let lost_at = self.lost_at();
        if let Some(connection) = kept
            .as_ref()
            .filter(|c| !c.client.is_closed() && c.made >= lost_at)
        {
            return Ok(Arc::clone(connection));
        }
        *kept = None;
        let client = connect(&self.hosts).await.inspect_err(|_| {
            self.suspect.notify_one();
        })?;
        client
            .batch_execute(WRITER_SESSION)
            .await
            .map_err(|e| self.failed(e))?;
        let statements = sql::Statements::prepare(&client)
            .await
            .map_err(|e| self.failed(e))?;
        let connection = Arc::new(Connection {
            client,
            statements,
            made: Instant::now(),
        });
        *kept = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// True when the ledger has a connection kept from an earlier batch.
    async fn has_writer(&self) -> bool {
        self.writer.lock().await.is_some()
    }

    /// Drops the ledger's connection after a failure that may have left it
    /// inside a transaction; the next batch connects afresh.
    async fn forget_writer(&self) {
        *self.writer.lock().await = None;
    }

    /// Publishes whether a primary can be reached: checked every
    /// [`PING_EVERY`] while it can, and with backoff while it cannot.
    async fn watch(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        while !self.stopping.load(Ordering::Relaxed) {
            // Every host's attempt, then the query.
            let limit = self.hosts.budget() + CONNECT_DEFAULT;
            let alive = tokio::time::timeout(limit, self.ping())
                .await
                .unwrap_or(false);
            let changed = self
                .up
                .send_if_modified(|up| std::mem::replace(up, alive) != alive);
            if changed && !alive {
                *self.lost_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
            if changed {
                match alive {
                    true => tracing::info!("PostgreSQL primary reachable again"),
                    false => tracing::warn!("no PostgreSQL primary can be reached"),
                }
            }
            let wait = match alive {
                true => {
                    backoff = BACKOFF_MIN;
                    PING_EVERY
                }
                false => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.suspect.notified(), if alive => {}
            }
        }
    }

    /// True when a fresh connection reaches a writable primary. A fresh
    /// one, not a pooled one: a pooled connection may be the only one left
    /// alive to a server that no longer accepts any.
    async fn ping(&self) -> bool {
        match connect(&self.hosts).await {
            Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
            Err(error) => {
                tracing::debug!(%error, "PostgreSQL check failed");
                false
            }
        }
    }
}

/// Reads the URL (or key=value string), with a connect timeout unless it
/// sets one. Multi-host URLs with `target_session_attrs=read-write` find
/// the primary among their hosts.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Io(format!("the database URL is not valid: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_DEFAULT);
    }
    if config.get_application_name().is_none() {
        config.application_name("medassist");
    }
    let options = match config.get_options() {
        Some(given) => format!("{given} {NO_TABLE_SCANS}"),
        None => NO_TABLE_SCANS.to_owned(),
    };
    config.options(&options);
    Ok(config)
}

/// Reads the URL and, with `ca`, sets up TLS (see [`tls`]): the settings
/// and the hosts to connect to.
fn target(url: &str, ca: Option<&Path>) -> Result<(tokio_postgres::Config, Hosts), StoreError> {
    let mut config = parse_url(url)?;
    let tls = tls::connector(&mut config, ca)?;
    let hosts = Hosts::of(&config, tls);
    Ok((config, hosts))
}

/// A new connection, to the first host that answers in time (see
/// [`hosts`]), whose commits wait for the WAL flush: its session's
/// `synchronous_commit` is raised to `on` unless it is already `on` or
/// `remote_apply`.
async fn connect(hosts: &Hosts) -> Result<Client, StoreError> {
    let (client, _) = hosts.connect().await.map_err(|failed| {
        StoreError::Io(match failed {
            Failed::Refused(e) => format!("cannot reach a PostgreSQL primary: {}", describe(&e)),
            Failed::TimedOut(limit) => {
                format!("cannot reach a PostgreSQL primary: no host answered within {limit:?}")
            }
        })
    })?;
    let level = client
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .await
        .map_err(|e| classify(&e))?
        .get::<_, String>(0);
    if !matches!(level.as_str(), "on" | "remote_apply") {
        client
            .batch_execute("SET synchronous_commit = on")
            .await
            .map_err(|e| classify(&e))?;
    }
    Ok(client)
}

/// The store error of a driver error: the conflicts another instance causes
/// are retried by the ledger, everything else fails the call. Of a
/// pipelined round trip, classify its first error, not the aborts that
/// follow it (see `sql::round_trip`).
fn classify(error: &tokio_postgres::Error) -> StoreError {
    match error.code() {
        Some(code) if contended(code) => StoreError::Contended(describe(error)),
        // Says only that an earlier statement failed; with no earlier error
        // at hand, its own words would pass for the cause.
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => StoreError::Io(
            "PostgreSQL: a statement was sent after its transaction had failed, \
             and the first failure was not seen"
                .into(),
        ),
        _ => StoreError::Io(format!("PostgreSQL: {}", describe(error))),
    }
}

/// True for the ways a transaction loses a race with another instance's:
/// the other created the same claim key or running total first (23505),
/// the two waited on each other (40P01), a snapshot or a COMMIT found the
/// other's write (40001), or a lock was not had in time (55P03, under a
/// `lock_timeout` the database's owner set). Run again, the batch sees the
/// other's commit.
fn contended(code: &SqlState) -> bool {
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::LOCK_NOT_AVAILABLE,
    ]
    .contains(code)
}

/// The server's own words for a database error (the driver's `Display`
/// says only "db error"), else the driver's error and its cause.
fn describe(error: &tokio_postgres::Error) -> String {
    match (error.as_db_error(), std::error::Error::source(error)) {
        (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
        (None, Some(source)) => format!("{error}: {source}"),
        (None, None) => error.to_string(),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value)
        .map_err(|e| StoreError::Corrupt(format!("a stored record cannot be read: {e}")))
}

/// A record read outside a ledger transaction: committed, so there is no
/// commit of this process to wait for (number 0).
fn committed<T>(value: T) -> Versioned<T> {
    Versioned { value, commit: 0 }
}

fn record<T: DeserializeOwned>(row: &Row) -> Result<T, StoreError> {
    from_json(row.get::<_, serde_json::Value>("record"))
}

fn records<T: DeserializeOwned>(rows: Vec<Row>) -> Result<Vec<Versioned<T>>, StoreError> {
    rows.iter().map(|row| record(row).map(committed)).collect()
}

fn id_param(id: Option<SettlementId>) -> i64 {
    id.map_or(0, |id| id.get() as i64)
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The `LIKE` pattern of the regions `region` covers: a county itself, a
/// city its counties, a province its cities.
fn covered(region: RegionCode) -> String {
    let code = region.as_str();
    let prefix = match code.as_bytes() {
        [_, _, b'0', b'0', b'0', b'0'] => &code[..2],
        [_, _, _, _, b'0', b'0'] => &code[..4],
        _ => code,
    };
    format!("{prefix}%")
}

impl Store for PostgresStore {
    fn meta(&self) -> Result<Meta, StoreError> {
        // Commit numbers are this process's own; settlement numbers come
        // from the database's sequence, whose next value this reports.
        let rows = self.query(
            "SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM settlement_id",
            Vec::new(),
        )?;
        let next: i64 = rows
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::Corrupt("the settlement number sequence is empty".into()))?;
        Ok(Meta {
            last_commit: 0,
            next_settlement_id: SettlementId::new(next as u64),
        })
    }

    fn person(&self, id: &ResidentId) -> Result<Option<Versioned<Person>>, StoreError> {
        self.record_of(
            "SELECT record FROM person WHERE patient_id = $1",
            vec![Box::new(id.as_str().to_owned())],
        )
    }

    fn settlement(&self, id: SettlementId) -> Result<Option<Versioned<Settlement>>, StoreError> {
        self.record_of(
            "SELECT record FROM settlement WHERE id = $1",
            vec![Box::new(id.get() as i64)],
        )
    }

    fn settlement_by_claim(
        &self,
        key: &ClaimKey,
    ) -> Result<Option<Versioned<Settlement>>, StoreError> {
        self.record_of(
            "SELECT record FROM settlement WHERE hospital_id = $1 AND claim_id = $2",
            vec![
                Box::new(key.hospital_id.as_str().to_owned()),
                Box::new(key.claim_id.as_str().to_owned()),
            ],
        )
    }

    fn usage(
        &self,
        patient: &ResidentId,
        year: Year,
    ) -> Result<Option<Versioned<Usage>>, StoreError> {
        self.record_of(
            "SELECT record FROM usage WHERE patient_id = $1 AND year = $2",
            vec![Box::new(patient.as_str().to_owned()), Box::new(year.get())],
        )
    }

    fn settlements_of(
        &self,
        patient: &ResidentId,
        year: Year,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        records(self.query(
            "SELECT record FROM settlement WHERE patient_id = $1 AND year = $2 AND id > $3 \
             ORDER BY id LIMIT $4",
            vec![
                Box::new(patient.as_str().to_owned()),
                Box::new(year.get()),
                Box::new(id_param(after)),
                Box::new(limit_param(limit)),
            ],
        )?)
    }

    fn settlements_on_days(
        &self,
        hospital: Option<&HospitalId>,
        days: RangeInclusive<BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        let mut params: Vec<Param> = vec![
            Box::new(days.start().days_since_epoch()),
            Box::new(days.end().days_since_epoch()),
            Box::new(id_param(after)),
            Box::new(limit_param(limit)),
        ];
        let sql = match hospital {
            None => {
                "SELECT record FROM settlement WHERE id > $3 AND \
                 (settled_day BETWEEN $1 AND $2 OR reversed_day BETWEEN $1 AND $2) \
                 ORDER BY id LIMIT $4"
            }
            Some(hospital) => {
                params.push(Box::new(hospital.as_str().to_owned()));
                "SELECT record FROM settlement WHERE hospital_id = $5 AND id > $3 AND \
                 (settled_day BETWEEN $1 AND $2 OR reversed_day BETWEEN $1 AND $2) \
                 ORDER BY id LIMIT $4"
            }
        };
        records(self.query(sql, params)?)
    }

    fn referrals(
        &self,
        region: RegionCode,
        days: RangeInclusive<BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        // Resumes just after the last one answered, even if it has since
        // been reversed and left the list.
        records(self.query(
            "SELECT record FROM settlement \
             WHERE referral_region IS NOT NULL AND referral_region LIKE $4 \
               AND settled_day BETWEEN $1 AND $2 \
               AND (settled_day, id) > (COALESCE( \
                     (SELECT s.settled_day FROM settlement s WHERE s.id = $3), $1 - 1), $3) \
             ORDER BY settled_day, id LIMIT $5",
            vec![
                Box::new(days.start().days_since_epoch()),
                Box::new(days.end().days_since_epoch()),
                Box::new(id_param(after)),
                Box::new(covered(region)),
                Box::new(limit_param(limit)),
            ],
        )?)
    }

    fn apply(&self, _batch: &Batch) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "a shared store writes only inside a ledger transaction".into(),
        ))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn persons(&self, after: Option<&ResidentId>) -> ScanIter<'_, Versioned<Person>> {
        self.persons_after(after.map(|id| id.as_str().to_owned()))
    }

    fn settlements(&self) -> ScanIter<'_, Versioned<Settlement>> {
        self.scan_settlements()
    }

    fn save_snapshot(
        &self,
        _out: &mut dyn std::io::Write,
        _taken_at_micros: i64,
    ) -> Result<SnapshotSummary, StoreError> {
        Err(StoreError::Unsupported(
            "this service keeps its ledger in PostgreSQL, which it does not copy itself: \
             back it up with PostgreSQL's own tools (pg_dump, or a base backup with WAL \
             archiving; see the README, \"Backups on PostgreSQL\")"
                .into(),
        ))
    }

    fn shared(&self) -> bool {
        true
    }

    fn begin(&self, plan: &Plan) -> Result<Option<Box<dyn Txn + '_>>, StoreError> {
        let shared = &self.shared;
        let started = self.run_writer(async {
            // A kept connection the server has since closed (a restart, a
            // failover) is found dead only when used: the batch then starts
            // once more, on a new connection.
            let mut fresh = false;
            loop {
                let reused = !fresh && shared.has_writer().await;
                let connection = shared.writer().await?;
                let begun = sql::begin(&connection, plan).await;
                match begun {
                    Ok(locked) => return Ok((connection, locked)),
                    Err(error) => {
                        abandon(shared, &connection, &error).await;
                        if !(reused && connection.client.is_closed()) {
                            return Err(error);
                        }
                        fresh = true;
                    }
                }
            }
        })?;
        let (connection, locked) = started;
        Ok(Some(Box::new(PgTxn {
            store: self,
            connection: Some(connection),
            locked,
            writes: None,
            failed: None,
            committing: false,
        })))
    }

    fn audit_head(&self) -> Result<crate::audit::Head, StoreError> {
        self.start_audit_chain()
    }

    fn audit_records(
        &self,
        query: &crate::audit::Query,
        after: Option<crate::audit::Cursor>,
        limit: usize,
    ) -> Result<super::AuditPage, StoreError> {
        self.read_audit(query, after, limit)
    }

    fn prune_audit(&self, before: crate::domain::Timestamp) -> Result<u64, StoreError> {
        self.prune_audit_before(before)
    }

    fn availability(&self) -> Option<watch::Receiver<bool>> {
        Some(self.shared.up.subscribe())
    }
}

/// Ends a transaction that failed: rolled back on a live connection (kept
/// for the next batch), or the connection dropped (the server rolls back).
async fn abandon(shared: &Shared, connection: &Connection, error: &StoreError) {
    rolled_back(shared, connection, error, true).await
}

/// Like [`abandon`]; `open` is false when the server has ended the
/// transaction itself (its COMMIT was answered with a rollback), so no
/// ROLLBACK is sent.
async fn rolled_back(shared: &Shared, connection: &Connection, error: &StoreError, open: bool) {
    let kept = matches!(error, StoreError::Contended(_))
        && (!open || connection.client.batch_execute("ROLLBACK").await.is_ok());
    if !kept {
        shared.forget_writer().await;
    }
}

/// What a batch's transaction has locked and read so far.
#[derive(Default)]
pub(crate) struct Locked {
    /// Settlement numbers reserved for the batch's new settlements.
    ids: VecDeque<SettlementId>,
    /// Claim keys looked up, with what they hold.
    claims: HashMap<ClaimKey, Option<Settlement>>,
    /// Patient-years looked up, with their totals.
    usages: HashMap<(ResidentId, Year), Option<Usage>>,
    /// Roster records looked up.
    persons: HashMap<ResidentId, Option<Person>>,
}

/// One ledger batch's transaction.
struct PgTxn<'a> {
    store: &'a PostgresStore,
    /// Taken by commit, or by a failure that ends the transaction.
    connection: Option<Arc<Connection>>,
    locked: Locked,
    /// What [`Txn::apply`] prepared, sent by [`Txn::commit`].
    writes: Option<sql::Writes>,
    /// The failure that ended the transaction early; the commit reports it,
    /// so a contended read makes the ledger run the batch again.
    failed: Option<StoreError>,
    /// The COMMIT has been sent (with the writes, in one round trip).
    committing: bool,
}

impl PgTxn<'_> {
    /// Runs one step of the transaction; a failure ends it.
    fn step<T, Fut>(&mut self, work: impl FnOnce(Arc<Connection>) -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let connection = match (&self.connection, &self.failed) {
            (Some(connection), _) => Arc::clone(connection),
            (None, Some(failed)) => return Err(failed.clone()),
            (None, None) => return Err(StoreError::Io("the transaction has ended".into())),
        };
        let result = self.store.run_writer(work(Arc::clone(&connection)));
        if let Err(error) = &result {
            self.connection = None;
            self.failed = Some(error.clone());
            // Ends the transaction; its outcome is not needed. The commit
            // step ends it itself: its COMMIT follows the writes.
            let open = !self.committing;
            let _ = self.store.run_writer(async {
                rolled_back(&self.store.shared, &connection, error, open).await;
                Ok(())
            });
        }
        result
    }
}

impl Txn for PgTxn<'_> {
    fn settlement_by_claim(&mut self, key: &ClaimKey) -> Result<Option<Settlement>, StoreError> {
        if let Some(found) = self.locked.claims.get(key) {
            return Ok(found.clone());
        }
        let wanted = [key.clone()];
        let found = self.step(|c| async move { sql::lock_claims(&c, &wanted).await })?;
        self.locked.claims.extend(found);
        Ok(self.locked.claims.get(key).cloned().flatten())
    }

    fn usage(&mut self, patient: &ResidentId, year: Year) -> Result<Option<Usage>, StoreError> {
        let key = (patient.clone(), year);
        if let Some(found) = self.locked.usages.get(&key) {
            return Ok(*found);
        }
        let wanted = [key.clone()];
        let found = self.step(|c| async move { sql::lock_usages(&c, &wanted).await })?;
        self.locked.usages.extend(found);
        Ok(self.locked.usages.get(&key).copied().flatten())
    }

    fn person(&mut self, id: &ResidentId) -> Result<Option<Person>, StoreError> {
        if let Some(found) = self.locked.persons.get(id) {
            return Ok(found.clone());
        }
        let wanted = [id.clone()];
        let found = self.step(|c| async move { sql::lock_persons(&c, &wanted).await })?;
        self.locked.persons.extend(found);
        Ok(self.locked.persons.get(id).cloned().flatten())
    }

    fn settlement_id(&mut self) -> Result<SettlementId, StoreError> {
        if let Some(id) = self.locked.ids.pop_front() {
            return Ok(id);
        }
        let mut ids = self.step(|c| async move { sql::reserve_ids(&c, 1).await })?;
        ids.pop_front()
            .ok_or_else(|| StoreError::Io("the settlement number sequence gave nothing".into()))
    }

    fn apply(&mut self, batch: &Batch) -> Result<(), StoreError> {
        // Sent with the COMMIT, in one round trip.
        self.writes = Some(sql::Writes::of(batch, &self.locked)?);
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let writes = self.writes.take().unwrap_or_default();
        self.committing = true;
        // When the connection is lost at the commit its outcome is unknown:
        // a retry with the same claim key is answered from whatever was
        // committed.
        self.step(|c| async move { writes.commit(&c).await })?;
        self.connection = None;
        Ok(())
    }
}

impl Drop for PgTxn<'_> {
    fn drop(&mut self) {
        // A transaction neither committed nor failed (a batch that panicked):
        // end it, so the connection is not reused inside it.
        if let Some(connection) = self.connection.take() {
            let ended = StoreError::Io("the batch ended without committing".into());
            let _ = self.store.run_writer(async {
                abandon(&self.store.shared, &connection, &ended).await;
                Ok(())
            });
        }
    }
}

/// One settlement's indexed columns, for the full scans of `verify`.
struct IndexRow {
    id: SettlementId,
    key: ClaimKey,
    patient: ResidentId,
    year: Year,
    settled_day: BusinessDay,
    reversed_day: Option<BusinessDay>,
    referral_region: Option<RegionCode>,
}

impl IndexRow {
    fn of(row: &Row) -> Result<IndexRow, StoreError> {
        let damaged = |what: &str| StoreError::Corrupt(format!("settlement row with a bad {what}"));
        Ok(IndexRow {
            id: SettlementId::new(row.get::<_, i64>("id") as u64),
            key: ClaimKey {
                hospital_id: HospitalId::parse(row.get("hospital_id"))
                    .map_err(|_| damaged("hospital_id"))?,
                claim_id: ClaimId::parse(row.get("claim_id")).map_err(|_| damaged("claim_id"))?,
            },
            patient: ResidentId::parse(row.get("patient_id")).map_err(|_| damaged("patient_id"))?,
            year: Year::parse(row.get("year")).map_err(|_| damaged("year"))?,
            settled_day: BusinessDay::from_days_since_epoch(row.get("settled_day")),
            reversed_day: row
                .get::<_, Option<i32>>("reversed_day")
                .map(BusinessDay::from_days_since_epoch),
            referral_region: row
                .get::<_, Option<&str>>("referral_region")
                .map(|text| RegionCode::parse(text).map_err(|_| damaged("referral_region")))
                .transpose()?,
        })
    }
}

impl PostgresStore {
    /// Every settlement's indexed columns, by number, mapped by `each`.
    fn scan_index<T: Send + 'static>(&self, each: fn(IndexRow) -> Vec<T>) -> ScanIter<'_, T> {
        let rows = self.scan(move |c, after: Option<i64>| async move {
            let rows = c
                .query(
                    "SELECT id, hospital_id, claim_id, patient_id, year, settled_day, \
                     reversed_day, referral_region FROM settlement WHERE id > $1 \
                     ORDER BY id LIMIT $2",
                    &[&after.unwrap_or(0), &SCAN_PAGE],
                )
                .await
                .map_err(|e| classify(&e))?;
            rows.iter()
                .map(|row| Ok((row.get::<_, i64>("id"), IndexRow::of(row)?)))
                .collect()
        });
        Box::new(rows.flat_map(move |row| match row {
            Ok(row) => each(row).into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        }))
    }
}

impl Scan for PostgresStore {
    fn scan_settlements(&self) -> ScanIter<'_, Versioned<Settlement>> {
        self.scan(move |c, after: Option<i64>| async move {
            let rows = c
                .query(
                    "SELECT id, record FROM settlement WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after.unwrap_or(0), &SCAN_PAGE],
                )
                .await
                .map_err(|e| classify(&e))?;
            rows.iter()
                .map(|row| Ok((row.get::<_, i64>("id"), committed(record(row)?))))
                .collect()
        })
    }

    fn scan_claim_index(&self) -> ScanIter<'_, (ClaimKey, SettlementId)> {
        self.scan_index(|row| vec![(row.key, row.id)])
    }

    fn scan_patient_year_index(&self) -> ScanIter<'_, (ResidentId, Year, SettlementId)> {
        self.scan_index(|row| vec![(row.patient, row.year, row.id)])
    }

    fn scan_usages(&self) -> ScanIter<'_, (ResidentId, Year, Versioned<Usage>)> {
        self.scan(move |c, after: Option<(String, i32)>| async move {
            let (patient, year) = after.unwrap_or_default();
            let rows = c
                .query(
                    "SELECT patient_id, year, record FROM usage \
                     WHERE (patient_id, year) > ($1, $2) ORDER BY patient_id, year LIMIT $3",
                    &[&patient, &year, &SCAN_PAGE],
                )
                .await
                .map_err(|e| classify(&e))?;
            rows.iter()
                .map(|row| {
                    let (patient, year) = (row.get::<_, String>(0), row.get::<_, i32>(1));
                    let damaged = || StoreError::Corrupt(format!("usage row of {year} damaged"));
                    let item = (
                        ResidentId::parse(&patient).map_err(|_| damaged())?,
                        Year::parse(year).map_err(|_| damaged())?,
                        committed(record(row)?),
                    );
                    Ok(((patient, year), item))
                })
                .collect()
        })
    }

    fn scan_persons(&self) -> ScanIter<'_, Versioned<Person>> {
        self.persons_after(None)
    }

    fn scan_day_index(&self) -> ScanIter<'_, (Option<HospitalId>, BusinessDay, SettlementId)> {
        self.scan_index(|row| {
            let days = std::iter::once(row.settled_day)
                .chain(row.reversed_day.filter(|day| *day != row.settled_day));
            days.flat_map(|day| {
                [
                    (None, day, row.id),
                    (Some(row.key.hospital_id.clone()), day, row.id),
                ]
            })
            .collect()
        })
    }

    fn scan_referral_index(&self) -> ScanIter<'_, (BusinessDay, SettlementId, RegionCode)> {
        self.scan_index(|row| match row.referral_region {
            Some(region) => vec![(row.settled_day, row.id, region)],
            None => Vec::new(),
        })
    }
}

/// A database of a test's own on the PostgreSQL server the api suite uses
/// (`MEDASSIST_TEST_POSTGRES`), dropped with it.
#[cfg(test)]
pub(super) struct ScratchDatabase {
    server: String,
    name: String,
    /// Its URL.
    pub(super) url: String,
}

#[cfg(test)]
impl ScratchDatabase {
    /// A new, empty database named after `tag` and this process.
    pub(super) fn new(tag: &str) -> ScratchDatabase {
        let server = std::env::var("MEDASSIST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".to_owned());
        let name = format!("medassist_{tag}_{}", std::process::id());
        let url = format!("{server}/{name}");
        let database = ScratchDatabase { server, name, url };
        database.admin(&[
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.name),
            format!("CREATE DATABASE {}", database.name),
        ]);
        database
    }

    /// Runs each statement on the server's `postgres` database, one at a
    /// time (some refuse to run in a transaction block).
    pub(super) fn admin(&self, statements: &[String]) {
        let (_, hosts) = target(&format!("{}/postgres", self.server), None).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let admin = connect(&hosts).await.unwrap();
                for sql in statements {
                    admin.batch_execute(sql).await.unwrap();
                }
            })
    }
}

#[cfg(test)]
impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        self.admin(&[format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the database's default, a connection of the store commits
    /// at least with `synchronous_commit = on` (the WAL flushed before the
    /// answer); `remote_apply`, stricter, is kept.
    #[test]
    fn a_connection_never_commits_less_than_synchronously() {
        let database = ScratchDatabase::new("sync");
        let (_, hosts) = target(&database.url, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for (default, expected) in [
            ("off", "on"),
            ("local", "on"),
            ("remote_write", "on"),
            ("on", "on"),
            ("remote_apply", "remote_apply"),
        ] {
            database.admin(&[format!(
                "ALTER DATABASE {} SET synchronous_commit = {default}",
                database.name
            )]);
            let level: String = runtime.block_on(async {
                let client = connect(&hosts).await.unwrap();
                client
                    .query_one("SHOW synchronous_commit", &[])
                    .await
                    .unwrap()
                    .get(0)
            });
            assert_eq!(level, expected, "with the database's default {default}");
        }
    }

    /// Proves which SQLSTATEs the ledger runs a batch again for: the four
    /// ways of losing a race with another instance, and nothing else. Not
    /// a statement refused because its transaction failed earlier (25P02:
    /// its cause is the earlier error), a cancelled statement, a standby
    /// that refuses writes, a full disk, a lost or refused connection.
    #[test]
    fn only_a_lost_race_is_contention() {
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::LOCK_NOT_AVAILABLE,
        ] {
            assert!(contended(&code), "{} is a lost race", code.code());
        }
        for code in [
            SqlState::IN_FAILED_SQL_TRANSACTION,
            SqlState::QUERY_CANCELED,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::DISK_FULL,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::UNDEFINED_TABLE,
            SqlState::INSUFFICIENT_PRIVILEGE,
        ] {
            assert!(!contended(&code), "{} is not a lost race", code.code());
        }
    }

    #[test]
    fn a_city_covers_its_counties_and_a_province_its_cities() {
        let region = |code| RegionCode::parse(code).unwrap();
        assert_eq!(covered(region("320102")), "320102%");
        assert_eq!(covered(region("320100")), "3201%");
        assert_eq!(covered(region("320000")), "32%");
    }

    #[test]
    fn a_url_without_a_connect_timeout_gets_one() {
        let config = parse_url("postgresql://a:1,b:2/db?target_session_attrs=read-write").unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_DEFAULT));
        assert_eq!(config.get_hosts().len(), 2);
        assert!(parse_url("postgresql://a/db?connect_timeout=1").is_ok());
        assert!(parse_url("postgresql://a/db?sslmode=bogus").is_err());
    }

    #[test]
    fn a_url_s_session_options_are_kept_beside_the_store_s_own() {
        let ours = parse_url("postgresql://a/db").unwrap();
        assert_eq!(ours.get_options(), Some(NO_TABLE_SCANS));
        let given = parse_url("postgresql://a/db?options=-c%20work_mem%3D8MB").unwrap();
        assert_eq!(
            given.get_options(),
            Some(format!("-c work_mem=8MB {NO_TABLE_SCANS}").as_str())
        );
    }
}
