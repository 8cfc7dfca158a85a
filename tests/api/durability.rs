//! Acknowledged means durable: no answer leaves the server before the commit
//! that wrote it, flush included, has returned.
//!
//! A store wrapper records, after each flush returns, which settlements and
//! reversals it made durable (those applied before the flush began). Clients settle and reverse concurrently
//! (so commits batch many requests); every answer they receive must already
//! be in that record.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use medassist::{
    domain::{ClaimKey, Person, ResidentId, Settlement, SettlementId, Usage, Year},
    grpc::pb,
    store::{Batch, Meta, SledOptions, SledStore, Store, StoreError, Versioned},
};
use tempfile::TempDir;

use crate::helpers::*;

/// The sled store, noting which settlements and reversals each flush made
/// durable once it returns.
struct Recording {
    inner: SledStore,
    /// (settlement number, reversed) pairs applied but not yet flushed.
    applied: Mutex<Vec<(u64, bool)>>,
    /// Those known durable.
    durable: Mutex<HashSet<(u64, bool)>>,
}

impl Store for Recording {
    fn meta(&self) -> Result<Meta, StoreError> {
        self.inner.meta()
    }
    fn audit_head(&self) -> Result<medassist::audit::Head, StoreError> {
        self.inner.audit_head()
    }
    fn audit_records(
        &self,
        query: &medassist::audit::Query,
        after: Option<medassist::audit::Cursor>,
        limit: usize,
    ) -> Result<medassist::store::AuditPage, StoreError> {
        self.inner.audit_records(query, after, limit)
    }
    fn prune_audit(&self, before: medassist::domain::Timestamp) -> Result<u64, StoreError> {
        self.inner.prune_audit(before)
    }
    fn person(&self, id: &ResidentId) -> Result<Option<Versioned<Person>>, StoreError> {
        self.inner.person(id)
    }
    fn settlement(&self, id: SettlementId) -> Result<Option<Versioned<Settlement>>, StoreError> {
        self.inner.settlement(id)
    }
    fn settlement_by_claim(
        &self,
        key: &ClaimKey,
    ) -> Result<Option<Versioned<Settlement>>, StoreError> {
        self.inner.settlement_by_claim(key)
    }
    fn usage(
        &self,
        patient: &ResidentId,
        year: Year,
    ) -> Result<Option<Versioned<Usage>>, StoreError> {
        self.inner.usage(patient, year)
    }
    fn settlements_of(
        &self,
        patient: &ResidentId,
        year: Year,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        self.inner.settlements_of(patient, year, after, limit)
    }
    fn settlements_on_days(
        &self,
        hospital: Option<&medassist::domain::HospitalId>,
        days: std::ops::RangeInclusive<medassist::domain::BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        self.inner.settlements_on_days(hospital, days, after, limit)
    }
    fn referrals(
        &self,
        region: medassist::domain::RegionCode,
        days: std::ops::RangeInclusive<medassist::domain::BusinessDay>,
        after: Option<SettlementId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Settlement>>, StoreError> {
        self.inner.referrals(region, days, after, limit)
    }
    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.apply(batch)?;
        // Noted only once applied: a flush that takes the note began after
        // the write, so it surely covers it.
        let mut applied = self.applied.lock().unwrap();
        applied.extend(
            batch
                .settlements
                .iter()
                .map(|s| (s.id.get(), s.reversal.is_some())),
        );
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let covered: Vec<(u64, bool)> = std::mem::take(&mut *self.applied.lock().unwrap());
        self.inner.flush()?;
        // Only now, with the flush done, is any of it durable.
        self.durable.lock().unwrap().extend(covered);
        Ok(())
    }
}

/// Proves that each of 600 settle and reverse answers, sent by 24 clients at
/// once, arrives only after the commit that made it durable has returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answer_follows_its_flush() {
    let dir = Arc::new(TempDir::new().unwrap());
    std::fs::create_dir_all(data_dir(&dir)).unwrap();
    let store = Arc::new(Recording {
        inner: SledStore::open(&data_dir(&dir), SledOptions::default()).unwrap(),
        applied: Mutex::new(Vec::new()),
        durable: Mutex::new(HashSet::new()),
    });
    let server = TestServer::start_with_store(dir, store.clone()).await;
    let patient = server.enroll("1960-01-01", 501).await;
    let clients: Vec<_> = (0..24)
        .map(|client| {
            let (mut settlements, patient, store) =
                (server.settlements(), patient.clone(), store.clone());
            tokio::spawn(async move {
                for n in 0..25 {
                    let claim = format!("D{client}-{n}");
                    let answer = settlements
                        .settle(claim_paying_7000(&patient, &claim))
                        .await
                        .unwrap()
                        .into_inner();
                    let settlement = answer.settlement.unwrap();
                    let id: u64 = settlement.settlement_id.parse().unwrap();
                    assert!(
                        store.durable.lock().unwrap().contains(&(id, false)),
                        "settle {id} answered before its flush"
                    );
                    if n % 2 == 0 {
                        let reverse = pb::ReverseRequest {
                            hospital_id: "H001".into(),
                            claim_id: claim,
                            reason: "test".into(),
                        };
                        settlements.reverse(reverse).await.unwrap();
                        assert!(
                            store.durable.lock().unwrap().contains(&(id, true)),
                            "reverse {id} answered before its flush"
                        );
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    assert!(store.durable.lock().unwrap().len() >= 24 * 25 + 24 * 13);
}
