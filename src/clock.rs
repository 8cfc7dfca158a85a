//! The clock the ledger stamps settlements with.
//!
//! Production reads the system clock; tests pass a [`ManualClock`] in
//! [`crate::server::ServerConfig`] to place settlements at chosen moments
//! (say 15:59:59 and 16:00:00 UTC, either side of midnight in Beijing)
//! without sleeping and without depending on today's date.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use crate::domain::Timestamp;

/// Tells the time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current moment.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from(chrono::Utc::now())
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that says what it was last set to. For tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(at.unix_micros())))
    }

    /// Sets the clock to `at`; the next commit is stamped with it.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.unix_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.0.load(Ordering::SeqCst))
    }
}
