//! A client's named prepared statements, as the client sees them.
//!
//! In transaction mode the client's next transaction may run on another server connection, one
//! opened after a failover, or one whose cache evicted the statement. So pgwarm keeps each
//! statement itself: the client's name maps to a [`Statement`], whose server-side name is derived
//! from what decides its meaning: the query text, the declared parameter types, and the settings
//! that resolve names in it ([`Resolution`]). Two clients that prepare the same SQL in the same
//! schema therefore share one statement on each server connection, and a statement can be created
//! again anywhere from the Parse message kept here.
//!
//! What sharing saves is the Parse when a client's statement must be created on a connection it
//! moves to. A client's own Parse is always parsed by the server, replacing the shared statement
//! on that connection, as on a connection of its own: PostgreSQL fixes some things at Parse and
//! never decides them again (the types of parameters the client left to it; the result's shape,
//! which a later change makes fail with "cached plan must not change result type"), and a Parse
//! must mean what it means at that moment.

use crate::protocol::framing::HEADER_LEN;
use crate::protocol::frontend;
use crate::server::{Digest, SessionSettings};
use bytes::BytesMut;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Server-side names are `pgwarm_` and 32 hex digits: unique per content, and short enough for
/// PostgreSQL's 63-byte identifiers.
pub(crate) const SERVER_NAME_LEN: usize = 7 + 32;

/// The session settings that decide what the names in a query refer to. PostgreSQL re-analyses
/// a statement when they change, but parameter types it inferred stay, so statements prepared
/// under different ones are different statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resolution(Box<[u8]>);

impl Resolution {
    const SETTINGS: [&'static str; 3] = ["search_path", "role", "session_authorization"];

    pub(crate) fn of(settings: &SessionSettings) -> Resolution {
        let mut key = Vec::new();
        for name in Self::SETTINGS {
            if let Some(value) = settings.get(name) {
                key.extend_from_slice(name.as_bytes());
                key.push(b'=');
                key.extend_from_slice(value.as_bytes());
                key.push(0);
            }
        }
        Resolution(key.into_boxed_slice())
    }
}

/// One statement's identity on servers and how to create it there.
#[derive(Debug)]
pub(crate) struct Statement {
    digest: Digest,
    name: [u8; SERVER_NAME_LEN],
    /// The Parse message that creates it on a server under `name`.
    parse: Box<[u8]>,
    /// This client's Parse has not reached a server yet (pgwarm answered it): its first use
    /// parses it anew rather than take the shared statement.
    fresh: AtomicBool,
    /// Its text names session state (`relay::from_client`'s words): each execution may make
    /// some, so its Bind counts as such a statement, as its Parse did.
    session_state: bool,
}

impl Statement {
    /// From the part of a client's Parse body after the statement name (query, parameter types),
    /// prepared under `resolution`.
    pub(crate) fn new(resolution: &Resolution, content: &[u8], session_state: bool) -> Statement {
        let mut hasher = Sha256::new();
        hasher.update((resolution.0.len() as u32).to_be_bytes());
        hasher.update(&resolution.0);
        hasher.update(content);
        let hash = hasher.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        let digest = u128::from_be_bytes(first);
        let name = server_name(digest);
        let mut parse = BytesMut::with_capacity(content.len() + SERVER_NAME_LEN + 6);
        frontend::parse(&mut parse, &name, content);
        Statement {
            digest,
            name,
            parse: parse.to_vec().into_boxed_slice(),
            fresh: AtomicBool::new(true),
            session_state,
        }
    }

    /// Whether its text names session state.
    pub(crate) fn may_make_session_state(&self) -> bool {
        self.session_state
    }

    pub(crate) fn digest(&self) -> Digest {
        self.digest
    }

    pub(crate) fn name(&self) -> &[u8] {
        &self.name
    }

    pub(crate) fn parse_message(&self) -> &[u8] {
        &self.parse
    }

    /// The Parse body after the statement name: query and parameter types.
    pub(crate) fn content(&self) -> &[u8] {
        self.parse
            .get(HEADER_LEN + SERVER_NAME_LEN + 1..)
            .unwrap_or_default()
    }

    /// Whether the next use must parse it anew; true once, until [`Self::sent`].
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::Relaxed)
    }

    /// A Parse of this client's statement went to the server.
    pub(crate) fn sent(&self) {
        self.fresh.store(false, Ordering::Relaxed);
    }
}

/// The server-side name of the statement with `digest`.
pub(crate) fn server_name(digest: Digest) -> [u8; SERVER_NAME_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut name = [0u8; SERVER_NAME_LEN];
    name[..7].copy_from_slice(b"pgwarm_");
    for (i, byte) in digest.to_be_bytes().iter().enumerate() {
        name[7 + 2 * i] = HEX[usize::from(byte >> 4)];
        name[8 + 2 * i] = HEX[usize::from(byte & 0xf)];
    }
    name
}

