//! The ledger transaction's statements: locks taken in one round trip,
//! writes in one more, each table written by one statement whatever the
//! batch's size.

use std::collections::{HashMap, VecDeque};

use tokio_postgres::{Client, Row, Statement, error::SqlState};

use super::audit::AuditRows;
use super::{Connection, Locked, StoreError, classify, from_json, to_json};
use crate::{
    domain::{
        ClaimId, ClaimKey, HospitalId, Person, ResidentId, Settlement, SettlementId, Usage, Year,
    },
    store::{Batch, Plan},
};

/// Statements prepared once per ledger connection.
pub(super) struct Statements {
    reserve_ids: Statement,
    lock_claims: Statement,
    lock_usages: Statement,
    lock_persons: Statement,
    read_persons: Statement,
    insert_settlements: Statement,
    update_settlements: Statement,
    insert_usages: Statement,
    update_usages: Statement,
    upsert_persons: Statement,
    insert_audit: Statement,
}

/// Reserves `$1` settlement numbers.
const RESERVE_IDS: &str = "SELECT nextval('settlement_id') FROM generate_series(1, $1::integer)";

/// Locks the settlements of the claim keys, in number order.
const LOCK_CLAIMS: &str = "SELECT s.hospital_id, s.claim_id, s.record FROM settlement s \
     JOIN UNNEST($1::text[], $2::text[]) AS k(hospital_id, claim_id) \
       ON s.hospital_id = k.hospital_id AND s.claim_id = k.claim_id \
     ORDER BY s.id FOR UPDATE OF s";

/// Locks the running totals of the patient-years, in key order. One that
/// does not exist is not locked; its later plain INSERT is what fails if
/// another instance creates it first.
const LOCK_USAGES: &str = "SELECT u.patient_id, u.year, u.record FROM usage u \
     JOIN UNNEST($1::text[], $2::integer[]) AS k(patient_id, year) \
       ON u.patient_id = k.patient_id AND u.year = k.year \
     ORDER BY u.patient_id, u.year FOR UPDATE OF u";

const LOCK_PERSONS: &str = "SELECT patient_id, record FROM person WHERE patient_id = ANY($1::text[]) \
     ORDER BY patient_id FOR UPDATE";

/// Reads the roster records that claims are assessed on, without a lock:
/// a lock would write to each record.
const READ_PERSONS: &str =
    "SELECT patient_id, record FROM person WHERE patient_id = ANY($1::text[])";

const INSERT_SETTLEMENTS: &str = "INSERT INTO settlement (id, hospital_id, claim_id, patient_id, \
     year, settled_day, reversed_day, referral_region, record) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::integer[], \
       $6::integer[], $7::integer[], $8::text[], $9::jsonb[])";

const UPDATE_SETTLEMENTS: &str = "UPDATE settlement s \
     SET reversed_day = u.reversed_day, referral_region = u.referral_region, record = u.record \
     FROM UNNEST($1::bigint[], $2::integer[], $3::text[], $4::jsonb[]) \
       AS u(id, reversed_day, referral_region, record) \
     WHERE s.id = u.id";

const INSERT_USAGES: &str = "INSERT INTO usage (patient_id, year, record) \
     SELECT * FROM UNNEST($1::text[], $2::integer[], $3::jsonb[])";

const UPDATE_USAGES: &str = "UPDATE usage t SET record = u.record \
     FROM UNNEST($1::text[], $2::integer[], $3::jsonb[]) AS u(patient_id, year, record) \
     WHERE t.patient_id = u.patient_id AND t.year = u.year";

