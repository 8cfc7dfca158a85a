//! The year's figures of a region ([`crate::statistics`]), read through the
//! day index.

use super::{App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{BusinessDay, Date, RegionCode, Timestamp, Year},
    statistics::{YearFigures, YearTally},
    store::CommitNumber,
};

/// Settlements the statistics read from the store at a time: a read of a
/// range of days opens one cursor per day, so a year is read in few, large
/// pages (a few megabytes each).
const YEAR_READ_PAGE: usize = 4_096;

/// A region's figures of a year, and when they were counted.
#[derive(Clone, Debug)]
pub struct RegionYear {
    /// The figures.
    pub figures: YearFigures,
    /// When the count was made.
    pub as_of: Timestamp,
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
                        if s.enrolled_in(region) && principal.sees_settlement(s) {
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
