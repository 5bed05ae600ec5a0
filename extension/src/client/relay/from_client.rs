//! Reading the client: each message header is validated, and each message the server will answer
//! is queued as an [`WalkedMessage`], with what it means for the client's named statements.
//!
//! The client's own view of its statements changes here, in the order it sent its messages: a
//! Parse records the name, a Close or `DEALLOCATE` drops it. Whether a server connection has the
//! statement is a question for the translation, which may run twice for one batch (a replay).

use super::expected::Kind;
use super::Relay;
use crate::client::session_sql::{session_state, session_states, SessionState};
use crate::client::statements::{deallocate_target, ClientStatements, Resolution, Statement};
use crate::config::PoolMode;
use crate::protocol::framing::{self, FrameError, HEADER_LEN};
use crate::protocol::frontend;
use std::sync::Arc;

/// A simple query up to this size is read whole, to recognise `DEALLOCATE name` and the words
/// of session state; a longer one counts as one that may make session state.
const INSPECT_QUERY_LIMIT: usize = 8 * 1024;

/// Words in a statement that may leave state in the backend's session, or undo it (lower case;
/// matched without regard to case, where a run of letters starts). A false alarm costs one
/// question at the transaction's end.
const SESSION_STATE_WORDS: [&[u8]; 11] = [
    b"advisory",
    b"listen",
    b"unlisten",
    b"temp",
    b"hold",
    b"prepare",
    b"load",
    b"discard",
    b"close",
    b"deallocate",
    b"drop",
];

/// A client message the server answers, or whose statement name pgwarm rewrites.
#[derive(Debug, Clone)]
pub(crate) struct WalkedMessage {
    /// Stream offset of the message's first byte.
    pub(crate) at: u64,
    pub(crate) kind: Kind,
    pub(crate) seq: u64,
    pub(crate) edit: Edit,
}

/// What the translation must do with the message instead of copying it.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    /// Nothing: copy it as it is.
    None,
    /// A Parse of a named statement (`len` bytes, replaced as a whole).
    Parse {
        len: usize,
        name: Box<[u8]>,
        statement: Arc<Statement>,
    },
    /// A Bind of a named statement; its first `names_end` bytes (header, portal and statement
    /// names) are rewritten, the parameters after them are copied.
    Bind {
        names_end: usize,
        portal_len: usize,
        statement: Arc<Statement>,
    },
    /// A Describe of a named statement.
    Describe {
        len: usize,
        statement: Arc<Statement>,
    },
    /// A Close of a named statement: pgwarm answers it; the server statement stays, since other
    /// clients may share it.
    Close {
        len: usize,
        name: Box<[u8]>,
        statement: Arc<Statement>,
    },
    /// A Parse of a name the client already has: PostgreSQL refuses it, so pgwarm does too.
    Duplicate { len: usize, name: Box<[u8]> },
    /// A simple query or a Parse whose statement would leave session state, answered with an
    /// error (`PGWARM_PINNING=refuse`) and never run.
    Refuse { len: usize, state: SessionState },
    /// A simple query `DEALLOCATE name` of a protocol-level statement.
    Deallocate {
        len: usize,
        name: Box<[u8]>,
        statement: Arc<Statement>,
    },
    /// A Parse of the client's unnamed statement: kept, in case a new server connection, or
    /// pgwarm's own use of the unnamed statement or of a simple query (which destroys it), takes
    /// it away before the client's Bind.
    UnnamedParse(Arc<[u8]>),
    /// A Bind or Describe of the client's unnamed statement: parsed again first where it is not.
    UnnamedUse,
}

impl Relay {
    /// Whether statement names are rewritten.
    pub(super) fn tracking(&self) -> bool {
        self.rules.max_prepared > 0
    }

