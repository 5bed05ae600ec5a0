//! What clients did through pgwarm, in PgBouncer's terms (`SHOW STATS`): transactions, queries,
//! bytes each way and the time they took, plus what pgwarm itself refused or answered with an
//! error.
//!
//! A query runs from the first client byte after a ReadyForQuery to the next ReadyForQuery the
//! client sees; a transaction from its first query to a ReadyForQuery that says idle. A
//! session counts into its [`Tally`], which adds to the shared [`Traffic`] as it goes: a
//! relaxed add per read, per write and per ReadyForQuery, and one clock read at each end.

use crate::counter::Counter;
use crate::protocol::backend::TxStatus;
use crate::protocol::sqlstate;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Totals since pgwarm started, for every client.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Clients pinned to their server connection by session state (`SHOW CLIENTS`' `pinned`).
    pub pins: Counter,
    pub xacts: Counter,
    pub queries: Counter,
    /// Bytes read from clients.
    pub received: Counter,
    /// Bytes written to clients.
    pub sent: Counter,
    pub xact_us: Counter,
    pub query_us: Counter,
    /// Time clients waited for a server connection, and how many waits that was.
    pub wait_us: Counter,
    pub waits: Counter,
    /// Client statements pgwarm parsed on a server connection that lacked them (one the client
    /// had not used before, a new or a replaced one): the cost of sharing connections.
    pub reprepares: Counter,
    /// Cancel requests forwarded to the database; and, a gauge, those on their way now.
    pub cancels: Counter,
    pub cancels_now: AtomicU64,
    /// Clients waiting for a server connection now, and the most at once and the longest wait
    /// since the metrics last took them.
    pub waiting_now: AtomicU64,
    pub waiting_peak: AtomicU64,
    pub wait_peak_us: AtomicU64,
    /// The errors pgwarm itself gave clients (refusals at login included), by cause.
    pub causes: [Counter; ErrorCause::ALL.len()],
    /// Clients that logged in to the pool (the admin console's own are not counted).
    pub logins: Counter,
    /// Clients refused at login (wrong database or password, too many clients, no server).
    pub refused: Counter,
    /// Errors pgwarm itself sent a client after its login (a wait that ran out, a lost server,
    /// a protocol violation), as opposed to the database's own.
    pub errors: Counter,
}

impl Traffic {
    /// pgwarm gave a client an error with this SQLSTATE.
    pub(crate) fn error(&self, code: &str) {
        self.count_error(ErrorCause::of(code));
    }

    pub(crate) fn count_error(&self, cause: ErrorCause) {
        self.causes[cause as usize].add(1);
    }

    /// A client starts waiting for a server connection.
    pub(crate) fn wait_begins(&self) {
        let now = self.waiting_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.waiting_peak.fetch_max(now, Ordering::Relaxed);
    }

    /// A client's wait ended, with a connection or without.
    pub(crate) fn wait_ends(&self, waited: std::time::Duration) {
        self.waiting_now.fetch_sub(1, Ordering::Relaxed);
        let us = micros(waited);
        self.wait_us.add(us);
        self.waits.add(1);
        self.wait_peak_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// Why pgwarm gave a client an error, from its SQLSTATE: what an operator would alarm on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCause {
    /// 57014: no server connection within `PGWARM_QUERY_WAIT_TIMEOUT`.
    QueryWaitTimeout = 0,
    /// The database refused or dropped pgwarm (down, restarting, full: 08xxx, 53xxx, 57P02/3).
    DatabaseUnavailable = 1,
    /// A login pgwarm refused: password, database name, TLS required (28xxx, 3D000), or its own
    /// `PGWARM_MAX_CLIENT_CONN` reached (counted so by the login, as the 53300 it sends would
    /// otherwise read as the database's).
    LoginRefused = 2,
    /// The client broke the protocol (08P01).
    ProtocolViolation = 3,
    /// Idle in a transaction too long (25P03).
    IdleTransactionTimeout = 4,
    /// Closed by an administrator or a shutdown (57P01).
    Terminated = 5,
    Other = 6,
}

impl ErrorCause {
    pub(crate) const ALL: [ErrorCause; 7] = [
        ErrorCause::QueryWaitTimeout,
        ErrorCause::DatabaseUnavailable,
        ErrorCause::LoginRefused,
        ErrorCause::ProtocolViolation,
        ErrorCause::IdleTransactionTimeout,
        ErrorCause::Terminated,
        ErrorCause::Other,
    ];

