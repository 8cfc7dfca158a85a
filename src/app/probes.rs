//! A bound on probing: how many distinct patients one hospital token may
//! quote or settle in any hour. A billing desk legitimately sees the
//! assistance identity of whoever is discharged there (as the national
//! platform's person query shows it), but a quote names the patient's
//! categories and what is left of the cap, so an unbounded one would let a
//! token walk the roster.

use std::{collections::HashMap, sync::Mutex};

use crate::domain::{ResidentId, Timestamp};

const HOUR_MICROS: i64 = 3_600_000_000;

/// The patients each principal named in the last hour, and when last.
pub(super) struct PatientWindows {
    per_hour_max: usize,
    windows: Mutex<HashMap<String, HashMap<[u8; 18], Timestamp>>>,
}

impl PatientWindows {
    /// At most `per_hour_max` distinct patients per principal per hour.
    pub(super) fn new(per_hour_max: usize) -> PatientWindows {
        PatientWindows {
            per_hour_max,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// True when `principal` may name `patient` at `now`: it named it in
    /// the last hour already, or fewer than the limit of others. Each
    /// principal's window holds at most the limit of patients, so memory
    /// stays bounded by the number of tokens.
    pub(super) fn admit(&self, principal: &str, patient: &ResidentId, now: Timestamp) -> bool {
        let mut key = [0u8; 18];
        key.copy_from_slice(&patient.as_str().as_bytes()[..18]);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.entry(principal.to_owned()).or_default();
        if let Some(seen) = window.get_mut(&key) {
            *seen = now;
            return true;
        }
        if window.len() >= self.per_hour_max {
            let hour_ago = now.unix_micros().saturating_sub(HOUR_MICROS);
            window.retain(|_, seen| seen.unix_micros() > hour_ago);
        }
        if window.len() >= self.per_hour_max {
            return false;
        }
        window.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Date, RegionCode};

    fn patient(n: u16) -> ResidentId {
        ResidentId::compose(
            RegionCode::parse("320602").unwrap(),
            Date::parse("1960-01-01").unwrap(),
            n,
        )
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_764_000_000_000_000 + seconds * 1_000_000)
    }

    /// Proves the limit counts distinct patients per principal in a sliding
    /// hour: a patient named again is free, a new one past the limit is
    /// refused, another principal has its own count, and an hour later the
    /// window has room again.
    #[test]
    fn distinct_patients_per_hour_are_bounded() {
        let windows = PatientWindows::new(3);
        for n in 1..=3 {
            assert!(windows.admit("token:a", &patient(n), at(n.into())));
        }
        assert!(windows.admit("token:a", &patient(2), at(10)), "named again");
        assert!(!windows.admit("token:a", &patient(4), at(20)), "a fourth");
        assert!(
            windows.admit("token:b", &patient(4), at(20)),
            "another principal"
        );
        assert!(
            !windows.admit("token:a", &patient(4), at(3_600)),
            "all three named within the hour"
        );
        assert!(
            windows.admit("token:a", &patient(4), at(3_611)),
            "an hour on"
        );
    }
}
