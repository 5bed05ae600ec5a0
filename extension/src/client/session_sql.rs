//! Which statements of a query text make state that outlives their transaction, read as
//! PostgreSQL reads them: words outside string literals, quoted identifiers and comments,
//! statement by statement. `PGWARM_PINNING=refuse` answers such a statement with an error
//! instead of running it, so the judgement must be exact where the cheap scan that only
//! decides whether to ask the server afterwards may err on the side of asking.

#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// A kind of state a statement leaves in its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionState {
    AdvisoryLock,
    Listen,
    TemporaryObject,
    CursorWithHold,
    SqlPrepare,
    Load,
}

impl SessionState {
    /// How the statement is named in errors and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionState::AdvisoryLock => "a session advisory lock",
            SessionState::Listen => "LISTEN",
            SessionState::TemporaryObject => "a temporary table, sequence or view",
            SessionState::CursorWithHold => "a cursor WITH HOLD",
            SessionState::SqlPrepare => "SQL PREPARE",
            SessionState::Load => "LOAD",
        }
    }
}

/// The session-level advisory lock functions (the `_xact_` ones end with their transaction).
const ADVISORY_LOCKS: [&[u8]; 4] = [
    b"pg_advisory_lock",
    b"pg_advisory_lock_shared",
    b"pg_try_advisory_lock",
    b"pg_try_advisory_lock_shared",
];

/// The state the statements of `sql` leave in the session, statement by statement.
pub(crate) fn session_states(sql: &[u8]) -> impl Iterator<Item = SessionState> + '_ {
    let mut tokens = Tokens { rest: sql };
    let mut statement: Vec<Token<'_>> = Vec::new();
    let mut ended = false;
    std::iter::from_fn(move || loop {
        if ended {
            return None;
        }
        match tokens.next() {
            Some(Token::Punct(b';')) => {}
            Some(token) => {
                statement.push(token);
                continue;
            }
            None => ended = true,
        }
        let state = statement_state(&statement);
        statement.clear();
        if state.is_some() {
            return state;
        }
    })
}

/// The first statement of `sql` that leaves state in the session, and which kind.
pub(crate) fn session_state(sql: &[u8]) -> Option<SessionState> {
    session_states(sql).next()
}

/// What one statement leaves, from its tokens.
fn statement_state(tokens: &[Token<'_>]) -> Option<SessionState> {
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(*w),
        _ => None,
    };
    let is = |i: usize, expected: &[u8]| word(i).is_some_and(|w| w.eq_ignore_ascii_case(expected));
    let locks = tokens.windows(2).any(|pair| match pair {
        [Token::Word(w), Token::Punct(b'(')] => ADVISORY_LOCKS
            .iter()
            .any(|lock| w.eq_ignore_ascii_case(lock)),
        _ => false,
    });
    if locks {
        return Some(SessionState::AdvisoryLock);
    }
    let has_sequence = |words: &[&[u8]]| {
        (0..tokens.len()).any(|i| words.iter().enumerate().all(|(k, w)| is(i + k, w)))
    };
    let temporary = |i: usize| is(i, b"temp") || is(i, b"temporary");
    let state = if is(0, b"listen") {
        SessionState::Listen
    } else if is(0, b"load") {
        SessionState::Load
    } else if is(0, b"prepare") && !is(1, b"transaction") {
        SessionState::SqlPrepare
    } else if is(0, b"declare") && has_sequence(&[b"with", b"hold"]) {
        SessionState::CursorWithHold
    } else if is(0, b"create") {
        let mut i = 1;
        if is(i, b"or") && is(i + 1, b"replace") {
            i += 2;
        }
        if is(i, b"global") || is(i, b"local") {
            i += 1;
        }
        // `ON COMMIT DROP` ends the table with its transaction.
        match temporary(i) && !has_sequence(&[b"on", b"commit", b"drop"]) {
            true => SessionState::TemporaryObject,
            false => return None,
        }
    } else if is(0, b"select") && (0..tokens.len()).any(|i| is(i, b"into") && temporary(i + 1)) {
        SessionState::TemporaryObject
    } else {
        return None;
    };
    Some(state)
}

/// One token of SQL text: a word (keyword or identifier, unquoted) or one punctuation byte.
/// Literals, quoted identifiers and comments give none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a [u8]),
    Punct(u8),
}