const UPSERT_PERSONS: &str = "INSERT INTO person (patient_id, record) \
     SELECT * FROM UNNEST($1::text[], $2::jsonb[]) \
     ON CONFLICT (patient_id) DO UPDATE SET record = EXCLUDED.record";

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        // Prepared together: one round trip.
        let (a, b, c, d, r, e, f, g, h, i, j) = tokio::join!(
            biased;
            client.prepare(RESERVE_IDS),
            client.prepare(LOCK_CLAIMS),
            client.prepare(LOCK_USAGES),
            client.prepare(LOCK_PERSONS),
            client.prepare(READ_PERSONS),
            client.prepare(INSERT_SETTLEMENTS),
            client.prepare(UPDATE_SETTLEMENTS),
            client.prepare(INSERT_USAGES),
            client.prepare(UPDATE_USAGES),
            client.prepare(UPSERT_PERSONS),
            client.prepare(super::audit::INSERT),
        );
        Ok(Statements {
            reserve_ids: a?,
            lock_claims: b?,
            lock_usages: c?,
            lock_persons: d?,
            read_persons: r?,
            insert_settlements: e?,
            update_settlements: f?,
            insert_usages: g?,
            update_usages: h?,
            upsert_persons: i?,
            insert_audit: j?,
        })
    }
}

fn db(error: tokio_postgres::Error) -> StoreError {
    classify(&error)
}

/// A statement's outcome, as the driver answers it.
type Sent<T> = Result<T, tokio_postgres::Error>;

/// What each statement of a pipelined round trip answered, in the order
/// they were sent, or why the round trip failed: its first error.
///
/// Once a statement of a transaction fails, the server refuses every later
/// one with 25P02 (`in_failed_sql_transaction`), which says only that an
/// earlier one failed. Classified in its place, it turned a lost race (a
/// unique violation or a lock cycle, which the ledger runs again) into an
/// error answer. An abort is reported only when nothing else failed, and
/// [`classify`] then names no cause it does not know.
fn round_trip<T, const N: usize>(outcomes: [Sent<T>; N]) -> Result<[T; N], StoreError> {
    let aborted =
        |error: &&tokio_postgres::Error| error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION);
    // The first error that is not an abort, else the first abort.
    let failed = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().err())
        .min_by_key(aborted);
    if let Some(error) = failed {
        return Err(classify(error));
    }
    Ok(outcomes.map(|outcome| outcome.expect("no statement of the round trip failed")))
}

/// `query`'s rows, or none, without sending it, when nothing is `asked`.
async fn rows_if(asked: bool, query: impl Future<Output = Sent<Vec<Row>>>) -> Sent<Vec<Row>> {
    match asked {
        true => query.await,
        false => Ok(Vec::new()),
    }
}

/// Starts the batch's transaction and takes every lock the plan names, all
/// in one pipelined round trip: BEGIN is sent first, so the locks belong
/// to the transaction. A failure is the first of its statements' (see
/// [`round_trip`]).
pub(super) async fn begin(c: &Connection, plan: &Plan) -> Result<Locked, StoreError> {
    let new = id_count(plan.new_settlements)?;
    let (begun, ids, claims, usages, persons, roster) = tokio::join!(
        biased;
        c.client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED"),
        rows_if(new > 0, id_rows(c, new)),
        rows_if(!plan.claims.is_empty(), claim_rows(c, &plan.claims)),
        rows_if(!plan.patient_years.is_empty(), usage_lock_rows(c, &plan.patient_years)),
        rows_if(
            !plan.persons.is_empty(),
            person_rows(c, &c.statements.lock_persons, &plan.persons)
        ),
        rows_if(
            !plan.roster.is_empty(),
            person_rows(c, &c.statements.read_persons, &plan.roster)
        ),
    );
    let [_, ids, claims, usages, persons, roster] = round_trip([
        begun.map(|()| Vec::new()),
        ids,
        claims,
        usages,
        persons,
        roster,
    ])?;
    // A record both locked and read is the same committed record.
    let mut read = persons_of(&plan.roster, roster)?;
    read.extend(persons_of(&plan.persons, persons)?);
    Ok(Locked {
        ids: ids_of(&ids),
        claims: claims_of(&plan.claims, claims)?,
        usages: usages_of(&plan.patient_years, usages)?,
        persons: read,
    })
}

