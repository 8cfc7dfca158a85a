//! A bounded cache of roster records, in front of the store.
//!
//! Every quote, settlement and usage query reads the patient's roster record;
//! the roster changes rarely. The cache must never serve a record older than
//! one already committed, so it is kept coherent like this:
//!
//! - the ledger, right after committing roster writes, puts the new records
//!   in and bumps a generation counter (under the cache's lock);
//! - a reader notes the generation *before* reading the store, and adds what
//!   it read only if the generation has not moved since, and the entry is
//!   still absent.
//!
//! A reader that read an old record before a write committed therefore
//! either adds it before the ledger overwrites it, or finds the generation
//! moved and adds nothing. Emptying the cache when it is full loses nothing
//! but hits.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::domain::{Person, ResidentId};

/// Most records kept (a few hundred bytes each).
pub const ROSTER_CACHE_MAX: usize = 100_000;

#[derive(Default)]
struct Inner {
    generation: u64,
    people: HashMap<ResidentId, Arc<Person>>,
}

/// Roster records recently read or written. Reads far outnumber writes, so
/// lookups share a read lock.
#[derive(Default)]
pub struct RosterCache {
    inner: RwLock<Inner>,
}

impl RosterCache {
    /// An empty cache.
    pub fn new() -> RosterCache {
        RosterCache::default()
    }

    // The map holds no invariant a panicking holder could break, so a
    // poisoned lock is used as it is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached record, or the generation to pass to [`RosterCache::offer`]
    /// after reading the store.
    pub fn get(&self, id: &ResidentId) -> Result<Arc<Person>, u64> {
        let inner = self.read();
        inner.people.get(id).cloned().ok_or(inner.generation)
    }

    /// Adds a record read from the store, unless a roster write committed
    /// since `generation` was noted.
    pub fn offer(&self, generation: u64, person: Arc<Person>) {
        let mut inner = self.write();
        if inner.generation != generation || inner.people.contains_key(person.id()) {
            return;
        }
        if inner.people.len() >= ROSTER_CACHE_MAX {
            inner.people.clear();
        }
        inner.people.insert(person.id().clone(), person);
    }

    /// Records committed roster writes: called by the ledger after the commit.
    pub fn committed(&self, persons: &[Person]) {
        let mut inner = self.write();
        inner.generation += 1;
        if inner.people.len() + persons.len() > ROSTER_CACHE_MAX {
            inner.people.clear();
        }
        for person in persons {
            inner
                .people
                .insert(person.id().clone(), Arc::new(person.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PersonInput, resident_id::tests::with_check};

    fn person(name: &str) -> Person {
        let id = with_check("32060219600101123");
        Person::parse(&PersonInput {
            patient_id: &id,
            name,
            region_code: "320602",
            ..PersonInput::default()
        })
        .unwrap()
    }

    /// Proves a record read before a write committed is never cached after it.
    #[test]
    fn a_read_that_raced_a_write_adds_nothing() {
        let cache = RosterCache::new();
        let old = person("old");
        let generation = cache.get(old.id()).unwrap_err();
        // The write commits while the reader is between its store read and its offer.
        cache.committed(&[person("new")]);
        cache.offer(generation, Arc::new(old.clone()));
        assert_eq!(cache.get(old.id()).unwrap().name().as_str(), "new");
    }

    /// Proves any roster write between a reader's note and its offer makes
    /// the offer a no-op, even for a record the write did not touch.
    #[test]
    fn any_write_in_between_voids_the_offer() {
        let cache = RosterCache::new();
        let old = person("old");
        let generation = cache.get(old.id()).unwrap_err();
        let other_id = with_check("32060219700101123");
        let other = Person::parse(&PersonInput {
            patient_id: &other_id,
            name: "other",
            region_code: "320602",
            ..PersonInput::default()
        })
        .unwrap();
        cache.committed(&[other]);
        cache.offer(generation, Arc::new(old.clone()));
        assert!(cache.get(old.id()).is_err());
    }

    /// Proves an offer made before the write is overwritten by it.

    #[test]
    fn a_write_overwrites_an_earlier_offer() {
        let cache = RosterCache::new();
        let old = person("old");
        let generation = cache.get(old.id()).unwrap_err();
        cache.offer(generation, Arc::new(old.clone()));
        assert_eq!(cache.get(old.id()).unwrap().name().as_str(), "old");
        cache.committed(&[person("new")]);
        assert_eq!(cache.get(old.id()).unwrap().name().as_str(), "new");
    }
}
