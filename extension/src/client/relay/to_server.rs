//! Writing the client's messages for the linked server connection.
//!
//! Most bytes are copied as they are. A named statement gets its server-side name; a statement
//! this connection lacks (never prepared here, evicted, or lost with a replaced connection) is
//! created first with a Parse pgwarm adds. A client's own Parse always reaches the server, after
//! a Close of the shared statement when the connection has it, as does the first use of one
//! pgwarm answered without a server, and of one marked stale. Every message sent or answered is
//! queued in [`Expected`](super::expected::Expected).

use super::expected::{Answer, Effect, Fate, Kind, Undo};
use super::from_client::{Edit, WalkedMessage};
use super::Relay;
use crate::client::session_sql::SessionState;
use crate::client::statements::{server_name, Statement};
use crate::protocol::backend::{CLOSE_COMPLETE, DEALLOCATE_COMPLETE};
use crate::protocol::framing::{self, HEADER_LEN};
use crate::protocol::{frontend, sqlstate, PgError};
use crate::server::{PreparedSet, Presence};
use std::sync::Arc;

/// A statement name no server has (pgwarm's names are `pgwarm_` and hex): a Describe of it fails,
/// which is how pgwarm makes the server fail in its place and skip to Sync.
const NO_SUCH_STATEMENT: &[u8] = b"pgwarm.none";

impl Relay {
    /// Translates everything walked and not yet translated.
    pub(super) fn translate(&mut self, set: &mut PreparedSet) {
        while self.client.untranslated() > 0 {
            if !self.client.copy_to_next(&mut self.outbox) {
                continue;
            }
            // A queued message starts here. While the batch may be replayed it is kept.
            let Some(message) = self.client.take_next(self.replay()) else {
                break;
            };
            let replaced = self.apply(message, set);
            self.client.translated_bytes(replaced);
        }
        self.drain_answers();
    }

    /// Writes one queued message for `set`'s connection and queues what the server owes for it.
    /// Returns how many of the client's bytes it replaced.
    fn apply(&mut self, message: WalkedMessage, set: &mut PreparedSet) -> usize {
        let WalkedMessage {
            kind, seq, edit, ..
        } = message;
        // Statements created after this point survive a DEALLOCATE ALL sent here.
        let clock = set.clock();
        let expect = |relay: &mut Relay, fate, undo| {
            relay.expected.push(Answer {
                undo,
                seq,
                clock,
                ..Answer::new(kind, fate)
            })
        };
        if self.rules.unnamed_server {
            if let Some(replaced) = self.apply_unnamed(&edit, kind, seq, clock) {
                return replaced;
            }
        }
        if let Some(replaced) = self.apply_client_unnamed(&edit, kind, seq, clock) {
            return replaced;
        }
        match edit {
            Edit::None | Edit::UnnamedParse(_) | Edit::UnnamedUse => {
                expect(self, Fate::Forward, Undo::None);
                0
            }
            Edit::Parse {
                len,
                name,
                statement,
            } => {
                let presence = set.touch(statement.digest());
                let undo = Undo::Forget(name, Arc::clone(&statement));
                self.create(set, &statement, presence, Fate::Forward, undo, seq);
                len
            }
            Edit::Bind {
                names_end,
                portal_len,
                statement,
            } => {
                self.ensure(set, &statement);
                self.rebind(names_end, portal_len, statement.name());
                self.push_uses(Kind::Bind, &statement, seq, set);
                names_end
            }
            Edit::Describe { len, statement } => {
                self.ensure(set, &statement);
                frontend::statement_message(&mut self.outbox, b'D', statement.name());
                self.push_uses(Kind::Describe, &statement, seq, set);
                len
            }
            Edit::Close {
                len,
                name,
                statement,
            } => {
                expect(
                    self,
                    Fate::Ours(CLOSE_COMPLETE),
                    Undo::Restore(name, statement),
                );
                len
            }
            Edit::Duplicate { len, name } => {
                frontend::statement_message(&mut self.outbox, b'D', NO_SUCH_STATEMENT);
                let error = PgError::error(
                    sqlstate::DUPLICATE_PREPARED_STATEMENT,
                    format!(
                        "prepared statement \"{}\" already exists",
                        String::from_utf8_lossy(&name)
                    ),
                );
                self.expected.push(Answer {
                    seq,
                    clock: set.clock(),
                    ..Answer::new(Kind::Describe, Fate::ReplaceError(Box::new(error)))
                });
                len
            }
            Edit::Refuse { len, state } => {
                // The Describe fails as the statement would have (aborting a transaction the
                // same way), and its error is replaced by pgwarm's. A simple query owes a
                // ReadyForQuery: a Sync brings it.
                frontend::statement_message(&mut self.outbox, b'D', NO_SUCH_STATEMENT);
                let error = Box::new(refusal(state));
                self.expected.push(Answer {
                    seq,
                    clock,
                    ..Answer::new(Kind::Describe, Fate::ReplaceError(error))
                });
                if kind == Kind::Query {
                    frontend::sync(&mut self.outbox);
                    self.expected.push(Answer {
                        seq,
                        clock,
                        ..Answer::new(Kind::Sync, Fate::Forward)
                    });
                }
                len
            }
            Edit::Deallocate {
                len,
                name,
                statement,
            } => {
                frontend::query(&mut self.outbox, b"");
                expect(
                    self,
                    Fate::EmptyAs(DEALLOCATE_COMPLETE),
                    Undo::Restore(name, statement),
                );
                len
            }
        }
    }