/// `n` settlement numbers as the sequence statement's parameter.
fn id_count(n: usize) -> Result<i32, StoreError> {
    i32::try_from(n).map_err(|_| StoreError::Io("too many settlements in one batch".into()))
}

/// Reserves `n` settlement numbers from the sequence.
pub(super) async fn reserve_ids(
    c: &Connection,
    n: usize,
) -> Result<VecDeque<SettlementId>, StoreError> {
    let rows = id_rows(c, id_count(n)?).await.map_err(db)?;
    Ok(ids_of(&rows))
}

async fn id_rows(c: &Connection, n: i32) -> Sent<Vec<Row>> {
    c.client.query(&c.statements.reserve_ids, &[&n]).await
}

fn ids_of(rows: &[Row]) -> VecDeque<SettlementId> {
    rows.iter()
        .map(|row| SettlementId::new(row.get::<_, i64>(0) as u64))
        .collect()
}

/// Locks the settlements of `keys`; every key is answered, `None` for one
/// not used yet.
pub(super) async fn lock_claims(
    c: &Connection,
    keys: &[ClaimKey],
) -> Result<HashMap<ClaimKey, Option<Settlement>>, StoreError> {
    claims_of(keys, claim_rows(c, keys).await.map_err(db)?)
}

async fn claim_rows(c: &Connection, keys: &[ClaimKey]) -> Sent<Vec<Row>> {
    let hospitals: Vec<&str> = keys.iter().map(|k| k.hospital_id.as_str()).collect();
    let claims: Vec<&str> = keys.iter().map(|k| k.claim_id.as_str()).collect();
    c.client
        .query(&c.statements.lock_claims, &[&hospitals, &claims])
        .await
}

fn claims_of(
    keys: &[ClaimKey],
    rows: Vec<Row>,
) -> Result<HashMap<ClaimKey, Option<Settlement>>, StoreError> {
    let mut found: HashMap<_, _> = keys.iter().map(|key| (key.clone(), None)).collect();
    for row in rows {
        let damaged = || StoreError::Corrupt("settlement row with a bad claim key".into());
        let key = ClaimKey {
            hospital_id: HospitalId::parse(row.get(0)).map_err(|_| damaged())?,
            claim_id: ClaimId::parse(row.get(1)).map_err(|_| damaged())?,
        };
        found.insert(key, Some(from_json(row.get(2))?));
    }
    Ok(found)
}

/// Locks the running totals of `wanted`; every one is answered, `None` for
/// one with no settlement yet.
pub(super) async fn lock_usages(
    c: &Connection,
    wanted: &[(ResidentId, Year)],
) -> Result<HashMap<(ResidentId, Year), Option<Usage>>, StoreError> {
    usages_of(wanted, usage_lock_rows(c, wanted).await.map_err(db)?)
}

async fn usage_lock_rows(c: &Connection, wanted: &[(ResidentId, Year)]) -> Sent<Vec<Row>> {
    let patients: Vec<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
    let years: Vec<i32> = wanted.iter().map(|(_, y)| y.get()).collect();
    c.client
        .query(&c.statements.lock_usages, &[&patients, &years])
        .await
}

fn usages_of(
    wanted: &[(ResidentId, Year)],
    rows: Vec<Row>,
) -> Result<HashMap<(ResidentId, Year), Option<Usage>>, StoreError> {
    let mut found: HashMap<_, _> = wanted.iter().map(|key| (key.clone(), None)).collect();
    for row in rows {
        let damaged = || StoreError::Corrupt("usage row with a bad key".into());
        let key = (
            ResidentId::parse(row.get(0)).map_err(|_| damaged())?,
            Year::parse(row.get(1)).map_err(|_| damaged())?,
        );
        found.insert(key, Some(from_json(row.get(2))?));
    }
    Ok(found)
}

/// Locks the roster records of `wanted`; every one is answered.
pub(super) async fn lock_persons(
    c: &Connection,
    wanted: &[ResidentId],
) -> Result<HashMap<ResidentId, Option<Person>>, StoreError> {
    let rows = person_rows(c, &c.statements.lock_persons, wanted)
        .await
        .map_err(db)?;
    persons_of(wanted, rows)
}

