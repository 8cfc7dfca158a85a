//! What a policy change would cost, asked of a running service: the year's
//! settlements replayed under a proposed book ([`crate::simulate`]), off the
//! async threads, one replay at a time.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use super::{App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{PolicyBook, RegionCode, Year},
    simulate::{Simulation, SimulationReport, replay},
    store::Versioned,
};

/// Tells the replay to stop when the call that asked for it goes away.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl App {
    /// Replays `year` under `book` (role auditor), of `region` (all when
    /// `None`) and only of patients enrolled in the caller's regions. One
    /// replay runs at a time: a second is refused as exhausted until the
    /// first ends. Answers once everything it read is durable.
    pub async fn simulate_policy(
        &self,
        book: PolicyBook,
        year: Year,
        region: Option<RegionCode>,
        by: &Caller,
    ) -> Result<SimulationReport, AppError> {
        authorize(by, Action::SimulatePolicy)?;
        let running = Arc::clone(&self.simulating)
            .try_acquire_owned()
            .map_err(|_| {
                AppError::Exhausted(
                    "another policy simulation is running: try again when it has answered".into(),
                )
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let store = Arc::clone(&self.store);
        let scope = by.regions.clone();
        let (report, newest) = tokio::task::spawn_blocking(move || {
            let _running = running;
            let simulation = Simulation::new(&book, year, region).within(&scope);
            replay(store.as_ref(), simulation, &|| stop.load(Ordering::Relaxed))
        })
        .await
        .map_err(|e| AppError::Internal(format!("the policy simulation failed: {e}")))??;
        self.ledger
            .durable(Versioned {
                value: (),
                commit: newest,
            })
            .await?;
        Ok(report)
    }
}