    /// With a pooler upstream, the client's named statements exist on no server: each use is
    /// preceded by a Parse of the unnamed statement, whose answer is pgwarm's, and the client's
    /// Parse is sent as one to learn whether it parses. The client's own unnamed statement is
    /// parsed again before its use when pgwarm's took its place. None: not a message this mode
    /// changes.
    fn apply_unnamed(&mut self, edit: &Edit, kind: Kind, seq: u64, clock: u64) -> Option<usize> {
        let forward = |relay: &mut Relay, undo| {
            relay.expected.push(Answer {
                undo,
                seq,
                clock,
                ..Answer::new(kind, Fate::Forward)
            })
        };
        match edit {
            Edit::Parse {
                len,
                name,
                statement,
            } => {
                frontend::parse(&mut self.outbox, b"", statement.content());
                self.set_client_unnamed_here(false);
                self.expected.push(Answer {
                    undo: Undo::Forget(name.clone(), Arc::clone(statement)),
                    effect: Effect::Checks(statement.digest()),
                    seq,
                    clock,
                    ..Answer::new(Kind::Parse, Fate::Forward)
                });
                Some(*len)
            }
            Edit::Bind {
                names_end,
                portal_len,
                statement,
            } => {
                self.parse_unnamed(statement.content(), Undo::None, seq, clock);
                self.set_client_unnamed_here(false);
                self.rebind(*names_end, *portal_len, b"");
                forward(self, Undo::None);
                Some(*names_end)
            }
            Edit::Describe { len, statement } => {
                self.parse_unnamed(statement.content(), Undo::None, seq, clock);
                self.set_client_unnamed_here(false);
                frontend::statement_message(&mut self.outbox, b'D', b"");
                forward(self, Undo::None);
                Some(*len)
            }
            _ => None,
        }
    }

    /// The client's own unnamed statement, in every mode: a Parse of it is kept, and a Bind or
    /// Describe of it on a connection that lacks it (another connection than its Parse's, or
    /// one where pgwarm's own query destroyed it) is preceded by that Parse again. Without it,
    /// the Bind would fail, or run another client's unnamed statement left on the connection.
    /// None: not a message about the unnamed statement.
    fn apply_client_unnamed(
        &mut self,
        edit: &Edit,
        kind: Kind,
        seq: u64,
        clock: u64,
    ) -> Option<usize> {
        let forward = |relay: &mut Relay| {
            relay.expected.push(Answer {
                seq,
                clock,
                ..Answer::new(kind, Fate::Forward)
            })
        };
        match edit {
            Edit::UnnamedParse(content) => {
                self.client_unnamed = Some(Arc::clone(content));
                self.set_client_unnamed_here(true);
                forward(self);
                Some(0)
            }
            Edit::UnnamedUse => {
                if !self.client_unnamed_here() {
                    if let Some(content) = self.client_unnamed.clone() {
                        self.parse_unnamed(&content, Undo::UnnamedLost, seq, clock);
                        self.set_client_unnamed_here(true);
                    }
                }
                forward(self);
                Some(0)
            }
            _ => None,
        }
    }