/// The roster records of `wanted` by `statement` (locking them or not).
async fn person_rows(
    c: &Connection,
    statement: &Statement,
    wanted: &[ResidentId],
) -> Sent<Vec<Row>> {
    let ids: Vec<&str> = wanted.iter().map(|id| id.as_str()).collect();
    c.client.query(statement, &[&ids]).await
}

/// Every one of `wanted` answered, `None` for a patient not on the roster.
fn persons_of(
    wanted: &[ResidentId],
    rows: Vec<Row>,
) -> Result<HashMap<ResidentId, Option<Person>>, StoreError> {
    let mut found: HashMap<_, _> = wanted.iter().map(|id| (id.clone(), None)).collect();
    for row in rows {
        let id = ResidentId::parse(row.get(0))
            .map_err(|_| StoreError::Corrupt("person row with a bad patient ID".into()))?;
        found.insert(id, Some(from_json(row.get(1))?));
    }
    Ok(found)
}

/// A batch as the columns of the statements that write it.
#[derive(Default)]
pub(super) struct Writes {
    new: NewSettlements,
    changed: ChangedSettlements,
    new_usages: UsageRows,
    changed_usages: UsageRows,
    person_ids: Vec<String>,
    person_records: Vec<serde_json::Value>,
    audit: AuditRows,
}

#[derive(Default)]
struct NewSettlements {
    ids: Vec<i64>,
    hospitals: Vec<String>,
    claims: Vec<String>,
    patients: Vec<String>,
    years: Vec<i32>,
    settled_days: Vec<i32>,
    reversed_days: Vec<Option<i32>>,
    referral_regions: Vec<Option<String>>,
    records: Vec<serde_json::Value>,
}

#[derive(Default)]
struct ChangedSettlements {
    ids: Vec<i64>,
    reversed_days: Vec<Option<i32>>,
    referral_regions: Vec<Option<String>>,
    records: Vec<serde_json::Value>,
}

#[derive(Default)]
struct UsageRows {
    patients: Vec<String>,
    years: Vec<i32>,
    records: Vec<serde_json::Value>,
}

/// The `referral_region` column: where the referral lists show it.
fn listed_referral_region(settlement: &Settlement) -> Option<String> {
    settlement
        .listed_referral_region()
        .map(|region| region.as_str().to_owned())
}

impl Writes {
    /// Splits the batch into inserts (settlements and totals the
    /// transaction did not find) and updates (those it found and locked).
    pub(super) fn of(batch: &Batch, locked: &Locked) -> Result<Writes, StoreError> {
        let mut writes = Writes::default();
        for settlement in &batch.settlements {
            let reversed_day = settlement
                .reversal
                .as_ref()
                .map(|r| r.day.days_since_epoch());
            let record = to_json(settlement)?;
            // Found by the transaction: updated; else new.
            let existed = locked
                .claims
                .get(settlement.claim.key())
                .is_some_and(Option::is_some);
            if existed {
                let rows = &mut writes.changed;
                rows.ids.push(settlement.id.get() as i64);
                rows.reversed_days.push(reversed_day);
                rows.referral_regions
                    .push(listed_referral_region(settlement));
                rows.records.push(record);
            } else {
                let rows = &mut writes.new;
                let key = settlement.claim.key();
                rows.ids.push(settlement.id.get() as i64);
                rows.hospitals.push(key.hospital_id.as_str().to_owned());
                rows.claims.push(key.claim_id.as_str().to_owned());
                rows.patients
                    .push(settlement.claim.patient_id().as_str().to_owned());
                rows.years.push(settlement.claim.year().get());
                rows.settled_days
                    .push(settlement.settled_day.days_since_epoch());
                rows.reversed_days.push(reversed_day);
                rows.referral_regions
                    .push(listed_referral_region(settlement));
                rows.records.push(record);
            }
        }
        for (patient, year, usage) in &batch.usages {
            let existed = locked
                .usages
                .get(&(patient.clone(), *year))
                .is_some_and(Option::is_some);
            let rows = match existed {
                true => &mut writes.changed_usages,
                false => &mut writes.new_usages,
            };
            rows.patients.push(patient.as_str().to_owned());
            rows.years.push(year.get());
            rows.records.push(to_json(usage)?);
        }
        for person in &batch.persons {
            writes.person_ids.push(person.id().as_str().to_owned());
            writes.person_records.push(to_json(person)?);
        }
        writes.audit = AuditRows::of(&batch.audit)?;
        Ok(writes)
    }

