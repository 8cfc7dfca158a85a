//! The schema's versions, carried in the binary and applied in order.
//!
//! `medassist_schema` records each version applied. Instances starting
//! together take an advisory lock first, so one applies what is missing and
//! the others find it done. A database whose schema is newer than this
//! binary knows is refused: an older binary must not write to tables whose
//! meaning it does not know.

use super::{StoreError, classify, connect, describe, hosts::Hosts};

/// Every migration, in order: version `i + 1` is `MIGRATIONS[i]`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_ledger.sql"),
    include_str!("migrations/0002_audit.sql"),
    include_str!("migrations/0003_policy_classes.sql"),
    include_str!("migrations/0004_applications.sql"),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key that serializes migrations ("medassist" in ASCII,
/// folded into 63 bits).
const MIGRATION_LOCK: i64 = 0x6d65_6461_7373_6973;

/// What a migration run found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i32,
    /// The schema version now ([`SCHEMA_VERSION`]).
    pub to: i32,
}

/// Brings the database's schema to [`SCHEMA_VERSION`], each version in its
/// own transaction, under the migration lock.
pub(super) async fn apply(hosts: &Hosts) -> Result<Migrated, StoreError> {
    let client = connect(hosts).await?;
    let db = |e: tokio_postgres::Error| classify(&e);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    let result = async {
        // Created only when missing: a serving role without CREATE on the
        // schema may start on a migrated database.
        if !recorded(&client).await? {
            client
                .batch_execute(
                    "CREATE TABLE medassist_schema (\
                         version    integer PRIMARY KEY,\
                         applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(db)?;
        }
        let from = version(&client).await?;
        if from > SCHEMA_VERSION {
            return Err(newer(from));
        }
        for (version, script) in (from + 1..).zip(&MIGRATIONS[from as usize..]) {
            let migration = format!(
                "BEGIN;\n{script}\nINSERT INTO medassist_schema (version) VALUES ({version});\nCOMMIT;"
            );
            if let Err(error) = client.batch_execute(&migration).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(StoreError::Io(format!(
                    "schema version {version} could not be applied: {}",
                    describe(&error)
                )));
            }
            tracing::info!(version, "applied a schema migration");
        }
        Ok(Migrated {
            from,
            to: SCHEMA_VERSION,
        })
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

/// Refuses a schema other than [`SCHEMA_VERSION`], and changes nothing: a
/// check (`medassist verify`) must not migrate the database it checks, nor
/// make a schema in one that was never medassist's.
pub(super) async fn expect(hosts: &Hosts) -> Result<(), StoreError> {
    let client = connect(hosts).await?;
    let found = match recorded(&client).await? {
        true => version(&client).await?,
        false => 0,
    };
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(newer(found)),
        std::cmp::Ordering::Less => Err(StoreError::Unsupported(format!(
            "the database's schema is version {found}, older than this medassist's \
             (version {SCHEMA_VERSION}): apply its migrations first (`medassist migrate`)"
        ))),
    }
}

/// True when the database records its schema versions.
async fn recorded(client: &tokio_postgres::Client) -> Result<bool, StoreError> {
    Ok(client
        .query_one("SELECT to_regclass('medassist_schema') IS NOT NULL", &[])
        .await
        .map_err(|e| classify(&e))?
        .get(0))
}

/// The newest schema version applied.
async fn version(client: &tokio_postgres::Client) -> Result<i32, StoreError> {
    Ok(client
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM medassist_schema",
            &[],
        )
        .await
        .map_err(|e| classify(&e))?
        .get(0))
}

fn newer(found: i32) -> StoreError {
    StoreError::Unsupported(format!(
        "the database's schema is version {found}, newer than this medassist knows \
         (version {SCHEMA_VERSION}): run the medassist release that migrated it, or a newer one"
    ))
}