struct Tokens<'a> {
    rest: &'a [u8],
}

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let s = self.rest;
            let (&first, after) = s.split_first()?;
            match (first, after.first()) {
                (b, _) if b.is_ascii_whitespace() => self.rest = after,
                (b'-', Some(b'-')) => {
                    let end = s.iter().position(|&b| b == b'\n').unwrap_or(s.len());
                    self.rest = s.get(end..).unwrap_or_default();
                }
                (b'/', Some(b'*')) => self.rest = skip_block_comment(after.get(1..)?),
                (b'\'', _) => self.rest = skip_quoted(after, b'\''),
                (b'"', _) => self.rest = skip_quoted(after, b'"'),
                (b'e' | b'E', Some(b'\'')) => self.rest = skip_escaped_string(after.get(1..)?),
                (b'$', _) => match dollar_tag(s) {
                    Some(tag) => self.rest = skip_dollar_quoted(s.get(tag.len()..)?, tag),
                    None => {
                        // A parameter ($1): a word of its own, like an identifier.
                        let n = 1 + after.iter().take_while(|b| b.is_ascii_digit()).count();
                        return Some(self.word(n));
                    }
                },
                (b, _) if is_word_start(b) => {
                    let n = s.iter().take_while(|&&b| is_word_byte(b)).count();
                    return Some(self.word(n));
                }
                (b, _) => {
                    self.rest = after;
                    return Some(Token::Punct(b));
                }
            }
        }
    }

    /// The first `n` bytes (at least one, all there) as a word.
    fn word(&mut self, n: usize) -> Token<'a> {
        let (word, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        Token::Word(word)
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn is_word_byte(b: u8) -> bool {
    is_word_start(b) || b == b'$'
}

/// After a `/* ... */` comment whose opening is just before `s`; comments nest in PostgreSQL.
/// The rest of the text when it is not closed.
fn skip_block_comment(mut s: &[u8]) -> &[u8] {
    let mut depth = 1usize;
    loop {
        match s {
            [] => return s,
            [b'/', b'*', rest @ ..] => {
                depth += 1;
                s = rest;
            }
            [b'*', b'/', rest @ ..] => {
                depth -= 1;
                s = rest;
                if depth == 0 {
                    return s;
                }
            }
            [_, rest @ ..] => s = rest,
        }
    }
}

/// After a literal or identifier quoted with `quote` (doubled inside), from after its opening.
fn skip_quoted(mut s: &[u8], quote: u8) -> &[u8] {
    loop {
        let Some(end) = s.iter().position(|&b| b == quote) else {
            return &[];
        };
        s = s.get(end + 1..).unwrap_or_default();
        match s.split_first() {
            Some((&b, rest)) if b == quote => s = rest,
            _ => return s,
        }
    }
}

/// After an `E'...'` string, where a backslash escapes the next byte.
fn skip_escaped_string(mut s: &[u8]) -> &[u8] {
    loop {
        match s {
            [] | [b'\\'] => return &[],
            [b'\\', _, rest @ ..] | [b'\'', b'\'', rest @ ..] => s = rest,
            [b'\'', rest @ ..] => return rest,
            [_, rest @ ..] => s = rest,
        }
    }
}

/// The opening `$tag$` of a dollar-quoted string at the start of `s`.
fn dollar_tag(s: &[u8]) -> Option<&[u8]> {
    let body = s.get(1..)?;
    if body.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let n = body
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
        .count();
    match body.get(n) {
        Some(b'$') => s.get(..n + 2),
        _ => None,
    }
}

/// After the closing `tag` of a dollar-quoted string whose body starts `s`.
fn skip_dollar_quoted<'a>(s: &'a [u8], tag: &[u8]) -> &'a [u8] {
    s.windows(tag.len())
        .position(|w| w == tag)
        .and_then(|at| s.get(at + tag.len()..))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> Option<SessionState> {
        session_state(sql.as_bytes())
    }

    #[test]
    fn statements_that_leave_state() {
        use SessionState::*;
        let cases = [
            ("SELECT pg_advisory_lock(42)", AdvisoryLock),
            (
                "select pg_catalog.PG_TRY_ADVISORY_LOCK_SHARED ( 1, 2 )",
                AdvisoryLock,
            ),
            ("LISTEN jobs", Listen),
            ("  listen \"Jobs\";", Listen),
            ("CREATE TEMP TABLE t (n int)", TemporaryObject),
            ("create global temporary table t (n int)", TemporaryObject),
            ("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", TemporaryObject),
            ("CREATE TEMPORARY SEQUENCE s", TemporaryObject),
            ("SELECT 1 INTO TEMP t", TemporaryObject),
            ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", CursorWithHold),
            ("PREPARE q AS SELECT 1", SqlPrepare),
            ("LOAD 'auto_explain'", Load),
            ("SELECT 1; LISTEN jobs", Listen),
            ("SELECT 1; LISTEN jobs; LOAD 'x'", Listen),
            ("/* a */ -- b\n LISTEN jobs", Listen),
        ];
        for (sql, expected) in cases {
            assert_eq!(kind(sql), Some(expected), "{sql}");
        }
    }

    #[test]
    fn every_statement_is_read() {
        let states: Vec<_> = session_states(b"LISTEN a; SELECT 1; LOAD 'x';").collect();
        assert_eq!(states, [SessionState::Listen, SessionState::Load]);
    }

    #[test]
    fn statements_whose_state_ends_with_them() {
        for sql in [
            "SELECT pg_advisory_xact_lock(42)",
            "SELECT pg_advisory_unlock(42)",
            "UNLISTEN *",
            "CREATE TEMP TABLE t (n int) ON COMMIT DROP",
            "CREATE TABLE temp (n int)",
            "SELECT * FROM temp_readings WHERE hold = 1",
            "DECLARE c CURSOR FOR SELECT 1",
            "PREPARE TRANSACTION 'x'",
            "SELECT 'LISTEN x; CREATE TEMP TABLE t()'",
            "SELECT E'it\\'s; LISTEN x'",
            "SELECT $$; LISTEN x$$, $f$ pg_advisory_lock( $f$",
            "SELECT \"pg_advisory_lock\" FROM t",
            "/* LISTEN x /* nested */ still */ SELECT 1",
            "-- LISTEN x\nSELECT 1",
            "SELECT $1::int; SELECT pg_advisory_lock",
            "NOTIFY jobs",
            "",
            "'unclosed; LISTEN x",
        ] {
            assert_eq!(kind(sql), None, "{sql}");
        }
    }
}
