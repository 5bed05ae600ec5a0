//! Reading the server: answers are matched to the messages in [`Expected`], pgwarm's own answers
//! are slipped in and the answers to its own messages taken out, and ReadyForQuery decides
//! whether the link can be released.
//!
//! [`Expected`]: super::expected::Expected
//!
//! Messages pgwarm must act on are small (completions, ReadyForQuery, most errors) and are read
//! whole; everything else, rows above all, streams through without being buffered.

use super::expected::{Answer, Effect, Fate, Kind, ReadyFor, Undo};
use super::inbox::Next;
use super::link::FirstAnswer;
use super::{Event, Relay, ERROR_PEEK_LIMIT};
use crate::config::PoolMode;
use crate::protocol::backend::TxStatus;
use crate::protocol::error::ServerReport;
use crate::protocol::framing;
use crate::protocol::sqlstate;
use crate::server::{Digest, PreparedSet};
use bytes::BytesMut;
use tracing::debug;

/// What a repairable first error says about a pgwarm statement.
#[derive(Debug, Clone, Copy)]
enum Repair {
    /// Its plan changed result type: parse it anew.
    Condemn(Digest),
    /// It does not exist: create it.
    Forget(Digest),
    /// It exists although pgwarm was creating it: use it.
    Keep(Digest),
}

/// How a message that changed pgwarm's books ended without succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The server answered it with an error.
    Failed,
    /// The error was "already exists": a statement pgwarm tried to create is there.
    Exists,
    /// An earlier message failed and the server skipped this one.
    Skipped,
}

impl Relay {
    /// Walks new server bytes. Returns what the session must do now, if anything.
    pub(super) fn walk_server(&mut self, set: &mut PreparedSet) -> Option<Event> {
        loop {
            if self.server.mid_message() {
                if !self.server.pass_body() {
                    return None;
                }
                self.drain_answers();
            }
            let next = self.server.next()?;
            let (tag, frame_len) = (next.tag, next.frame_len);
            if !framing::check_backend(tag, frame_len) {
                return Some(Event::ServerFailed {
                    replayable: false,
                    reason: format!(
                        "invalid length {frame_len} of a message of type 0x{tag:02x} from the database"
                    ),
                });
            }
            // A small error is read whole: whether it is a FATAL, and its SQLSTATE, decide what
            // pgwarm does. A longer one (quoting a huge query) streams through.
            let report = match tag == b'E' && frame_len <= ERROR_PEEK_LIMIT {
                true => Some(ServerReport::read(self.server.whole_body(&next)?)),
                false => None,
            };
            if self
                .link
                .as_ref()
                .is_some_and(|l| l.first != FirstAnswer::Received)
            {
                if let Some(report) = &report {
                    // A FATAL as the first answer is held back, not forwarded: how the socket
                    // then closes decides whether the batch can go to another connection.
                    if report.is_fatal() {
                        if let Some(link) = self.link.as_mut() {
                            link.first = FirstAnswer::FatalHeld;
                        }
                        return None;
                    }
                    if self.retry_repairable(&next, report, set) {
                        continue;
                    }
                }
                self.answered();
            }
            // The small messages pgwarm acts on are read whole.
            let needs_whole = matches!(
                tag,
                b'Z' | b'C' | b'1' | b'2' | b'3' | b'I' | b'n' | b's' | b'A'
            );
            if needs_whole && !next.whole() {
                return None;
            }
            match tag {
                b'Z' => match self.ready_for_query(&next) {
                    Some(event) => return Some(event),
                    None => continue,
                },
                b'E' => {
                    if let Some(link) = self.link.as_mut() {
                        // The client learns from the server itself why its session ends.
                        link.fatal_forwarded |= report.as_ref().is_some_and(ServerReport::is_fatal);
                    }
                    self.signals.refused_write |= report
                        .as_ref()
                        .is_some_and(|r| r.code == sqlstate::READ_ONLY_SQL_TRANSACTION);
                    if self.server_error(&next, report.as_ref(), set) {
                        continue;
                    }
                }
                b'A' => self.own_notification(&next),
                b'S' => {
                    // ParameterStatus: a reported setting changed, perhaps through set_config()
                    // rather than SET (Django sets its time zone that way).
                    self.signals.settings_changed = true;
                }
                b'G' => self.expected.copy_in_began(),
                _ => {
                    if tag == b'C' {
                        self.command_complete(&next, set);
                    }
                    if self.completion(&next) {
                        continue;
                    }
                }
            }
            let whole = next.whole();
            self.server.pass(&next);
            if whole {
                self.drain_answers();
            }
        }
    }

