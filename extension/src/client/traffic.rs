//! What clients did through pgwarm, in PgBouncer's terms (`SHOW STATS`): transactions, queries,
//! bytes each way and the time they took, plus what pgwarm itself refused or answered with an
//! error.
//!
//! A query runs from the first client byte after a ReadyForQuery to the next ReadyForQuery the
//! client sees; a transaction from its first query to a ReadyForQuery that says idle. A
//! session counts into its [`Tally`], which adds to the shared [`Traffic`] as it goes: a
//! relaxed add per read, per write and per ReadyForQuery, and one clock read at each end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Totals since pgwarm started, for every client.
#[derive(Debug, Default)]
pub struct Traffic {
    pub xacts: AtomicU64,
    pub queries: AtomicU64,
    /// Bytes read from clients.
    pub received: AtomicU64,
    /// Bytes written to clients.
    pub sent: AtomicU64,
    pub xact_us: AtomicU64,
    pub query_us: AtomicU64,
    /// Time clients waited for a server connection, and how many waits that was.
    pub wait_us: AtomicU64,
    pub waits: AtomicU64,
    /// Client statements pgwarm parsed on a server connection that lacked them (one the client
    /// had not used before, a new or a replaced one): the cost of sharing connections.
    pub reprepares: AtomicU64,
    /// Cancel requests forwarded to the database; and, a gauge, those on their way now.
    pub cancels: AtomicU64,
    pub cancels_now: AtomicU64,
    /// Clients that logged in to the pool (the admin console's own are not counted).
    pub logins: AtomicU64,
    /// Clients refused at login (wrong database or password, too many clients, no server).
    pub refused: AtomicU64,
    /// Errors pgwarm itself sent a client after its login (a wait that ran out, a lost server,
    /// a protocol violation), as opposed to the database's own.
    pub errors: AtomicU64,
}

impl Traffic {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One session's view: when its current query and transaction began.
#[derive(Debug)]
pub struct Tally {
    traffic: Arc<Traffic>,
    query_start: Option<Instant>,
    xact_start: Option<Instant>,
}

impl Tally {
    pub fn new(traffic: Arc<Traffic>) -> Tally {
        Tally {
            traffic,
            query_start: None,
            xact_start: None,
        }
    }

    /// `n` bytes came from the client: a query starts if none was running.
    pub fn received(&mut self, n: usize) {
        Traffic::add(&self.traffic.received, n as u64);
        if self.query_start.is_none() {
            let now = Instant::now();
            self.query_start = Some(now);
            self.xact_start.get_or_insert(now);
        }
    }

    /// pgwarm parsed a statement of the client's on the linked connection.
    pub fn reprepared(&self) {
        Traffic::add(&self.traffic.reprepares, 1);
    }

    pub fn sent(&self, n: usize) {
        Traffic::add(&self.traffic.sent, n as u64);
    }

    /// The client is about to read a ReadyForQuery with this transaction status.
    pub fn ready(&mut self, status: u8) {
        let Some(query) = self.query_start.take() else {
            return;
        };
        let now = Instant::now();
        Traffic::add(&self.traffic.queries, 1);
        Traffic::add(&self.traffic.query_us, micros(now - query));
        if status == b'I' {
            if let Some(xact) = self.xact_start.take() {
                Traffic::add(&self.traffic.xacts, 1);
                Traffic::add(&self.traffic.xact_us, micros(now - xact));
            }
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_spans_its_queries() {
        let traffic = Arc::new(Traffic::default());
        let mut tally = Tally::new(Arc::clone(&traffic));
        tally.received(10); // BEGIN
        tally.ready(b'T');
        tally.received(20); // INSERT
        tally.ready(b'T');
        tally.received(7); // COMMIT
        tally.ready(b'I');
        tally.ready(b'I'); // nothing was asked: not a query
        tally.received(5); // SELECT 1
        tally.ready(b'I');
        tally.sent(3);
        let read = |c: &AtomicU64| Traffic::read(c);
        assert_eq!(read(&traffic.queries), 4);
        assert_eq!(read(&traffic.xacts), 2);
        assert_eq!(read(&traffic.received), 42);
        assert_eq!(read(&traffic.sent), 3);
    }
}
