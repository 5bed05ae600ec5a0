//! The relay's view of the server connection it is linked to. It is made when the session links
//! a connection and dropped as one value when the link ends, so nothing one connection taught the
//! relay can leak into the next.

/// How far the server got with the current batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstAnswer {
    /// Nothing yet.
    Awaited,
    /// The first answer is a FATAL, held back (not forwarded) until the socket closes: a reset
    /// then means the batch was never read and can go to another connection.
    FatalHeld,
    /// The server answered: the batch is this connection's.
    Received,
}

#[derive(Debug)]
pub(super) struct Linked {
    /// The backend's pid: a notification it sends carries the one the client was told.
    pub(super) backend_pid: i32,
    /// The client's translated bytes are kept until the server answers, for a replay.
    pub(super) replay: bool,
    pub(super) first: FirstAnswer,
    /// A batch was sent again after a repairable error: at most once per link.
    pub(super) retried: bool,
    /// A FATAL from the server went to the client: it needs no second one from pgwarm.
    pub(super) fatal_forwarded: bool,
    /// With a pooler upstream: the connection has the client's own unnamed statement now,
    /// rather than one pgwarm parsed there.
    pub(super) client_unnamed_here: bool,
}

impl Linked {
    pub(super) fn new(backend_pid: i32) -> Linked {
        Linked {
            backend_pid,
            replay: true,
            first: FirstAnswer::Awaited,
            retried: false,
            fatal_forwarded: false,
            client_unnamed_here: false,
        }
    }

    /// Nothing of the batch was answered and it was kept: it can go to another connection.
    pub(super) fn replayable(&self) -> bool {
        self.replay && self.first != FirstAnswer::Received
    }
}
