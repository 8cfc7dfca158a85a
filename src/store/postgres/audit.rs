//! The audit trail on PostgreSQL: each instance's run seals its records
//! into a chain of its own (see `migrations/0002_audit.sql`); they are
//! inserted by the batch's transaction, with its other writes.

use tokio_postgres::Row;

use super::{PostgresStore, from_json, limit_param, to_json};
use crate::{
    audit::{Break, Cursor, Hash, Head, Query, Record, Verifier},
    domain::Timestamp,
    store::{AuditPage, StoreError},
};

/// The columns one batch's audit records are inserted with.
#[derive(Default)]
pub(super) struct AuditRows {
    pub(super) chains: Vec<i64>,
    pub(super) seqs: Vec<i64>,
    pub(super) ats: Vec<i64>,
    pub(super) principals: Vec<String>,
    /// The patients each record names, as one text of IDs separated by
    /// spaces (arrays of arrays cannot be unnested to rows of arrays).
    pub(super) patients: Vec<String>,
    pub(super) hashes: Vec<Vec<u8>>,
    pub(super) records: Vec<serde_json::Value>,
}

/// Inserts one batch's audit records; `string_to_array` turns each row's
/// patients back into its array.
pub(super) const INSERT: &str = "INSERT INTO audit_record \
     (chain, seq, at, principal, patients, hash, record) \
     SELECT chain, seq, at, principal, string_to_array(patients, ' '), hash, record \
     FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
                 $6::bytea[], $7::jsonb[]) \
     AS r(chain, seq, at, principal, patients, hash, record)";

impl AuditRows {
    /// The rows of `records`.
    pub(super) fn of(records: &[Record]) -> Result<AuditRows, StoreError> {
        let mut rows = AuditRows::default();
        for record in records {
            rows.chains.push(record.chain as i64);
            rows.seqs.push(record.seq as i64);
            rows.ats.push(record.event.at.unix_micros());
            rows.principals.push(record.event.principal.clone());
            let patients: Vec<&str> = record
                .event
                .subject
                .patients()
                .iter()
                .map(|id| id.as_str())
                .collect();
            rows.patients.push(patients.join(" "));
            rows.hashes.push(record.hash.to_vec());
            rows.records.push(to_json(record)?);
        }
        Ok(rows)
    }
}

impl PostgresStore {
    /// Starts this run's chain.
    pub(super) fn start_audit_chain(&self) -> Result<Head, StoreError> {
        let rows = self.query(
            "INSERT INTO audit_chain (id) VALUES (nextval('audit_chain_id')) RETURNING id",
            Vec::new(),
        )?;
        let id: i64 = rows
            .first()
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::Corrupt("no audit chain was started".into()))?;
        Ok(Head::new(id as u64))
    }

    /// A page of records answering `query`, in time order.
    pub(super) fn read_audit(
        &self,
        query: &Query,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let start = after.map_or((query.from.unix_micros(), 0, 0), |c| {
            (c.at.unix_micros(), c.chain as i64, c.seq as i64)
        });
        let rows = self.query(
            "SELECT record FROM audit_record \
             WHERE (at, chain, seq) > ($1, $2, $3) AND at >= $4 AND at <= $5 \
               AND ($6::text IS NULL OR principal = $6) \
               AND ($7::text IS NULL OR patients @> ARRAY[$7::text]) \
             ORDER BY at, chain, seq LIMIT $8",
            vec![
                Box::new(start.0),
                Box::new(start.1),
                Box::new(start.2),
                Box::new(query.from.unix_micros()),
                Box::new(query.to.unix_micros()),
                Box::new(query.principal.clone()),
                Box::new(query.patient.as_ref().map(|id| id.as_str().to_owned())),
                Box::new(limit_param(limit)),
            ],
        )?;
        let records = rows
            .into_iter()
            .map(|row| from_json::<Record>(row.get("record")))
            .collect::<Result<Vec<_>, _>>()?;
        let next = (records.len() >= limit)
            .then(|| records.last().map(Cursor::of))
            .flatten();
        Ok(AuditPage { records, next })
    }

    /// Removes, chain by chain, every record up to the last one answered
    /// before `before`, and keeps the last removed as the chain's anchor.
    pub(super) fn prune_audit_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let rows = self.query(
            "WITH upto AS ( \
                 SELECT chain, max(seq) AS seq FROM audit_record WHERE at < $1 GROUP BY chain), \
             gone AS ( \
                 DELETE FROM audit_record r USING upto \
                 WHERE r.chain = upto.chain AND r.seq <= upto.seq \
                 RETURNING r.chain, r.seq, r.hash), \
             last AS ( \
                 SELECT DISTINCT ON (chain) chain, seq, hash FROM gone ORDER BY chain, seq DESC), \
             anchored AS ( \
                 UPDATE audit_chain c SET pruned_seq = last.seq, pruned_hash = last.hash \
                 FROM last WHERE c.id = last.chain RETURNING c.id) \
             SELECT count(*) FROM gone",
            vec![Box::new(before.unix_micros())],
        )?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as u64)
    }

    /// Checks every chain from its anchor, a page at a time: the head each
    /// reaches and how many records it holds, or where one first breaks.
    pub fn verify_audit(&self) -> Result<Result<Vec<(Head, u64)>, Break>, StoreError> {
        let mut chains = Vec::new();
        for anchor in self.audit_chains()? {
            let mut verifier = Verifier::new(anchor);
            loop {
                let page = self.audit_chain_records(anchor.chain, verifier.head().seq, 1000)?;
                if page.is_empty() {
                    break;
                }
                for record in &page {
                    if let Err(broken) = verifier.next(record) {
                        return Ok(Err(broken));
                    }
                }
            }
            chains.push((verifier.head(), verifier.checked()));
        }
        Ok(Ok(chains))
    }

    /// Every chain with its anchor.
    fn audit_chains(&self) -> Result<Vec<Head>, StoreError> {
        let rows = self.query(
            "SELECT id, pruned_seq, pruned_hash FROM audit_chain ORDER BY id",
            Vec::new(),
        )?;
        rows.iter().map(anchor_of).collect()
    }

    /// Up to `limit` records of `chain` after sequence number `after`, in
    /// sequence order.
    fn audit_chain_records(
        &self,
        chain: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = self.query(
            "SELECT record FROM audit_record WHERE chain = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
            vec![
                Box::new(chain as i64),
                Box::new(after as i64),
                Box::new(limit_param(limit)),
            ],
        )?;
        rows.into_iter()
            .map(|row| from_json::<Record>(row.get("record")))
            .collect()
    }
}

fn anchor_of(row: &Row) -> Result<Head, StoreError> {
    let hash: Vec<u8> = row.get(2);
    let hash: Hash = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt("an audit chain's anchor is not 32 bytes".into()))?;
    Ok(Head {
        chain: row.get::<_, i64>(0) as u64,
        seq: row.get::<_, i64>(1) as u64,
        hash,
    })
}
