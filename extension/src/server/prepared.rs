//! Which pgwarm statements exist on one server connection: a bounded set with least-recently-used
//! eviction (`PGWARM_MAX_PREPARED_STATEMENTS`).
//!
//! Statements are known by a digest of their text and parameter types (see
//! `client::statements`), so the set is shared knowledge between every client the connection
//! serves. The set is what pgwarm *sent*: an entry is added when a Parse goes out and removed again
//! if that Parse fails or is skipped after an earlier error.

use crate::counter::Counter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A statement's identity: the first 128 bits of SHA-256 over its Parse body after the name.
pub(crate) type Digest = u128;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Clock value when the Parse was sent; `DEALLOCATE ALL` drops what existed before it.
    inserted: u64,
    /// Clock value of the last use, for eviction.
    used: u64,
    /// It failed a client's Bind or Describe, or its plan changed result type: it is closed and
    /// parsed anew before its next use.
    stale: bool,
}

/// Whether a statement is on the connection, as far as pgwarm knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    Absent,
    Present,
    /// There, but to be parsed anew (Close, then Parse) before it is used.
    Stale,
}

#[derive(Debug, Default)]
pub(crate) struct PreparedSet {
    slots: HashMap<Digest, Slot>,
    clock: u64,
    counters: Arc<PreparedCounters>,
}

/// What one connection's set did, readable while a client holds the connection (the admin
/// console's `SHOW PREPARED`).
#[derive(Debug, Default)]
pub(crate) struct PreparedCounters {
    /// Statements on the connection now.
    pub(crate) statements: AtomicU64,
    /// Uses that found the statement there: a Parse saved.
    pub(crate) hits: Counter,
    /// Statements created that were not there.
    pub(crate) prepares: Counter,
    /// Statements parsed anew over themselves: a client's own Parse, or one found stale.
    pub(crate) reprepares: Counter,
    /// Statements closed to stay within `PGWARM_MAX_PREPARED_STATEMENTS`.
    pub(crate) evictions: Counter,
}

impl PreparedSet {
    /// Whether the statement exists here; a hit counts as a use.
    pub(crate) fn touch(&mut self, digest: Digest) -> Presence {
        self.clock += 1;
        match self.slots.get_mut(&digest) {
            Some(slot) => {
                slot.used = self.clock;
                if slot.stale {
                    Presence::Stale
                } else {
                    self.counters.hits.add(1);
                    Presence::Present
                }
            }
            None => Presence::Absent,
        }
    }

    /// Marks a statement to be parsed anew before its next use.
    pub(crate) fn condemn(&mut self, digest: Digest) {
        if let Some(slot) = self.slots.get_mut(&digest) {
            slot.stale = true;
        }
    }

    /// Records a statement being created (or parsed anew), evicting the least recently used one
    /// when `capacity` is reached. Returns the evicted statement, which the caller must Close on the server.
    pub(crate) fn insert(&mut self, digest: Digest, capacity: usize) -> Option<Digest> {
        self.clock += 1;
        let mut evicted = None;
        let there = self.slots.contains_key(&digest);
        match there {
            true => &self.counters.reprepares,
            false => &self.counters.prepares,
        }
        .add(1);
        if !there && self.slots.len() >= capacity.max(1) {
            // A linear scan: eviction is rare and the set is small (200 by default).
            evicted = self
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.used)
                .map(|(d, _)| *d);
            if let Some(d) = evicted {
                self.slots.remove(&d);
                self.counters.evictions.add(1);
            }
        }
        let now = self.clock;
        self.slots.insert(
            digest,
            Slot {
                inserted: now,
                used: now,
                stale: false,
            },
        );
        self.count();
        evicted
    }

    /// Puts back a statement whose eviction did not happen (the Close was skipped after an
    /// error): it is still on the server, so the set may briefly exceed its capacity.
    pub(crate) fn restore(&mut self, digest: Digest) {
        self.clock += 1;
        let now = self.clock;
        self.slots.entry(digest).or_insert(Slot {
            inserted: now,
            used: now,
            stale: false,
        });
        self.count();
    }

    pub(crate) fn remove(&mut self, digest: Digest) {
        self.slots.remove(&digest);
        self.count();
    }

    /// The current clock; entries inserted after this value survive [`Self::forget_before`].
    pub(crate) fn clock(&self) -> u64 {
        self.clock
    }

    /// `DEALLOCATE ALL` or `DISCARD ALL` ran: every statement created before `clock` is gone.
    pub(crate) fn forget_before(&mut self, clock: u64) {
        self.slots.retain(|_, slot| slot.inserted > clock);
        self.count();
    }

    /// The set's counters, shared with whoever shows them.
    pub(crate) fn counters(&self) -> &Arc<PreparedCounters> {
        &self.counters
    }

    fn count(&self) {
        self.counters
            .statements
            .store(self.slots.len() as u64, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_statement_is_evicted() {
        let mut set = PreparedSet::default();
        assert_eq!(set.insert(1, 2), None);
        assert_eq!(set.insert(2, 2), None);
        assert_eq!(set.touch(1), Presence::Present);
        assert_eq!(set.insert(3, 2), Some(2));
        assert_eq!(set.touch(1), Presence::Present);
        assert_eq!(set.touch(3), Presence::Present);
        assert_eq!(set.touch(2), Presence::Absent);
        assert_eq!(set.len(), 2);
        let counters = set.counters();
        assert_eq!(counters.statements.load(Ordering::Relaxed), 2);
        assert_eq!(counters.hits.get(), 3);
        assert_eq!(counters.prepares.get(), 3);
        assert_eq!(counters.evictions.get(), 1);
    }

    #[test]
    fn reinserting_a_present_statement_evicts_nothing() {
        let mut set = PreparedSet::default();
        set.insert(1, 1);
        assert_eq!(set.insert(1, 1), None);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn deallocate_all_keeps_what_was_created_after_it() {
        let mut set = PreparedSet::default();
        set.insert(1, 10);
        let at = set.clock();
        set.insert(2, 10);
        set.touch(1);
        set.forget_before(at);
        assert_eq!(set.touch(1), Presence::Absent);
        assert_eq!(set.touch(2), Presence::Present);
    }

    #[test]
    fn a_condemned_statement_is_stale_until_created_again() {
        let mut set = PreparedSet::default();
        set.condemn(1);
        assert_eq!(set.touch(1), Presence::Absent, "nothing to condemn");
        set.insert(1, 10);
        set.condemn(1);
        assert_eq!(set.touch(1), Presence::Stale);
        assert_eq!(set.insert(1, 10), None);
        assert_eq!(set.touch(1), Presence::Present);
    }
}
