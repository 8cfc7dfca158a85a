//! Late enrollment finds what it owes (issue 21, the seed's 应保尽保): the
//! settled stays that the roster as it is now would pay more for, for the
//! caseworkers who open applications from them. Each patient's year is
//! replayed in commit order under the patient's roster record and the policy
//! as they are now ([`crate::simulate::Simulation`]), so what one stay would
//! pay now counts against the cap, deductible and bands of the next.

use super::{App, AppError};
use crate::{
    auth::{Action, Caller, authorize},
    domain::{Outcome, Person, PolicyBook, RegionCode, ResidentId, Settlement, Year},
    simulate::Simulation,
    store::{CommitNumber, Store, StoreError},
};

/// Settlements read from the store at a time, for one patient's year.
const PATIENT_YEAR_READ: usize = 1_000;

/// How many roster records the search reads between two looks at whether
/// its caller is still there.
const STOP_CHECK_EVERY: usize = 1_024;

/// A settled stay that would be paid more now.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The settlement as it was made at the window.
    pub settlement: Settlement,
    /// What it would pay now.
    pub now: Outcome,
}

/// One page of candidates.
#[derive(Clone, Debug, Default)]
pub struct CandidatePage {
    /// By patient ID, and each patient's by settlement number.
    pub candidates: Vec<Candidate>,
    /// The patient of the page's last candidate, when the roster after it
    /// has not been read: where the next page starts.
    pub next_after: Option<ResidentId>,
}

impl App {
    /// A page of the settled stays of `year` that patients enrolled in
    /// `region` now (and in the caller's regions) would be paid more for,
    /// reading the roster after patient `after` (roles caseworker and
    /// auditor). A search reads the roster until the page is full or the
    /// roster ends: it is a long read ([`App::long_read`]).
    pub async fn retroactive_candidates(
        &self,
        region: RegionCode,
        year: Year,
        page_size: usize,
        after: Option<ResidentId>,
        by: &Caller,
    ) -> Result<CandidatePage, AppError> {
        authorize(by, Action::ListRetroactiveCandidates)?;
        let limit = self.page_limit(page_size);
        let store = std::sync::Arc::clone(&self.store);
        let book = self.policies.load_full();
        let scope = by.regions.clone();
        self.long_read("candidate search", move |stopped| {
            let wanted = |person: &Person| {
                let covered = |r: &RegionCode| r.covers(person.region());
                covered(&region) && (scope.is_empty() || scope.iter().any(covered))
            };
            let search = Search {
                store: store.as_ref(),
                book: &book,
                year,
                limit,
            };
            search.run(wanted, after.as_ref(), stopped)
        })
        .await
    }
}

/// One page's search.
struct Search<'a> {
    store: &'a dyn Store,
    book: &'a PolicyBook,
    year: Year,
    limit: usize,
}

impl Search<'_> {
    /// Reads the roster after `after` and replays the year of each `wanted`
    /// patient, until the roster ends or the next patient's candidates would
    /// take the page past its limit (a first patient's all go in, however
    /// many). Returns the page and the newest commit read.
    fn run(
        &self,
        wanted: impl Fn(&Person) -> bool,
        after: Option<&ResidentId>,
        stopped: &dyn Fn() -> bool,
    ) -> Result<(CandidatePage, CommitNumber), StoreError> {
        let mut page = CandidatePage::default();
        let mut newest = 0;
        for (read, person) in self.store.persons(after).enumerate() {
            if read % STOP_CHECK_EVERY == 0 && stopped() {
                break;
            }
            let person = person?;
            if !wanted(&person.value) {
                continue;
            }
            let (mine, commit) = self.owed(&person.value)?;
            if mine.is_empty() {
                continue;
            }
            if !page.candidates.is_empty() && page.candidates.len() + mine.len() > self.limit {
                page.next_after = page
                    .candidates
                    .last()
                    .map(|c| c.settlement.claim.patient_id().clone());
                break;
            }
            newest = newest.max(person.commit).max(commit);
            page.candidates.extend(mine);
        }
        Ok((page, newest))
    }

    /// The settlements of `person`'s year that would pay more now, and the
    /// newest commit read.
    fn owed(&self, person: &Person) -> Result<(Vec<Candidate>, CommitNumber), StoreError> {
        let mut simulation = Simulation::new(self.book, self.year, None);
        let (mut found, mut newest, mut after) = (Vec::new(), 0, None);
        loop {
            let reads =
                self.store
                    .settlements_of(person.id(), self.year, after, PATIENT_YEAR_READ)?;
            let full = reads.len() == PATIENT_YEAR_READ;
            for read in reads {
                newest = newest.max(read.commit);
                after = Some(read.value.id);
                let settlement = read.value;
                let Some(now) = simulation.settle(&settlement, Some(person)) else {
                    continue;
                };
                if settlement.counts() && now.assistance > settlement.outcome.assistance {
                    found.push(Candidate { settlement, now });
                }
            }
            if !full {
                return Ok((found, newest));
            }
        }
    }
}
