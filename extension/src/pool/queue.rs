//! The clients waiting for a server connection, in the order they asked.
//!
//! Two kinds of client wait. One found the pool full and takes whatever comes first: a
//! connection given back, or the slot of one that was lost (it then opens a connection itself).
//! The other holds a slot already and is retrying a login the database refused (it is full,
//! restarting, failing over): a slot is no use to it, but a connection given back is, since it
//! ends the client's wait at once instead of at a login the database may refuse for a long time.
//! The queue keeps both in the order their checkouts began, so the client that asked first is
//! served first whichever way it waits.

use super::slots::Grant;
use crate::server::ServerConn;
use std::collections::VecDeque;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a queued client can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wants {
    /// A connection, or a slot to open one in.
    Either,
    /// A connection only: the client holds a slot whose login is being retried.
    Connection,
}

struct Queued {
    tx: oneshot::Sender<Grant>,
    wants: Wants,
    /// When the client's checkout began: its place in the queue.
    since: Instant,
}

#[derive(Default)]
pub(super) struct Queue {
    waiting: VecDeque<Queued>,
    /// The length at which `push` next drops the clients that gave up.
    sweep_at: usize,
}

/// The smallest queue `push` sweeps.
const MIN_SWEEP: usize = 16;

impl Queue {
    /// Queues a client that asked at `since`, behind every client that asked earlier; returns
    /// where its grant will come.
    pub(super) fn push(&mut self, wants: Wants, since: Instant) -> oneshot::Receiver<Grant> {
        // Clients that gave up are dropped here too, not only when something is handed out, so
        // a pool held for long cannot pile them up. Only once the queue has doubled since the
        // last sweep: with every client of a busy pool waiting, a sweep at each push would read
        // them all at every transaction.
        if self.waiting.len() >= self.sweep_at {
            self.waiting.retain(|q| !q.tx.is_closed());
            self.sweep_at = (self.waiting.len() * 2).max(MIN_SWEEP);
        }
        let (tx, rx) = oneshot::channel();
        let at = self.waiting.partition_point(|q| q.since <= since);
        self.waiting.insert(at, Queued { tx, wants, since });
        rx
    }

    /// Hands `grant` to the longest waiter that can use it; gives it back if none is left.
    pub(super) fn hand(&mut self, mut grant: Grant) -> Option<Grant> {
        let mut from = 0;
        loop {
            let slot = matches!(grant, Grant::Slot);
            let Some(at) = (from..self.waiting.len()).find(|&i| {
                !slot
                    || self
                        .waiting
                        .get(i)
                        .is_some_and(|q| q.wants == Wants::Either)
            }) else {
                return Some(grant);
            };
            let Some(queued) = self.waiting.remove(at) else {
                return Some(grant);
            };
            match queued.tx.send(grant) {
                Ok(()) => return None,
                // That client gave up: the next one, who now stands where it stood.
                Err(back) => {
                    grant = back;
                    from = at;
                }
            }
        }
    }

    /// [`Queue::hand`] for a connection: gives it back when nobody waits for one.
    pub(super) fn hand_conn(&mut self, conn: Box<ServerConn>) -> Option<Box<ServerConn>> {
        match self.hand(Grant::Conn(conn))? {
            Grant::Conn(conn) => Some(conn),
            // `hand` gives back what it was given.
            Grant::Slot => None,
        }
    }

    /// Whether no client waits (those that gave up are not counted).
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.iter().all(|q| q.tx.is_closed())
    }

    /// Clients kept in the queue, those that gave up and are not swept yet included.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.waiting.len()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.waiting.iter().filter(|q| !q.tx.is_closed()).count()
    }

    pub(super) fn clear(&mut self) {
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_slot_skips_clients_that_hold_one_and_a_connection_goes_to_the_first() {
        let mut queue = Queue::default();
        let t0 = Instant::now();
        let mut retrying = queue.push(Wants::Connection, t0);
        let mut waiting = queue.push(Wants::Either, t0 + Duration::from_millis(1));
        assert!(queue.hand(Grant::Slot).is_none(), "the slot was taken");
        assert!(matches!(waiting.try_recv(), Ok(Grant::Slot)));
        assert!(
            retrying.try_recv().is_err(),
            "a retrying login takes no slot"
        );
        assert_eq!(queue.len(), 1);
        assert!(
            matches!(queue.hand(Grant::Slot), Some(Grant::Slot)),
            "nobody left who can use a slot"
        );
    }

    #[test]
    fn what_nobody_waits_for_is_given_back() {
        let mut queue = Queue::default();
        assert!(matches!(queue.hand(Grant::Slot), Some(Grant::Slot)));
    }

    #[test]
    fn clients_are_served_in_the_order_their_checkouts_began() {
        let mut queue = Queue::default();
        let t0 = Instant::now();
        let mut late = queue.push(Wants::Either, t0 + Duration::from_millis(5));
        let mut early = queue.push(Wants::Connection, t0);
        assert!(queue.hand(Grant::Slot).is_none());
        assert!(matches!(late.try_recv(), Ok(Grant::Slot)));
        assert!(early.try_recv().is_err());
    }

    #[test]
    fn a_client_that_gave_up_is_passed_over() {
        let mut queue = Queue::default();
        let t0 = Instant::now();
        let first = queue.push(Wants::Either, t0);
        let mut second = queue.push(Wants::Either, t0 + Duration::from_millis(1));
        drop(first);
        assert_eq!(queue.len(), 1);
        assert!(queue.hand(Grant::Slot).is_none());
        assert!(matches!(second.try_recv(), Ok(Grant::Slot)));
        assert!(queue.is_empty());
    }
}
