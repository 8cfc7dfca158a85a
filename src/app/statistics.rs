//! The year's figures of a region ([`crate::statistics`]), read through the
//! day index, and the applications of a region, a caseworker's queue.

use super::{App, AppError, reconciliation::READ_PAGE};

/// Settlements the statistics read from the store at a time: a read of a
/// range of days opens one cursor per day, so a year is read in few, large
/// pages (a few megabytes each).
const YEAR_READ_PAGE: usize = 4_096;
use crate::{
    auth::{Action, Caller, authorize},
    domain::{
        ApplicationState, BusinessDay, Date, RegionCode, Settlement, SettlementId, Timestamp, Year,
    },
    statistics::{YearFigures, YearTally},
    store::CommitNumber,
};

/// Settlements of the range one page of the application queue reads at
/// most, whatever it finds: the bound on one call's work.
pub const APPLICATION_QUEUE_READ_MAX: usize = 5_000;

/// A region's figures of a year, and when they were counted.
#[derive(Clone, Debug)]
pub struct RegionYear {
    /// The figures.
    pub figures: YearFigures,
    /// When the count was made.
    pub as_of: Timestamp,
}

/// What the application queue shows: a region, a state or all, a range of
/// submission days.
#[derive(Clone, Copy, Debug)]
pub struct QueueQuery {
    /// Patients enrolled there when the application was made.
    pub region: RegionCode,
    /// Only this state; `None` for all.
    pub state: Option<ApplicationState>,
    /// The first business day of submission, included.
    pub from: BusinessDay,
    /// The last, included.
    pub to: BusinessDay,
}

impl App {
    /// The figures of the settlements of `year` whose patients were
    /// enrolled (when settled) in `region` and in the caller's regions
    /// (roles officer, supervisor and auditor). Reads every settlement of
    /// the year's business days: a long read ([`App::long_read`]).
    pub async fn year_statistics(
        &self,
        region: RegionCode,
        year: Year,
        by: &Caller,
    ) -> Result<RegionYear, AppError> {
        authorize(by, Action::ReadStatistics)?;
        let store = std::sync::Arc::clone(&self.store);
        let principal = std::sync::Arc::clone(&by.principal);
        let days = year_days(year)?;
        let figures = self
            .long_read("statistics", move |stopped| {
                let mut tally = YearTally::new(year);
                let (mut after, mut newest): (_, CommitNumber) = (None, 0);
                loop {
                    let page =
                        store.settlements_on_days(None, days.clone(), after, YEAR_READ_PAGE)?;
                    let full = page.len() == YEAR_READ_PAGE;
                    for settlement in page {
                        newest = newest.max(settlement.commit);
                        after = Some(settlement.value.id);
                        let s = &settlement.value;
                        if in_region(s, region) && principal.sees_settlement(s) {
                            tally.add(s);
                        }
                    }
                    if !full || stopped() {
                        return Ok((tally.figures(), newest));
                    }
                }
            })
            .await?;
        Ok(RegionYear {
            figures,
            as_of: self.now(),
        })
    }

    /// A page of the applications submitted (or opened) on the days of
    /// `query` (roles caseworker and auditor), in settlement number order,
    /// after settlement `after`. A page reads at most
    /// [`APPLICATION_QUEUE_READ_MAX`] settlements of those days, so it may
    /// hold fewer applications than asked and still have a next page.
    pub async fn application_queue(
        &self,
        query: QueueQuery,
        page_size: usize,
        mut after: Option<SettlementId>,
        by: &Caller,
    ) -> Result<super::SettlementPage, AppError> {
        authorize(by, Action::ListApplications)?;
        let limit = self.page_limit(page_size);
        let mut found = Vec::new();
        let mut read = 0;
        loop {
            let page = super::reconciliation::read_page(
                &self.store,
                &self.ledger,
                None,
                query.from,
                query.to,
                after,
            )
            .await?;
            let end = page.len() < READ_PAGE;
            for settlement in page {
                read += 1;
                after = Some(settlement.id);
                let wanted = settlement
                    .application_state()
                    .is_some_and(|state| query.state.is_none_or(|wanted| wanted == state))
                    && (query.from..=query.to).contains(&settlement.settled_day)
                    && in_region(&settlement, query.region)
                    && by.sees_settlement(&settlement);
                if wanted {
                    found.push(settlement);
                    if found.len() == limit {
                        break;
                    }
                }
            }
            if end && found.len() < limit {
                return Ok(super::SettlementPage {
                    settlements: found,
                    next_after: None,
                });
            }
            if found.len() == limit || read >= APPLICATION_QUEUE_READ_MAX {
                return Ok(super::SettlementPage {
                    settlements: found,
                    next_after: after,
                });
            }
        }
    }
}

/// True when the settlement's patient was enrolled in `region` (a city
/// takes in its counties) when it was settled.
fn in_region(settlement: &Settlement, region: RegionCode) -> bool {
    settlement
        .outcome
        .cap
        .as_ref()
        .is_some_and(|cap| region.covers(cap.region))
}

/// The business days of the calendar year.
fn year_days(year: Year) -> Result<std::ops::RangeInclusive<BusinessDay>, AppError> {
    let day = |month, day| {
        Date::from_ymd(year.get(), month, day)
            .map(BusinessDay::from_date)
            .map_err(|e| AppError::Internal(format!("the days of {}: {e}", year.get())))
    };
    Ok(day(1, 1)?..=day(12, 31)?)
}