    /// A message that may complete the front entry. Returns true when it was consumed here
    /// (removed or replaced), false when it is to be forwarded as it is.
    fn completion(&mut self, next: &Next) -> bool {
        let tag = next.tag;
        // The empty query sent for a DEALLOCATE: its only result is renamed.
        if let Some(replacement) = self.expected.take_empty_replacement(tag) {
            self.server.splice(next.frame_len, replacement);
            return true;
        }
        let Some(done) = self.expected.complete(tag) else {
            return false;
        };
        if let (
            Effect::Creates(digest) | Effect::Recreates(digest) | Effect::Checks(digest),
            b'1',
        ) = (done.effect, tag)
        {
            self.known.insert(digest);
        }
        match done.fate {
            Fate::Swallow => {
                self.server.splice(next.frame_len, &[]);
                self.drain_answers();
                true
            }
            _ => false,
        }
    }

    /// An error as the very first answer on this link, in a batch of one Sync group, that pgwarm
    /// can repair: nothing of the batch ran (the failing message came first) and its implicit
    /// transaction is rolled back at the Sync, so pgwarm drops the error and that Sync's
    /// ReadyForQuery, fixes its books and sends the batch again. At most once per link.
    ///
    /// - "cached plan must not change result type" (0A000) to a Describe of a pgwarm statement,
    ///   or to a Bind of one: DDL changed what it returns; it is parsed anew. For a Bind, only
    ///   when the batch describes the result
    ///   before executing it (libpq, psycopg, pgbench): that client reads the new shape from
    ///   the fresh RowDescription. A client that executes without describing (tokio-postgres)
    ///   decodes rows with the columns it cached at prepare time, and new rows could be
    ///   misread; it gets the error, as PostgreSQL intends.
    /// - "prepared statement does not exist" (26000) to a Bind or Describe of a pgwarm
    ///   statement: something deallocated it behind pgwarm's back; it is created again.
    /// - "prepared statement already exists" (42P05) to a Parse pgwarm sent to create one: it is
    ///   there after all, and is used as it is.
    fn retry_repairable(
        &mut self,
        next: &Next,
        report: &ServerReport,
        set: &mut PreparedSet,
    ) -> bool {
        let retried = self.link.as_ref().is_none_or(|l| l.retried);
        if retried || !self.replay() || !self.outbox.is_empty() {
            return false;
        }
        let Some(front) = self.expected.front() else {
            return false;
        };
        let code = report.code.as_bytes();
        let repair = match (front.kind, front.effect) {
            (Kind::Bind, Effect::Uses(digest))
                if code == sqlstate::FEATURE_NOT_SUPPORTED.as_bytes()
                    && self.expected.describes_first() =>
            {
                Repair::Condemn(digest)
            }
            // A Describe runs nothing: the client reads the new shape from the answer.
            (Kind::Describe, Effect::Uses(digest))
                if code == sqlstate::FEATURE_NOT_SUPPORTED.as_bytes() =>
            {
                Repair::Condemn(digest)
            }
            (Kind::Bind | Kind::Describe, Effect::Uses(digest))
                if code == sqlstate::INVALID_STATEMENT_NAME.as_bytes() =>
            {
                Repair::Forget(digest)
            }
            (Kind::Parse, Effect::Creates(digest))
                if code == sqlstate::DUPLICATE_PREPARED_STATEMENT.as_bytes() =>
            {
                Repair::Keep(digest)
            }
            _ => return false,
        };
        if !self.expected.one_group() {
            return false;
        }
        debug!(
            ?repair,
            "repairing a pgwarm statement and sending the batch again"
        );
        self.server.splice(next.frame_len, &[]);
        self.expected.resend();
        match repair {
            Repair::Condemn(digest) => set.condemn(digest),
            Repair::Forget(digest) => set.remove(digest),
            Repair::Keep(digest) => set.restore(digest),
        }
        self.client.rewind();
        if let Some(link) = self.link.as_mut() {
            link.retried = true;
        }
        self.signals.repaired = !matches!(repair, Repair::Condemn(_));
        true
    }

    /// ReadyForQuery (whole, well-formed): the end of a Sync's or a query's answer. Returns the
    /// event it makes: the link may be released, or the client is idle in a transaction.
    fn ready_for_query(&mut self, next: &Next) -> Option<Event> {
        let byte = self
            .server
            .body(1)
            .map_or(0, |b| b.first().copied().unwrap_or(0));
        let Some(status) = TxStatus::from_byte(byte) else {
            return Some(Event::ServerFailed {
                replayable: false,
                reason: format!(
                    "ReadyForQuery with transaction status 0x{byte:02x} from the database"
                ),
            });
        };
        if self.expected.ready(status) == ReadyFor::Ours {
            // The end of a batch pgwarm is sending again: not the client's.
            self.server.splice(next.frame_len, &[]);
            return None;
        }
        self.tally.ready(status);
        self.server.pass(next);
        self.drain_answers();
        if !self.expected.is_empty() || !self.at_rest() {
            return None;
        }
        if self.rules.mode == PoolMode::Transaction && status.is_idle() {
            Some(Event::Release)
        } else if self.rules.watch_idle && !status.is_idle() {
            Some(Event::IdleInTransaction)
        } else {
            None
        }
    }

