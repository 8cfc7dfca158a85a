//! The auditors' use case: reading the audit trail, by time, principal and
//! patient, within the caller's regions.

use super::{App, AppError};
use crate::{
    audit::{Cursor, Query, Record},
    auth::{Action, Caller, authorize},
    store::AuditPage,
};

impl App {
    /// A page of the audit trail answering `query`, after `after` (role
    /// auditor). A caller limited to regions sees no record that names a
    /// patient enrolled elsewhere, or not on the roster.
    pub async fn audit_records(
        &self,
        query: Query,
        after: Option<Cursor>,
        page_size: usize,
        by: &Caller,
    ) -> Result<AuditPage, AppError> {
        authorize(by, Action::ReadAudit)?;
        // Every call answered before this one is in the trail it reads.
        self.ledger.committed_so_far().await?;
        let limit = self.page_limit(page_size);
        let store = std::sync::Arc::clone(&self.store);
        let mut page =
            tokio::task::spawn_blocking(move || store.audit_records(&query, after, limit))
                .await
                .map_err(|e| AppError::Internal(format!("the audit read failed: {e}")))??;
        if !by.regions.is_empty() {
            let mut kept = Vec::with_capacity(page.records.len());
            for record in page.records {
                if self.in_scope(&record, by).await? {
                    kept.push(record);
                }
            }
            page.records = kept;
        }
        Ok(page)
    }

    /// True when every patient `record` names is enrolled in the caller's
    /// regions.
    async fn in_scope(&self, record: &Record, by: &Caller) -> Result<bool, AppError> {
        for patient in record.event.subject.patients() {
            if self.find_person_for(patient, by).await?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl App {
    /// Removes audit records answered more than `retention_days` ago
    /// (whole segments or rows); returns how many went.
    pub async fn prune_audit(&self, retention_days: u32) -> Result<u64, AppError> {
        let before = crate::domain::Timestamp::from_unix_micros(
            self.now()
                .unix_micros()
                .saturating_sub(i64::from(retention_days) * 86_400_000_000),
        );
        let store = std::sync::Arc::clone(&self.store);
        Ok(
            tokio::task::spawn_blocking(move || store.prune_audit(before))
                .await
                .map_err(|e| AppError::Internal(format!("the audit pruning failed: {e}")))??,
        )
    }
}
