//! Which pgwarm statements exist on one server connection: a bounded set with least-recently-used
//! eviction (`PGWARM_MAX_PREPARED_STATEMENTS`).
//!
//! Statements are known by a digest of their text and parameter types (see
//! `client::statements`), so the set is shared knowledge between every client the connection
//! serves. The set is what pgwarm *sent*: an entry is added when a Parse goes out and removed again
//! if that Parse fails or is skipped after an earlier error.

use std::collections::HashMap;

/// A statement's identity: the first 128 bits of SHA-256 over its Parse body after the name.
pub type Digest = u128;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Clock value when the Parse was sent; `DEALLOCATE ALL` drops what existed before it.
    inserted: u64,
    /// Clock value of the last use, for eviction.
    used: u64,
}

#[derive(Debug, Default)]
pub struct PreparedSet {
    slots: HashMap<Digest, Slot>,
    clock: u64,
}

impl PreparedSet {
    /// Whether the statement exists here; a hit counts as a use.
    pub fn touch(&mut self, digest: Digest) -> bool {
        self.clock += 1;
        match self.slots.get_mut(&digest) {
            Some(slot) => {
                slot.used = self.clock;
                true
            }
            None => false,
        }
    }

    /// Records a statement being created, evicting the least recently used one when `capacity`
    /// is reached. Returns the evicted statement, which the caller must Close on the server.
    pub fn insert(&mut self, digest: Digest, capacity: usize) -> Option<Digest> {
        self.clock += 1;
        let mut evicted = None;
        if !self.slots.contains_key(&digest) && self.slots.len() >= capacity.max(1) {
            // A linear scan: eviction is rare and the set is small (200 by default).
            evicted = self
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.used)
                .map(|(d, _)| *d);
            if let Some(d) = evicted {
                self.slots.remove(&d);
            }
        }
        let now = self.clock;
        self.slots.insert(
            digest,
            Slot {
                inserted: now,
                used: now,
            },
        );
        evicted
    }

    /// Puts back a statement whose eviction did not happen (the Close was skipped after an
    /// error): it is still on the server, so the set may briefly exceed its capacity.
    pub fn restore(&mut self, digest: Digest) {
        self.clock += 1;
        let now = self.clock;
        self.slots.entry(digest).or_insert(Slot {
            inserted: now,
            used: now,
        });
    }

    pub fn remove(&mut self, digest: Digest) {
        self.slots.remove(&digest);
    }

    /// The current clock; entries inserted after this value survive [`Self::forget_before`].
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// `DEALLOCATE ALL` or `DISCARD ALL` ran: every statement created before `clock` is gone.
    pub fn forget_before(&mut self, clock: u64) {
        self.slots.retain(|_, slot| slot.inserted > clock);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
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
        assert!(set.touch(1));
        assert_eq!(set.insert(3, 2), Some(2));
        assert!(set.touch(1) && set.touch(3) && !set.touch(2));
        assert_eq!(set.len(), 2);
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
        assert!(!set.touch(1));
        assert!(set.touch(2));
    }
}