    /// Sends every write and the COMMIT in one pipelined round trip. Each
    /// statement's result is checked: after a failed one the server answers
    /// the COMMIT with a rollback, and the batch fails with the first error
    /// (see [`round_trip`]); the COMMIT's own failure (a conflict found
    /// only then) counts when every write succeeded.
    pub(super) async fn commit(self, c: &Connection) -> Result<(), StoreError> {
        let s = &c.statements;
        let client = &c.client;
        let (new, changed, new_usages, changed_usages, persons, audit, committed) = tokio::join!(
            biased;
            async {
                let n = &self.new;
                match n.ids.is_empty() {
                    true => Ok(0),
                    false => {
                        client
                            .execute(
                                &s.insert_settlements,
                                &[
                                    &n.ids,
                                    &n.hospitals,
                                    &n.claims,
                                    &n.patients,
                                    &n.years,
                                    &n.settled_days,
                                    &n.reversed_days,
                                    &n.referral_regions,
                                    &n.records,
                                ],
                            )
                            .await
                    }
                }
            },
            async {
                let u = &self.changed;
                match u.ids.is_empty() {
                    true => Ok(0),
                    false => {
                        client
                            .execute(
                                &s.update_settlements,
                                &[&u.ids, &u.reversed_days, &u.referral_regions, &u.records],
                            )
                            .await
                    }
                }
            },
            usage_rows(client, &s.insert_usages, &self.new_usages),
            usage_rows(client, &s.update_usages, &self.changed_usages),
            async {
                match self.person_ids.is_empty() {
                    true => Ok(0),
                    false => {
                        client
                            .execute(&s.upsert_persons, &[&self.person_ids, &self.person_records])
                            .await
                    }
                }
            },
            async {
                let a = &self.audit;
                match a.seqs.is_empty() {
                    true => Ok(0),
                    false => {
                        client
                            .execute(
                                &s.insert_audit,
                                &[
                                    &a.chains,
                                    &a.seqs,
                                    &a.ats,
                                    &a.principals,
                                    &a.patients,
                                    &a.hashes,
                                    &a.records,
                                ],
                            )
                            .await
                    }
                }
            },
            client.batch_execute("COMMIT"),
        );
        let counts = round_trip([new, changed, new_usages, changed_usages, persons, audit])?;
        let expected = [
            self.new.ids.len(),
            self.changed.ids.len(),
            self.new_usages.patients.len(),
            self.changed_usages.patients.len(),
            self.person_ids.len(),
            self.audit.seqs.len(),
        ];
        for (count, expected) in counts.into_iter().zip(expected) {
            if count != expected as u64 {
                return Err(StoreError::Poisoned(format!(
                    "a write touched {count} rows instead of {expected} and was committed anyway"
                )));
            }
        }
        committed.map_err(db)
    }
}