    pub(crate) fn of(code: &str) -> ErrorCause {
        match code {
            sqlstate::QUERY_CANCELED => ErrorCause::QueryWaitTimeout,
            sqlstate::PROTOCOL_VIOLATION => ErrorCause::ProtocolViolation,
            sqlstate::IDLE_IN_TRANSACTION_TIMEOUT => ErrorCause::IdleTransactionTimeout,
            sqlstate::ADMIN_SHUTDOWN => ErrorCause::Terminated,
            sqlstate::INVALID_CATALOG_NAME => ErrorCause::LoginRefused,
            _ if code.starts_with(sqlstate::CLASS_INVALID_AUTHORIZATION) => {
                ErrorCause::LoginRefused
            }
            _ if code.starts_with(sqlstate::CLASS_CONNECTION_EXCEPTION)
                || code.starts_with(sqlstate::CLASS_INSUFFICIENT_RESOURCES)
                || code.starts_with(sqlstate::GROUP_SERVER_GOING_AWAY) =>
            {
                ErrorCause::DatabaseUnavailable
            }
            _ => ErrorCause::Other,
        }
    }

    /// The metric's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorCause::QueryWaitTimeout => "QueryWaitTimeout",
            ErrorCause::DatabaseUnavailable => "DatabaseUnavailable",
            ErrorCause::LoginRefused => "LoginRefused",
            ErrorCause::ProtocolViolation => "ProtocolViolation",
            ErrorCause::IdleTransactionTimeout => "IdleTransactionTimeout",
            ErrorCause::Terminated => "Terminated",
            ErrorCause::Other => "Other",
        }
    }
}

/// One session's view: when its current query and transaction began.
#[derive(Debug)]
pub(crate) struct Tally {
    traffic: Arc<Traffic>,
    query_start: Option<Instant>,
    xact_start: Option<Instant>,
}

impl Tally {
    pub(crate) fn new(traffic: Arc<Traffic>) -> Tally {
        Tally {
            traffic,
            query_start: None,
            xact_start: None,
        }
    }

    /// `n` bytes came from the client: a query starts if none was running.
    pub(crate) fn received(&mut self, n: usize) {
        self.traffic.received.add(n as u64);
        if self.query_start.is_none() {
            let now = Instant::now();
            self.query_start = Some(now);
            self.xact_start.get_or_insert(now);
        }
    }

    /// pgwarm parsed a statement of the client's on the linked connection.
    pub(crate) fn reprepared(&self) {
        self.traffic.reprepares.add(1);
    }

    pub(crate) fn sent(&self, n: usize) {
        self.traffic.sent.add(n as u64);
    }

    /// The client is about to read a ReadyForQuery with this transaction status.
    pub(crate) fn ready(&mut self, status: TxStatus) {
        let Some(query) = self.query_start.take() else {
            return;
        };
        let now = Instant::now();
        self.traffic.queries.add(1);
        self.traffic.query_us.add(micros(now - query));
        if status.is_idle() {
            if let Some(xact) = self.xact_start.take() {
                self.traffic.xacts.add(1);
                self.traffic.xact_us.add(micros(now - xact));
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
        tally.ready(TxStatus::InTransaction);
        tally.received(20); // INSERT
        tally.ready(TxStatus::InTransaction);
        tally.received(7); // COMMIT
        tally.ready(TxStatus::Idle);
        tally.ready(TxStatus::Idle); // nothing was asked: not a query
        tally.received(5); // SELECT 1
        tally.ready(TxStatus::Idle);
        tally.sent(3);
        let read = |c: &Counter| c.get();
        traffic.error("57014");
        traffic.error("28P01");
        traffic.error("53300");
        let cause = |c: ErrorCause| read(&traffic.causes[c as usize]);
        assert_eq!(cause(ErrorCause::QueryWaitTimeout), 1);
        assert_eq!(cause(ErrorCause::LoginRefused), 1);
        assert_eq!(cause(ErrorCause::DatabaseUnavailable), 1);
        assert_eq!(read(&traffic.queries), 4);
        assert_eq!(read(&traffic.xacts), 2);
        assert_eq!(read(&traffic.received), 42);
        assert_eq!(read(&traffic.sent), 3);
    }
}