struct Entry {
    statement: Arc<Statement>,
    /// When the client's Parse was read, in the relay's message count; `DEALLOCATE ALL` forgets
    /// what came before it but not a Parse the client pipelined after it.
    seq: u64,
}

/// The client's name → statement map.
#[derive(Default)]
pub(crate) struct ClientStatements {
    map: HashMap<Box<[u8]>, Entry>,
}

impl ClientStatements {
    pub(crate) fn get(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        self.map.get(name).map(|e| &e.statement)
    }

    pub(crate) fn contains(&self, name: &[u8]) -> bool {
        self.map.contains_key(name)
    }

    pub(crate) fn insert(&mut self, name: &[u8], statement: Arc<Statement>, seq: u64) {
        self.map.insert(name.into(), Entry { statement, seq });
    }

    pub(crate) fn remove(&mut self, name: &[u8]) -> Option<Arc<Statement>> {
        self.map.remove(name).map(|e| e.statement)
    }

    /// Undoes [`Self::insert`] after the Parse failed, unless the name was reused since.
    pub(crate) fn forget(&mut self, name: &[u8], statement: &Arc<Statement>) {
        if self
            .map
            .get(name)
            .is_some_and(|e| Arc::ptr_eq(&e.statement, statement))
        {
            self.map.remove(name);
        }
    }

    /// Undoes [`Self::remove`] after the Close or DEALLOCATE was skipped by the server.
    pub(crate) fn restore(&mut self, name: &[u8], statement: &Arc<Statement>, seq: u64) {
        self.map.entry(name.into()).or_insert(Entry {
            statement: Arc::clone(statement),
            seq,
        });
    }

    /// `DEALLOCATE ALL` or `DISCARD ALL` (read as message `seq`) ran.
    pub(crate) fn forget_before(&mut self, seq: u64) {
        self.map.retain(|_, e| e.seq > seq);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Statements some server connection parsed successfully, shared by all sessions.
///
/// A client's Parse + Sync of such a statement outside a transaction is answered by pgwarm
/// without a server connection: the statement is created on whichever connection first needs it.
/// That saves a round trip, and it is what keeps `pgbench -M prepared` (whose synchronous
/// `PQprepare` blocks its event loop) from deadlocking with its own clients on a small pool.
#[derive(Default)]
pub(crate) struct KnownStatements(Mutex<HashSet<Digest>>);

impl KnownStatements {
    /// Bounds memory; past it the set starts over (it is only a shortcut).
    const LIMIT: usize = 10_000;

    pub(crate) fn insert(&self, digest: Digest) {
        if let Ok(mut set) = self.0.lock() {
            if set.len() >= Self::LIMIT {
                set.clear();
            }
            set.insert(digest);
        }
    }

    pub(crate) fn contains(&self, digest: Digest) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(&digest))
    }

    /// A Parse of it failed: it no longer parses, so pgwarm stops answering for it.
    pub(crate) fn remove(&self, digest: Digest) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&digest);
        }
    }
}

/// The statement a simple query `DEALLOCATE [PREPARE] name` releases, with SQL's identifier
/// rules (unquoted names fold to lower case). `DEALLOCATE ALL` and anything longer than that
/// one statement give None: those reach the server as they are.
pub(crate) fn deallocate_target(sql: &[u8]) -> Option<Vec<u8>> {
    let mut rest = skip_space(sql);
    rest = keyword(rest, b"deallocate")?;
    if let Some(after) = keyword(rest, b"prepare") {
        rest = after;
    }
    let (name, after) = identifier(rest)?;
    let after = skip_space(after);
    let after = after.strip_prefix(b";").map(skip_space).unwrap_or(after);
    if !after.is_empty() || (name.eq_ignore_ascii_case(b"all") && !rest.starts_with(b"\"")) {
        return None;
    }
    Some(name)
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

/// `word` (case-insensitive) followed by a space, at the start of `s`; what follows the space.
fn keyword<'a>(s: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..word.len())?;
    let next = s.get(word.len())?;
    (head.eq_ignore_ascii_case(word) && next.is_ascii_whitespace())
        .then(|| skip_space(&s[word.len()..]))
}