    /// Writes the start of the client's Bind (its first `names_end` bytes: header, portal and
    /// statement names), now first among the untranslated bytes, for statement `name`; the
    /// parameters after it are copied.
    fn rebind(&mut self, names_end: usize, portal_len: usize, name: &[u8]) {
        let bind = self.client.pending();
        let frame_len = framing::header(bind).map_or(names_end, |h| h.1);
        let portal = bind
            .get(HEADER_LEN..HEADER_LEN + portal_len)
            .unwrap_or_default();
        frontend::bind_prefix(&mut self.outbox, portal, name, frame_len - names_end);
    }

    /// A Parse of the unnamed statement whose answer is pgwarm's.
    fn parse_unnamed(&mut self, content: &[u8], undo: Undo, seq: u64, clock: u64) {
        frontend::parse(&mut self.outbox, b"", content);
        self.expected.push(Answer {
            undo,
            seq,
            clock,
            ..Answer::new(Kind::Parse, Fate::Swallow)
        });
    }

    /// Makes sure the linked connection has `statement`, as this client would have parsed it,
    /// before a message that uses it.
    fn ensure(&mut self, set: &mut PreparedSet, statement: &Arc<Statement>) {
        match set.touch(statement.digest()) {
            Presence::Present if !statement.is_fresh() => {}
            presence => {
                self.tally.reprepared();
                self.create(set, statement, presence, Fate::Swallow, Undo::None, 0)
            }
        }
    }

    /// Sends a Parse that creates `statement`: after a Close of the statement it evicts when it
    /// is absent, after a Close of the statement itself when it is there but must be parsed anew.
    fn create(
        &mut self,
        set: &mut PreparedSet,
        statement: &Statement,
        presence: Presence,
        fate: Fate,
        undo: Undo,
        seq: u64,
    ) {
        statement.sent();
        let effect = if presence == Presence::Absent {
            Effect::Creates(statement.digest())
        } else {
            frontend::statement_message(&mut self.outbox, b'C', statement.name());
            self.expected.push(Answer {
                seq,
                clock: set.clock(),
                ..Answer::new(Kind::Close, Fate::Swallow)
            });
            Effect::Recreates(statement.digest())
        };
        if let Some(evicted) = set.insert(statement.digest(), self.rules.max_prepared) {
            frontend::statement_message(&mut self.outbox, b'C', &server_name(evicted));
            self.expected.push(Answer {
                effect: Effect::Closes(evicted),
                seq,
                clock: set.clock(),
                ..Answer::new(Kind::Close, Fate::Swallow)
            });
        }
        self.outbox.extend_from_slice(statement.parse_message());
        self.expected.push(Answer {
            undo,
            effect,
            seq,
            clock: set.clock(),
            ..Answer::new(Kind::Parse, fate)
        });
    }

    /// Queues a client Bind or Describe of a pgwarm statement.
    fn push_uses(&mut self, kind: Kind, statement: &Statement, seq: u64, set: &PreparedSet) {
        self.expected.push(Answer {
            effect: Effect::Uses(statement.digest()),
            seq,
            clock: set.clock(),
            ..Answer::new(kind, Fate::Forward)
        });
    }

    /// Sends pgwarm's own answers once every message before them was answered. They count as
    /// an answer on this link: the batch can no longer be replayed elsewhere.
    pub(super) fn drain_answers(&mut self) {
        while !self.server.mid_message() {
            let Some(bytes) = self.expected.take_ours() else {
                return;
            };
            self.server.splice(0, bytes);
            self.answered();
        }
    }

    /// With a pooler upstream: whether the connection has the client's own unnamed statement.
    fn client_unnamed_here(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.client_unnamed_here)
    }

    pub(super) fn set_client_unnamed_here(&mut self, here: bool) {
        if let Some(link) = self.link.as_mut() {
            link.client_unnamed_here = here;
        }
    }
}

/// The error a statement that would leave session state gets with `PGWARM_PINNING=refuse`.
fn refusal(state: SessionState) -> PgError {
    PgError::error(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!(
            "pgwarm refuses {} in transaction mode: it would outlive the transaction, and the \
             server connection goes to another client after it",
            state.as_str()
        ),
    )
    .with_hint(
        "PGWARM_PINNING=on keeps a client's server connection while such state lives; \
         PGWARM_POOL_MODE=session gives each client its own.",
    )
}
