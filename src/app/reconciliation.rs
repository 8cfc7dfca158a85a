//! The fund office's use cases: a hospital's totals of one business day
//! against the fund's (3201), the fund's records of that day (3202), and the
//! export of every settlement of a range of days.
//!
//! All three read the day index ([`Store::settlements_on_days`]), so their
//! cost follows the day's settlements, never the whole store.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{App, AppError, SettlementPage};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{BusinessDay, HospitalId, Money, Settlement, SettlementId},
    ledger::Ledger,
    store::{Store, Versioned},
};

/// Most business days one export covers, both ends counted.
pub const EXPORT_DAYS_MAX: i64 = 366;
/// Settlements read from the store at a time while totalling or exporting.
pub(super) const READ_PAGE: usize = 256;
/// Settlements an export produces ahead of its client: with [`READ_PAGE`],
/// what bounds its memory however long it is.
const EXPORT_AHEAD: usize = 512;

/// One business day's figures of one hospital (the fields of 3201).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// Settlements recorded that day, every outcome, later reversals included.
    pub settled_count: u32,
    /// The sum of their assistance.
    pub assistance_total: Money,
    /// Settlements reversed that day, whatever day they were settled.
    pub reversed_count: u32,
    /// The sum of the reversed settlements' assistance.
    pub reversed_total: Money,
}

impl DayTotals {
    /// The names of the figures that differ, in wire field order.
    pub fn differing_fields(&self, other: &DayTotals) -> Vec<&'static str> {
        [
            ("settled_count", self.settled_count == other.settled_count),
            (
                "assistance_total",
                self.assistance_total == other.assistance_total,
            ),
            (
                "reversed_count",
                self.reversed_count == other.reversed_count,
            ),
            (
                "reversed_total",
                self.reversed_total == other.reversed_total,
            ),
        ]
        .into_iter()
        .filter_map(|(name, equal)| (!equal).then_some(name))
        .collect()
    }

    /// Adds a settlement of `day` to the figures.
    fn count(&mut self, settlement: &Settlement, day: BusinessDay) -> Result<(), AppError> {
        let amount = settlement.outcome.assistance;
        let overflow = || AppError::Internal(format!("the totals of {day} overflow"));
        if settlement.settled_day == day {
            self.settled_count = self.settled_count.checked_add(1).ok_or_else(overflow)?;
            self.assistance_total = self
                .assistance_total
                .checked_add(amount)
                .ok_or_else(overflow)?;
        }
        if settlement.reversal.as_ref().is_some_and(|r| r.day == day) {
            self.reversed_count = self.reversed_count.checked_add(1).ok_or_else(overflow)?;
            self.reversed_total = self
                .reversed_total
                .checked_add(amount)
                .ok_or_else(overflow)?;
        }
        Ok(())
    }
}

/// The comparison of a hospital's figures with the fund's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayReconciliation {
    /// The fund's figures.
    pub fund_totals: DayTotals,
    /// The figures that differ, in wire field order; empty when matched.
    pub differing_fields: Vec<&'static str>,
}

/// An export as it is produced: settlements in number order; an error, if
/// any, last.
pub type ExportStream = mpsc::Receiver<Result<Settlement, AppError>>;

impl App {
    /// Compares a hospital's figures of one business day with the fund's:
    /// its window settlements (applications for stays there are listed by
    /// [`App::list_day_settlements`] and exported, each with its channel,
    /// but are not the hospital's to count).
    pub async fn reconcile_day(
        &self,
        hospital: &HospitalId,
        day: BusinessDay,
        hospital_totals: DayTotals,
        by: &Caller,
    ) -> Result<DayReconciliation, AppError> {
        authorize(by, Action::Reconcile(hospital))?;
        let mut fund_totals = DayTotals::default();
        let mut after = None;
        loop {
            let page =
                read_page(&self.store, &self.ledger, Some(hospital), day, day, after).await?;
            // The hospital's figures are its window's: applications to the
            // fund for stays there are not its settlements.
            let window = page.iter().filter(|s| s.application.is_none());
            for settlement in window.filter(|s| by.sees_settlement(s)) {
                fund_totals.count(settlement, day)?;
            }
            match page.last() {
                Some(last) if page.len() == READ_PAGE => after = Some(last.id),
                _ => break,
            }
        }
        Ok(DayReconciliation {
            differing_fields: hospital_totals.differing_fields(&fund_totals),
            fund_totals,
        })
    }