    /// An ErrorResponse. In the extended protocol it answers the front message, and the server
    /// then skips every message up to Sync: those entries go, and what they did is undone.
    /// Returns true when the error was replaced by pgwarm's own (already counted as walked).
    fn server_error(
        &mut self,
        next: &Next,
        report: Option<&ServerReport>,
        set: &mut PreparedSet,
    ) -> bool {
        // Inside a simple query, or a failing COMMIT at Sync, ReadyForQuery still follows.
        let Some(failed) = self.expected.fail_front() else {
            return false;
        };
        let code = report.map(|r| r.code.as_str());
        let replaced = match (&failed.fate, next.whole()) {
            (Fate::ReplaceError(error), true) => {
                let mut ours = BytesMut::new();
                error.encode(&mut ours);
                self.server.splice(next.frame_len, &ours);
                true
            }
            _ => false,
        };
        if let Effect::Uses(digest) = failed.effect {
            if code == Some(sqlstate::INVALID_STATEMENT_NAME) {
                // Deallocated behind pgwarm's back: created again next time.
                set.remove(digest);
            } else {
                // A shared statement that failed a Bind or Describe may be what failed it
                // (parameter types inferred under another schema, a type since dropped):
                // it is parsed anew before its next use.
                set.condemn(digest);
            }
        }
        let outcome = if code == Some(sqlstate::DUPLICATE_PREPARED_STATEMENT) {
            Outcome::Exists
        } else {
            Outcome::Failed
        };
        self.undo(failed, set, outcome);
        while let Some(skipped) = self.expected.pop_skipped() {
            self.undo(skipped, set, Outcome::Skipped);
        }
        if replaced {
            self.drain_answers();
        }
        replaced
    }

    /// Takes back what a message that failed or was skipped changed in pgwarm's books.
    fn undo(&mut self, failed: Answer, set: &mut PreparedSet, outcome: Outcome) {
        match (failed.effect, outcome) {
            (Effect::Creates(digest), Outcome::Exists) => set.restore(digest),
            (Effect::Creates(digest) | Effect::Recreates(digest), Outcome::Failed) => {
                // It does not parse (now): nothing is left on the server, and pgwarm no longer
                // answers a client's Parse of it in the server's place.
                set.remove(digest);
                self.known.remove(digest);
            }
            (Effect::Checks(digest), Outcome::Failed) => self.known.remove(digest),
            (Effect::Creates(digest), _) => set.remove(digest),
            // The Close before it was skipped too: the old statement is still there, and still
            // to be parsed anew.
            (Effect::Recreates(digest), _) => {
                set.restore(digest);
                set.condemn(digest);
            }
            (Effect::Closes(digest), _) => set.restore(digest),
            (Effect::Uses(_) | Effect::Checks(_) | Effect::None, _) => {}
        }
        match failed.undo {
            Undo::None => {}
            Undo::Forget(name, statement) => self.statements.forget(&name, &statement),
            Undo::Restore(name, statement) => {
                self.statements.restore(&name, &statement, failed.seq)
            }
            Undo::UnnamedLost => self.set_client_unnamed_here(false),
        }
    }

    /// NotificationResponse (whole): one from the client's own backend carries the pid the
    /// client was told, so "is this my own NOTIFY?" gets the answer it gets directly.
    fn own_notification(&mut self, next: &Next) {
        let Some(backend_pid) = self.link.as_ref().map(|l| l.backend_pid) else {
            return;
        };
        let client_pid = self.client_pid.to_be_bytes();
        let Some(pid) = self
            .server
            .whole_body_mut(next)
            .and_then(|body| body.get_mut(..4))
        else {
            return;
        };
        if *pid == backend_pid.to_be_bytes() {
            pid.copy_from_slice(&client_pid);
        }
    }

    /// CommandComplete (whole): `SET`, `RESET` and `DISCARD ALL` change session settings;
    /// `DEALLOCATE ALL` and `DISCARD ALL` drop every statement the connection had and every one
    /// the client had made before that command.
    fn command_complete(&mut self, next: &Next, set: &mut PreparedSet) {
        let body = self.server.whole_body(next).unwrap_or_default();
        if matches!(body, b"SET\0" | b"RESET\0" | b"DISCARD ALL\0") {
            self.signals.settings_changed = true;
        }
        if body != b"DEALLOCATE ALL\0" && body != b"DISCARD ALL\0" {
            return;
        }
        let (seq, clock) = self
            .expected
            .front()
            .map_or((self.client.seq(), set.clock()), |e| (e.seq, e.clock));
        set.forget_before(clock);
        if self.rules.max_prepared > 0 {
            self.statements.forget_before(seq);
        }
    }
}