    /// Walks new client bytes: validates each header and queues what the server will owe.
    pub(super) fn walk_client(&mut self) -> Result<(), FrameError> {
        let tracking = self.tracking();
        let watch = self.rules.watch_session_state;
        // Connections change hands between transactions: the unnamed statement is watched.
        let transaction = self.rules.mode == PoolMode::Transaction;
        loop {
            // The number the next message gets; counted once it is taken, below.
            let seq = self.client.seq() + 1;
            let inbox = self.client.inbox();
            if !inbox.pass_body() {
                return Ok(());
            }
            let Some(next) = inbox.next() else {
                return Ok(());
            };
            let (tag, frame_len) = (next.tag, next.frame_len);
            framing::check_frontend(tag, frame_len, self.rules.max_message_size)?;
            // How much of the message must be here before it can be judged.
            let need = match tag {
                b'P' | b'D' | b'C' => frame_len,
                b'B' if transaction => {
                    let arrived = inbox.body(frame_len.min(next.arrived) - HEADER_LEN);
                    match arrived.and_then(frontend::bind_names) {
                        Some((_, _, names_len)) => HEADER_LEN + names_len,
                        // Malformed: it goes as it is and the server says what is wrong.
                        None if next.whole() => frame_len,
                        None => return Ok(()),
                    }
                }
                b'Q' if (tracking || watch) && frame_len <= INSPECT_QUERY_LIMIT => frame_len,
                _ => HEADER_LEN,
            };
            let Some(body) = inbox.body(need - HEADER_LEN) else {
                return Ok(());
            };
            let mut refused = None;
            if watch && matches!(tag, b'Q' | b'P' | b'F') {
                // A query too long to look at, or a fast-path call, may make session state.
                let looked_at = tag != b'F' && need == frame_len;
                let hint = !looked_at || may_make_session_state(body);
                self.signals.session_state_hint |= hint;
                // Only text the word scan flagged is read statement by statement: to refuse
                // (`PGWARM_PINNING=refuse`), or to note a LOAD, which no catalog shows.
                match statement_text(tag, body).filter(|_| hint && looked_at) {
                    Some(sql) if self.rules.refuse_session_state => {
                        refused = session_state(sql).map(|state| Edit::Refuse { len: need, state });
                    }
                    Some(sql) => {
                        self.signals.loaded |=
                            session_states(sql).any(|state| state == SessionState::Load);
                    }
                    None => {}
                }
            }
            if watch && tag == b'B' {
                // A statement whose text names session state may make some at each execution;
                // without tracking, any named statement might.
                self.signals.session_state_hint |= match frontend::bind_names(body) {
                    Some((_, name, _)) if !name.is_empty() && !tracking => true,
                    Some((_, name, _)) => self
                        .statements
                        .get(name)
                        .is_some_and(|s| s.may_make_session_state()),
                    None => false,
                };
            }
            let (kind, edit) = match tag {
                b'X' => {
                    // Terminate ends the session here; it is never forwarded, the pool keeps
                    // the server connection.
                    self.client.terminate();
                    return Ok(());
                }
                b'p' => return Err(FrameError::UnexpectedPassword),
                b'Q' => match refused {
                    Some(refusal) => (Some(Kind::Query), refusal),
                    None if tracking => (Some(Kind::Query), plan_query(&mut self.statements, body)),
                    None => (Some(Kind::Query), Edit::None),
                },
                b'F' => (Some(Kind::FunctionCall), Edit::None),
                b'S' => {
                    let answered = self.expected.client_synced();
                    (answered.then_some(Kind::Sync), Edit::None)
                }
                b'P' | b'B' | b'D' | b'E' | b'C' => {
                    self.expected.client_unsynced();
                    let edit = match (refused, tracking) {
                        (Some(refusal), _) => refusal,
                        (None, true) => {
                            plan_extended(&mut self.statements, &self.resolution, tag, body, seq)
                        }
                        // Statement names pass through unchanged, but in transaction mode the
                        // unnamed statement must still be the client's own.
                        (None, false) if transaction => {
                            plan_unnamed(tag, body).unwrap_or(Edit::None)
                        }
                        (None, false) => Edit::None,
                    };
                    let kind = match tag {
                        b'P' => Kind::Parse,
                        b'B' => Kind::Bind,
                        b'D' => Kind::Describe,
                        b'E' => Kind::Execute,
                        _ => Kind::Close,
                    };
                    (Some(kind), edit)
                }
                b'H' => {
                    self.expected.client_unsynced();
                    (None, Edit::None)
                }
                b'c' | b'f' => {
                    self.expected.copy_ended();
                    (None, Edit::None)
                }
                _ => (None, Edit::None),
            };
            self.client.count_message();
            if let Some(kind) = kind {
                let at = self.client.walk_offset();
                self.client.queue(WalkedMessage {
                    at,
                    kind,
                    seq,
                    edit,
                });
            }
            self.client.inbox().take(&next, need);
        }
    }
}

/// Parse, Bind and Describe of the client's unnamed statement, kept and parsed again where it
/// is missing (`body`: all of it, except for Bind, whose names only); None for other messages.
fn plan_unnamed(tag: u8, body: &[u8]) -> Option<Edit> {
    let unnamed = match tag {
        // Kept, to parse it again where it is not: on another server connection, or after
        // pgwarm's own simple query (its session-state question) destroyed it.
        b'P' => {
            return frontend::parse_body(body)
                .filter(|(name, _)| name.is_empty())
                .map(|(_, content)| Edit::UnnamedParse(content.into()))
        }
        b'B' => frontend::bind_names(body).is_some_and(|(_, name, _)| name.is_empty()),
        b'D' => frontend::target(body) == Some((b'S', &[])),
        _ => false,
    };
    unnamed.then_some(Edit::UnnamedUse)
}