    /// A page of a hospital's settlements settled or reversed on one
    /// business day, in number order.
    pub async fn list_day_settlements(
        &self,
        hospital: &HospitalId,
        day: BusinessDay,
        page_size: usize,
        after: Option<SettlementId>,
        by: &Caller,
    ) -> Result<SettlementPage, AppError> {
        authorize(by, Action::Reconcile(hospital))?;
        let limit = self.page_limit(page_size);
        // One more than asked tells whether another page follows.
        let reads = self
            .store
            .settlements_on_days(Some(hospital), day..=day, after, limit + 1)?;
        let more = reads.len() > limit;
        let mut settlements = wait_durable(&self.ledger, reads).await?;
        settlements.truncate(limit);
        let next_after = more.then(|| settlements.last().map(|s| s.id)).flatten();
        settlements.retain(|s| by.sees_settlement(s));
        Ok(SettlementPage {
            settlements,
            next_after,
        })
    }

    /// Starts the export of every settlement settled or reversed on the
    /// business days `from..=to` (of one hospital, or all), in number order.
    /// It reads ahead of the client by a bounded amount and stops when the
    /// client goes away.
    pub fn export_settlements(
        &self,
        from: BusinessDay,
        to: BusinessDay,
        hospital: Option<HospitalId>,
        by: &Caller,
    ) -> Result<ExportStream, AppError> {
        authorize(by, Action::Export)?;
        let (sender, receiver) = mpsc::channel(EXPORT_AHEAD);
        let (store, ledger) = (Arc::clone(&self.store), Arc::clone(&self.ledger));
        let principal = by.name.clone();
        let by = Arc::clone(&by.principal);
        tokio::spawn(async move {
            let mut after = None;
            let mut sent = 0u64;
            loop {
                let page = read_page(&store, &ledger, hospital.as_ref(), from, to, after).await;
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(principal, %error, "export failed");
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                let full = page.len() == READ_PAGE;
                after = page.last().map(|s| s.id);
                for settlement in page.into_iter().filter(|s| by.sees_settlement(s)) {
                    if sender.send(Ok(settlement)).await.is_err() {
                        tracing::info!(principal, sent, "export stopped: the client went away");
                        return;
                    }
                    sent += 1;
                }
                if !full {
                    break;
                }
            }
            tracing::info!(
                target: super::AUDIT,
                principal,
                action = "export",
                from = %from,
                to = %to,
                hospital = hospital.as_ref().map(|h| h.as_str()).unwrap_or(""),
                settlements = sent,
                "export"
            );
        });
        Ok(receiver)
    }
}

/// The next [`READ_PAGE`] settlements of the days after `after`, once durable.
pub(super) async fn read_page(
    store: &Arc<dyn Store>,
    ledger: &Ledger,
    hospital: Option<&HospitalId>,
    from: BusinessDay,
    to: BusinessDay,
    after: Option<SettlementId>,
) -> Result<Vec<Settlement>, AppError> {
    let reads = store.settlements_on_days(hospital, from..=to, after, READ_PAGE)?;
    wait_durable(ledger, reads).await
}

/// The values read, once the last commit among them is durable.
async fn wait_durable(
    ledger: &Ledger,
    reads: Vec<Versioned<Settlement>>,
) -> Result<Vec<Settlement>, AppError> {
    let Some(commit) = reads.iter().map(|read| read.commit).max() else {
        return Ok(Vec::new());
    };
    ledger.durable(Versioned { value: (), commit }).await?;
    Ok(reads.into_iter().map(|read| read.value).collect())
}