/// A quoted ("" escapes a quote) or unquoted identifier.
fn identifier(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if let Some(mut rest) = s.strip_prefix(b"\"") {
        let mut name = Vec::new();
        loop {
            let end = rest.iter().position(|b| *b == b'"')?;
            name.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            match rest.strip_prefix(b"\"") {
                Some(after) => {
                    name.push(b'"');
                    rest = after;
                }
                None => return (!name.is_empty()).then_some((name, rest)),
            }
        }
    }
    let n = s
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'$' || **b >= 0x80)
        .count();
    if n == 0 || s[0].is_ascii_digit() || s[0] == b'$' {
        return None;
    }
    Some((s[..n].to_ascii_lowercase(), &s[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_content_gets_the_same_server_name() {
        let a = Statement::new(
            &Resolution::default(),
            b"select $1\0\0\x01\0\0\0\x17",
            false,
        );
        let b = Statement::new(
            &Resolution::default(),
            b"select $1\0\0\x01\0\0\0\x17",
            false,
        );
        let c = Statement::new(
            &Resolution::default(),
            b"select $1\0\0\x01\0\0\0\x14",
            false,
        );
        assert_eq!(a.name(), b.name());
        assert_ne!(
            a.name(),
            c.name(),
            "parameter types are part of the identity"
        );
        assert!(a.name().starts_with(b"pgwarm_"));
        assert!(a.name()[7..].iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn name_resolution_settings_are_part_of_the_identity() {
        let settings = |path: &str| {
            SessionSettings::new([
                ("search_path".to_owned(), path.to_owned()),
                ("application_name".to_owned(), "x".to_owned()),
            ])
        };
        let query = b"insert into t(c) values ($1)\0\0\0";
        let a = Statement::new(&Resolution::of(&settings("sa")), query, false);
        let b = Statement::new(&Resolution::of(&settings("sb")), query, false);
        let a2 = Statement::new(&Resolution::of(&settings("sa")), query, false);
        assert_ne!(a.name(), b.name());
        assert_eq!(a.name(), a2.name());
        let other_app = SessionSettings::new([("search_path".to_owned(), "sa".to_owned())]);
        assert_eq!(
            Resolution::of(&other_app),
            Resolution::of(&settings("sa")),
            "settings that resolve no names do not split statements"
        );
    }

    #[test]
    fn a_statement_is_fresh_until_its_parse_is_sent() {
        let s = Statement::new(&Resolution::default(), b"select $1\0\0\0", false);
        assert!(s.is_fresh());
        s.sent();
        assert!(!s.is_fresh());
    }

    #[test]
    fn the_parse_message_creates_it_under_its_server_name() {
        let s = Statement::new(&Resolution::default(), b"select 1\0\0\0", false);
        let mut expected = BytesMut::new();
        frontend::parse(&mut expected, s.name(), b"select 1\0\0\0");
        assert_eq!(s.parse_message(), &expected[..]);
        assert_eq!(s.content(), b"select 1\0\0\0");
    }

    #[test]
    fn forget_and_restore_are_exact() {
        let mut c = ClientStatements::default();
        let s1 = Arc::new(Statement::new(
            &Resolution::default(),
            b"select 1\0\0\0",
            false,
        ));
        let s2 = Arc::new(Statement::new(
            &Resolution::default(),
            b"select 2\0\0\0",
            false,
        ));
        c.insert(b"a", Arc::clone(&s1), 1);
        c.forget(b"a", &s2);
        assert!(
            c.contains(b"a"),
            "another statement's failure does not remove it"
        );
        c.forget(b"a", &s1);
        assert!(!c.contains(b"a"));
        c.restore(b"a", &s1, 1);
        assert!(c.contains(b"a"));
        c.insert(b"b", s2, 5);
        c.forget_before(3);
        assert!(!c.contains(b"a") && c.contains(b"b"));
    }

    #[test]
    fn deallocate_names_follow_sql_identifier_rules() {
        assert_eq!(deallocate_target(b"DEALLOCATE s1"), Some(b"s1".to_vec()));
        assert_eq!(
            deallocate_target(b"  deallocate prepare S1 ;  "),
            Some(b"s1".to_vec())
        );
        assert_eq!(
            deallocate_target(b"DEALLOCATE \"My \"\"S\"\"\""),
            Some(b"My \"S\"".to_vec())
        );
        assert_eq!(
            deallocate_target(b"DEALLOCATE \"all\""),
            Some(b"all".to_vec())
        );
        assert_eq!(deallocate_target(b"DEALLOCATE ALL"), None);
        assert_eq!(deallocate_target(b"DEALLOCATE PREPARE all;"), None);
        assert_eq!(deallocate_target(b"DEALLOCATE s1; select 1"), None);
        assert_eq!(deallocate_target(b"DEALLOCATEs1"), None);
        assert_eq!(deallocate_target(b"select 1"), None);
        assert_eq!(deallocate_target(b"DEALLOCATE 1x"), None);
    }
}
