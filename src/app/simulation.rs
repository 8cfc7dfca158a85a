//! What a policy change would cost, asked of a running service: the year's
//! settlements replayed under a proposed book ([`crate::simulate`]), as one
//! of the service's few long reads.

use super::{App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{PolicyBook, RegionCode, Year},
    simulate::{Simulation, SimulationReport, replay},
};

impl App {
    /// Replays `year` under `book` (role auditor), of `region` (all when
    /// `None`) and only of patients enrolled in the caller's regions. It is
    /// a long read ([`App::long_read`]): refused as exhausted while
    /// [`super::LONG_READS_MAX`] others run, stopped when the caller goes
    /// away, answered once what it read is durable.
    pub async fn simulate_policy(
        &self,
        book: PolicyBook,
        year: Year,
        region: Option<RegionCode>,
        by: &Caller,
    ) -> Result<SimulationReport, AppError> {
        authorize(by, Action::SimulatePolicy)?;
        let store = std::sync::Arc::clone(&self.store);
        let scope = by.regions.clone();
        self.long_read("policy simulation", move |stopped| {
            let simulation = Simulation::new(&book, year, region).within(&scope);
            replay(store.as_ref(), simulation, stopped)
        })
        .await
    }
}