/// Parse, Bind, Describe and Close of named statements, and the unnamed one's (`plan_unnamed`)
/// (`body`: all of it, except for Bind, whose names only).
fn plan_extended(
    statements: &mut ClientStatements,
    resolution: &Resolution,
    tag: u8,
    body: &[u8],
    seq: u64,
) -> Edit {
    if let Some(edit) = plan_unnamed(tag, body) {
        return edit;
    }
    let need = HEADER_LEN + body.len();
    match tag {
        b'P' => match frontend::parse_body(body) {
            Some((name, _)) if statements.contains(name) => Edit::Duplicate {
                len: need,
                name: name.into(),
            },
            Some((name, content)) => {
                let hint = may_make_session_state(content);
                let statement = Arc::new(Statement::new(resolution, content, hint));
                statements.insert(name, Arc::clone(&statement), seq);
                Edit::Parse {
                    len: need,
                    name: name.into(),
                    statement,
                }
            }
            None => Edit::None,
        },
        b'B' => match frontend::bind_names(body) {
            Some((portal, name, _)) if !name.is_empty() => match statements.get(name) {
                Some(statement) => Edit::Bind {
                    names_end: need,
                    portal_len: portal.len(),
                    statement: Arc::clone(statement),
                },
                // Unknown to pgwarm: the server's "does not exist" is the right answer.
                None => Edit::None,
            },
            _ => Edit::None,
        },
        b'D' => match frontend::target(body) {
            Some((b'S', name)) if !name.is_empty() => match statements.get(name) {
                Some(statement) => Edit::Describe {
                    len: need,
                    statement: Arc::clone(statement),
                },
                None => Edit::None,
            },
            _ => Edit::None,
        },
        b'C' => match frontend::target(body) {
            Some((b'S', name)) if !name.is_empty() => match statements.remove(name) {
                Some(statement) => Edit::Close {
                    len: need,
                    name: name.into(),
                    statement,
                },
                // Closing what does not exist is not an error; the server says CloseComplete.
                None => Edit::None,
            },
            _ => Edit::None,
        },
        _ => Edit::None,
    }
}

/// A simple query that is exactly `DEALLOCATE name` of one of the client's statements.
fn plan_query(statements: &mut ClientStatements, body: &[u8]) -> Edit {
    let need = HEADER_LEN + body.len();
    let Some((sql, _)) = frontend::cstr(body) else {
        return Edit::None;
    };
    let Some(name) = deallocate_target(sql) else {
        return Edit::None;
    };
    match statements.remove(&name) {
        Some(statement) => Edit::Deallocate {
            len: need,
            name: name.into(),
            statement,
        },
        // An SQL-level PREPARE on the linked connection, or nothing: the server decides.
        None => Edit::None,
    }
}

/// The SQL text of a simple query or a Parse.
fn statement_text(tag: u8, body: &[u8]) -> Option<&[u8]> {
    let text = match tag {
        b'Q' => body,
        b'P' => frontend::parse_body(body)?.1,
        _ => return None,
    };
    frontend::cstr(text).map(|(sql, _)| sql)
}

/// The first letters of [`SESSION_STATE_WORDS`], one bit per letter from `a`.
const FIRST_LETTERS: u32 = {
    let mut bits = 0;
    let mut words: &[&[u8]] = &SESSION_STATE_WORDS;
    while let [word, rest @ ..] = words {
        if let [first, ..] = word {
            bits |= 1 << (*first - b'a');
        }
        words = rest;
    }
    bits
};

/// Whether a statement's text names something that may outlive its transaction. The words are
/// tried only where a run of letters starts (`pg_advisory_lock`'s `advisory` after its
/// underscore, not `temp` inside `attempt`), and only when that letter starts one of them: every
/// query a client sends passes here, so runs are skipped in tight loops.
fn may_make_session_state(text: &[u8]) -> bool {
    let mut rest = text;
    loop {
        let Some(start) = rest.iter().position(u8::is_ascii_alphabetic) else {
            return false;
        };
        let word = rest.get(start..).unwrap_or_default();
        let Some(first) = word.first().map(u8::to_ascii_lowercase) else {
            return false;
        };
        if FIRST_LETTERS & (1 << (first - b'a')) != 0
            && SESSION_STATE_WORDS.iter().any(|candidate| {
                candidate.first() == Some(&first)
                    && word
                        .get(..candidate.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(candidate))
            })
        {
            return true;
        }
        let run = word
            .iter()
            .position(|b| !b.is_ascii_alphabetic())
            .unwrap_or(word.len());
        rest = word.get(run..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::may_make_session_state;

    #[test]
    fn words_of_session_state_in_any_case() {
        for sql in [
            "SELECT pg_advisory_lock(42)",
            "create TEMPORARY table t (n int)",
            "LISTEN events",
            "declare c cursor WITH HOLD for select 1",
            "PREPARE q AS SELECT 1",
            "load 'auto_explain'",
        ] {
            assert!(may_make_session_state(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "CLOSE ALL",
            "UNLISTEN *",
            "select pg_advisory_unlock_all()",
            "discard all",
            "DEALLOCATE q",
            "drop table scratch",
        ] {
            assert!(may_make_session_state(sql.as_bytes()), "{sql} may undo it");
        }
        let plain: &[u8] = b"SELECT 1; INSERT INTO t VALUES (2)";
        assert!(!may_make_session_state(plain));
        assert!(
            !may_make_session_state(b"update attempts set n = 1 where unheld"),
            "inside a run of letters"
        );
        assert!(
            may_make_session_state(b"select 1;temp"),
            "after punctuation"
        );
        assert!(
            !may_make_session_state(b"SELECT lis"),
            "a word cut by the end"
        );
        assert!(
            may_make_session_state(b"x hold"),
            "a word that ends the text"
        );
    }
}