async fn usage_rows(client: &Client, statement: &Statement, rows: &UsageRows) -> Sent<u64> {
    match rows.patients.is_empty() {
        true => Ok(0),
        false => {
            client
                .execute(statement, &[&rows.patients, &rows.years, &rows.records])
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{
        domain::{Date, RegionCode},
        store::postgres::{PostgresStore, ScratchDatabase, WRITER_SESSION, connect, target},
    };

    /// Runs `test` with two connections to a new, migrated database: the
    /// ledger's, its statements prepared, with `session` on top of its
    /// own settings; and another instance's.
    fn with_ledger_and_other(tag: &str, session: &str, test: impl AsyncFnOnce(Connection, Client)) {
        let database = ScratchDatabase::new(tag);
        PostgresStore::migrate(&database.url, None).unwrap();
        let (_, hosts) = target(&database.url, None).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let client = connect(&hosts).await.unwrap();
                client
                    .batch_execute(&format!("{WRITER_SESSION}; {session}"))
                    .await
                    .unwrap();
                let statements = Statements::prepare(&client).await.unwrap();
                let ledger = Connection {
                    client,
                    statements,
                    made: Instant::now(),
                };
                test(ledger, connect(&hosts).await.unwrap()).await
            })
    }

    /// A patient's 2026.
    fn patient_year() -> (ResidentId, Year) {
        let region = RegionCode::parse("320602").unwrap();
        let birth = Date::parse("1960-01-01").unwrap();
        (
            ResidentId::compose(region, birth, 1),
            Year::parse(2026).unwrap(),
        )
    }

    /// The plan of a batch that settles a claim of `patient` and writes
    /// their roster record: a lock of the total, then the roster's lock
    /// and read, in one round trip.
    fn plan_charging(patient: &(ResidentId, Year)) -> Plan {
        Plan {
            patient_years: vec![patient.clone()],
            persons: vec![patient.0.clone()],
            roster: vec![patient.0.clone()],
            new_settlements: 1,
            ..Plan::default()
        }
    }

    /// `other` creates the running total of `patient` and holds its lock,
    /// in a transaction left open, as another instance's batch would.
    async fn hold_total(other: &Client, patient: &(ResidentId, Year)) {
        let (id, year) = (patient.0.as_str(), patient.1.get());
        other
            .batch_execute(&format!(
                "INSERT INTO usage VALUES ('{id}', {year}, '{{}}')"
            ))
            .await
            .unwrap();
        other
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM usage WHERE patient_id = '{id}' FOR UPDATE"
            ))
            .await
            .unwrap();
    }

    /// Proves a race lost in the lock round trip is contention, not the
    /// aborts after it: another instance holds a running total's lock past
    /// the ledger connection's `lock_timeout`, so the lock statement fails
    /// (55P03) and the roster's lock and read sent after it are refused
    /// (25P02). `begin` answers `Contended` with the 55P03, and the ledger
    /// runs the batch again; it used to answer the 25P02, as an error.
    #[test]
    fn a_race_lost_in_the_lock_round_trip_is_contention_not_the_aborts_after_it() {
        let patient = patient_year();
        with_ledger_and_other(
            "lost",
            "SET lock_timeout = '50ms'",
            async |ledger, other| {
                hold_total(&other, &patient).await;
                let failed = begin(&ledger, &plan_charging(&patient)).await.err();
                assert!(
                    matches!(&failed, Some(StoreError::Contended(why)) if why.contains("55P03")),
                    "{failed:?}"
                );
            },
        );
    }

    /// Proves a failure of the database's own in the lock round trip is
    /// reported by its root cause, not by the aborts after it: the lock
    /// statement is cancelled by the connection's `statement_timeout`
    /// (57014) while another instance holds the lock, the statements after
    /// it are refused (25P02); `begin` fails with the 57014, not retried.
    #[test]
    fn a_failure_in_the_lock_round_trip_is_reported_by_its_root_cause() {
        let patient = patient_year();
        with_ledger_and_other(
            "root",
            "SET statement_timeout = '50ms'",
            async |ledger, other| {
                hold_total(&other, &patient).await;
                let failed = begin(&ledger, &plan_charging(&patient)).await.err();
                assert!(
                    matches!(&failed, Some(StoreError::Io(why))
                    if why.contains("57014") && !why.contains("25P02")),
                    "{failed:?}"
                );
            },
        );
    }

    /// Proves a race lost at the writes is contention, not the aborts after
    /// it: the batch found no running total and inserts one, but another
    /// instance committed it meanwhile, so the insert fails (23505), the
    /// roster write after it is refused (25P02) and the COMMIT rolls back;
    /// the commit answers `Contended` with the 23505.
    #[test]
    fn a_race_lost_at_the_writes_is_contention_not_the_aborts_after_it() {
        let patient = patient_year();
        with_ledger_and_other("writes", "", async |ledger, other| {
            let locked = begin(&ledger, &plan_charging(&patient)).await.unwrap();
            assert_eq!(locked.usages[&patient], None);
            let (id, year) = (patient.0.as_str().to_owned(), patient.1.get());
            other
                .batch_execute(&format!(
                    "INSERT INTO usage VALUES ('{id}', {year}, '{{}}')"
                ))
                .await
                .unwrap();
            let writes = Writes {
                new_usages: UsageRows {
                    patients: vec![id.clone()],
                    years: vec![year],
                    records: vec![serde_json::json!({})],
                },
                person_ids: vec![id],
                person_records: vec![serde_json::json!({})],
                ..Writes::default()
            };
            let failed = writes.commit(&ledger).await.err();
            assert!(
                matches!(&failed, Some(StoreError::Contended(why)) if why.contains("23505")),
                "{failed:?}"
            );
        });
    }

    /// Proves a round trip refused only because its transaction had failed
    /// in an earlier one (every statement 25P02) is not blamed on the abort
    /// nor retried as a race: the error says the first failure was not seen.
    #[test]
    fn a_round_trip_of_aborts_alone_names_no_cause_it_does_not_know() {
        with_ledger_and_other("aborts", "", async |ledger, _| {
            let c = &ledger.client;
            c.batch_execute("BEGIN").await.unwrap();
            c.batch_execute("SELECT 1 / 0").await.unwrap_err();
            let (first, second) = tokio::join!(c.query("SELECT 1", &[]), c.query("SELECT 2", &[]));
            let failed = round_trip([first, second]).err();
            assert!(
                matches!(&failed, Some(StoreError::Io(why))
                    if why.contains("first failure was not seen") && !why.contains("aborted")),
                "{failed:?}"
            );
        });
    }

    /// Planned on a new, empty database, as the ledger's connection plans
    /// them (generic plans, made once), the ledger's statements still find
    /// their rows through an index: a plan that scans a table would be kept
    /// while the table grows. Needs the PostgreSQL server the api suite
    /// uses (`MEDASSIST_TEST_POSTGRES`).
    #[test]
    fn the_ledger_plans_no_table_scan_even_on_a_new_database() {
        let database = ScratchDatabase::new("plans");
        PostgresStore::migrate(&database.url, None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let statements = [
            RESERVE_IDS,
            LOCK_CLAIMS,
            LOCK_USAGES,
            LOCK_PERSONS,
            READ_PERSONS,
            INSERT_SETTLEMENTS,
            UPDATE_SETTLEMENTS,
            INSERT_USAGES,
            UPDATE_USAGES,
            UPSERT_PERSONS,
        ];
        let plans = runtime.block_on(async {
            let client = connect(&target(&database.url, None).unwrap().1)
                .await
                .unwrap();
            client.batch_execute(WRITER_SESSION).await.unwrap();
            let mut plans = Vec::new();
            for (i, sql) in statements.into_iter().enumerate() {
                let params = client.prepare(sql).await.unwrap().params().len();
                client
                    .batch_execute(&format!("PREPARE s{i} AS {sql}"))
                    .await
                    .unwrap();
                let nulls = vec!["NULL"; params].join(", ");
                let explain = format!("EXPLAIN EXECUTE s{i}({nulls})");
                let lines: Vec<String> = client
                    .query(&explain, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                plans.push((sql, lines.join("\n")));
            }
            plans
        });
        for (sql, plan) in plans {
            assert!(!plan.contains("Seq Scan"), "{sql}\nis planned as\n{plan}");
        }
    }
}
