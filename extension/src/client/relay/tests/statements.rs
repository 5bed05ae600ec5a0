//! The relay's handling of named prepared statements: renaming, creation on connections that
//! lack them, sharing, repairs, eviction, DEALLOCATE, and the unnamed mode for a pooler upstream.

use super::*;
use crate::protocol::error::ServerReport;

impl Driver {
    /// The client prepares `name` as `sql` on the linked connection, which answers; what was
    /// sent and answered is cleared.
    fn prepared(&mut self, name: &str, sql: &str) {
        self.client(&[parse(name, sql), sync()].concat()).unwrap();
        self.server(&answers(b"1Z"));
        self.take_sent();
        self.take_for_client();
    }
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::parse(name, sql, [], &mut b).unwrap();
    b.to_vec()
}

fn bind_execute_sync(name: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::bind(
        "",
        name,
        [],
        [] as [i32; 0],
        |_, _| Ok(postgres_protocol::IsNull::No),
        [],
        &mut b,
    )
    .map_err(|_| "bind")
    .unwrap();
    frontend::execute("", 0, &mut b).unwrap();
    frontend::sync(&mut b);
    b.to_vec()
}

fn sync() -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::sync(&mut b);
    b.to_vec()
}

fn close_statement(name: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::close(b'S', name, &mut b).unwrap();
    b.to_vec()
}

/// The statement name a Parse, Bind or Describe sent to the server refers to.
fn name_in(tag: u8, body: &[u8]) -> Vec<u8> {
    let body = match tag {
        b'B' => frontend_cstr_after(body),
        b'D' | b'C' => &body[1..],
        _ => body,
    };
    body[..body.iter().position(|b| *b == 0).unwrap()].to_vec()
}

fn frontend_cstr_after(body: &[u8]) -> &[u8] {
    &body[body.iter().position(|b| *b == 0).unwrap() + 1..]
}

fn answers(tags: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in tags {
        match tag {
            b'C' => out.extend(msg(b'C', b"SELECT 1\0")),
            b'Z' => out.extend(z(b'I')),
            other => out.extend(msg(*other, b"")),
        }
    }
    out
}

#[test]
fn a_named_statement_gets_its_server_name_everywhere() {
    let mut r = relay();
    let mut batch = parse("s1", "select 1");
    batch.extend(bind_execute_sync("s1"));
    r.client(&batch).unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "PBES");
    let server_name = name_in(b'P', &sent[0].1);
    assert!(server_name.starts_with(b"pgwarm_"));
    assert_eq!(name_in(b'B', &sent[1].1), server_name);
    assert!(matches!(r.server(&answers(b"12CZ")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "12CZ");
}

#[test]
fn a_statement_missing_on_the_next_connection_is_created_there_invisibly() {
    let mut r = relay();
    let mut batch = parse("s1", "select 1");
    batch.extend(sync());
    r.client(&batch).unwrap();
    assert!(matches!(r.server(&answers(b"1Z")), Some(Event::Release)));
    r.take_sent();
    r.take_for_client();

    r.relink();
    r.client(&bind_execute_sync("s1")).unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "PBES", "a Parse is added before the Bind");
    assert_eq!(name_in(b'P', &sent[0].1), name_in(b'B', &sent[1].1));
    assert!(matches!(r.server(&answers(b"12CZ")), Some(Event::Release)));
    assert_eq!(
        tags(&r.take_for_client()),
        "2CZ",
        "the added Parse's answer is not the client's"
    );
}

#[test]
fn close_is_answered_by_pgwarm_and_keeps_the_shared_server_statement() {
    let mut r = relay();
    r.prepared("s1", "select 1");
    r.client(&[close_statement("s1"), sync()].concat()).unwrap();
    assert_eq!(tags(&r.take_sent()), "S");
    assert!(matches!(r.server(&answers(b"Z")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "3Z");
    assert_eq!(r.set.len(), 1);
    // The client's name is gone: the server's own "does not exist" answers its next use.
    r.client(&bind_execute_sync("s1")).unwrap();
    let sent = r.take_sent();
    assert_eq!(name_in(b'B', &sent[0].1), b"s1");
}

#[test]
fn a_full_cache_evicts_with_a_close_whose_answer_is_swallowed() {
    let mut r = linked(1);
    r.client(&[parse("a", "select 1"), parse("b", "select 2"), sync()].concat())
        .unwrap();
    let sent = r.take_sent();
    assert_eq!(
        tags(&sent),
        "PCPS",
        "statement a is closed to make room for b"
    );
    assert_eq!(name_in(b'C', &sent[1].1), name_in(b'P', &sent[0].1));
    assert!(matches!(r.server(&answers(b"131Z")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "11Z");
    assert_eq!(r.set.len(), 1);
}

#[test]
fn an_error_skips_to_sync_and_undoes_what_the_skipped_messages_did() {
    let mut r = relay();
    let batch = [
        parse("bad", "select nonsense"),
        parse("good", "select 1"),
        sync(),
    ]
    .concat();
    r.client(&batch).unwrap();
    assert_eq!(r.set.len(), 2);
    let error = msg(b'E', b"SERROR\0VERROR\0C42703\0Mno\0\0");
    assert!(r.server(&[error, z(b'I')].concat()).is_some());
    assert_eq!(tags(&r.take_for_client()), "EZ");
    assert_eq!(r.set.len(), 0, "neither statement was created");
    assert!(
        r.statements.is_empty(),
        "the client's names are free again, as in PostgreSQL"
    );
}

#[test]
fn a_statement_that_failed_a_bind_is_parsed_anew_before_its_next_use() {
    let mut r = relay();
    r.client(&[parse("s1", "select 1"), sync()].concat())
        .unwrap();
    r.server(&answers(b"1Z"));
    r.take_sent();
    r.client(&bind_execute_sync("s1")).unwrap();
    assert_eq!(tags(&r.take_sent()), "BES");
    let error = msg(
        b'E',
        b"SERROR\0VERROR\0CXX000\0Mcache lookup failed for type 1\0\0",
    );
    assert!(r.server(&[error, z(b'I')].concat()).is_some());
    r.take_for_client();
    r.client(&bind_execute_sync("s1")).unwrap();
    assert_eq!(
        tags(&r.take_sent()),
        "CPBES",
        "closed and parsed anew, not used as it was"
    );
    assert!(matches!(r.server(&answers(b"312CZ")), Some(Event::Release)));
    assert_eq!(
        tags(&r.take_for_client()),
        "2CZ",
        "pgwarm's own answers are not the client's"
    );
    r.client(&bind_execute_sync("s1")).unwrap();
    assert_eq!(tags(&r.take_sent()), "BES", "healthy again");
}

#[test]
fn a_clients_own_parse_reaches_the_server_even_when_the_connection_has_the_statement() {
    let mut r = relay();
    r.prepared("a", "select $1");
    // Another client name, the same SQL: parsed anew (the server infers $1's type again, and
    // sees the catalog as it is now), as on a connection of this client's own.
    r.client(&[parse("b", "select $1"), sync()].concat())
        .unwrap();
    assert_eq!(tags(&r.take_sent()), "CPS");
    assert!(matches!(r.server(&answers(b"31Z")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "1Z");
    assert_eq!(r.set.len(), 1);
}

#[test]
fn a_statement_deallocated_behind_pgwarms_back_is_created_again_invisibly() {
    let mut r = relay();
    r.prepared("s1", "select 1");
    r.relink_keeping_statements();
    r.client(&bind_execute_sync("s1")).unwrap();
    assert_eq!(tags(&r.take_sent()), "BES");
    let gone = msg(
        b'E',
        b"SERROR\0VERROR\0C26000\0Mprepared statement does not exist\0\0",
    );
    assert!(r.server(&[gone, z(b'I')].concat()).is_none());
    r.client(&[]).unwrap();
    assert_eq!(
        tags(&r.take_sent()),
        "PBES",
        "created, then the batch again"
    );
    assert!(matches!(r.server(&answers(b"12CZ")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "2CZ", "the client saw no error");
    assert!(r.take_repaired());
}

#[test]
fn a_statement_pgwarm_finds_already_there_is_used_as_it_is() {
    let mut r = relay();
    r.client(&[parse("s1", "select 1"), bind_execute_sync("s1")].concat())
        .unwrap();
    assert_eq!(tags(&r.take_sent()), "PBES");
    r.server(&answers(b"12CZ"));
    r.take_for_client();
    r.relink();
    r.client(&bind_execute_sync("s1")).unwrap();
    assert_eq!(tags(&r.take_sent()), "PBES");
    let exists = msg(
        b'E',
        b"SERROR\0VERROR\0C42P05\0Mprepared statement already exists\0\0",
    );
    assert!(r.server(&[exists, z(b'I')].concat()).is_none());
    r.client(&[]).unwrap();
    assert_eq!(tags(&r.take_sent()), "BES", "not parsed again");
    assert!(matches!(r.server(&answers(b"2CZ")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "2CZ");
}

#[test]
fn with_a_pooler_upstream_named_statements_become_unnamed_ones() {
    let mut r = linked_to(200, Upstream::Pooler);
    r.client(&[parse("s1", "select $1::int"), sync()].concat())
        .unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "PS");
    assert!(
        sent[0].1.starts_with(b"\0select $1::int\0"),
        "the unnamed statement"
    );
    assert!(matches!(r.server(&answers(b"1Z")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "1Z");
    r.relink();
    r.client(&bind_execute_sync("s1")).unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "PBES", "parsed again before every use");
    assert!(
        sent[1].1.starts_with(b"\0\0"),
        "Bind of the unnamed statement"
    );
    assert!(matches!(r.server(&answers(b"12CZ")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "2CZ");
    assert_eq!(r.set.len(), 0, "nothing is kept on the server");
}

#[test]
fn with_a_pooler_upstream_the_clients_unnamed_statement_survives_pgwarms() {
    let mut r = linked_to(200, Upstream::Pooler);
    r.prepared("s1", "select 1");
    r.relink();
    // The client's unnamed statement, then its named one (pgwarm parses it as the unnamed
    // statement), then a Bind of its unnamed statement again.
    // Bind: unnamed portal and statement, no formats, no parameters, no result formats.
    let unnamed_bind = msg(b'B', b"\0\0\0\0\0\0\0\0");
    let batch = [
        parse("", "select 2"),
        bind_execute_sync("s1"),
        unnamed_bind,
        sync(),
    ]
    .concat();
    r.client(&batch).unwrap();
    assert_eq!(
        tags(&r.take_sent()),
        "PPBESPBS",
        "the client's unnamed statement parsed again"
    );
    assert!(matches!(
        r.server(&answers(b"112CZ12Z")),
        Some(Event::Release)
    ));
    assert_eq!(tags(&r.take_for_client()), "12CZ2Z");
}

#[test]
fn a_duplicate_name_fails_like_postgresql() {
    let mut r = relay();
    r.prepared("s1", "select 1");
    r.client(&[parse("s1", "select 2"), sync()].concat())
        .unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "DS");
    let not_found = msg(
        b'E',
        b"SERROR\0VERROR\0C26000\0Mprepared statement does not exist\0\0",
    );
    r.server(&[not_found, z(b'I')].concat());
    let out = r.take_for_client();
    assert_eq!(tags(&out), "EZ");
    let report = ServerReport::read(&out[0].1);
    assert_eq!(report.code, "42P05");
    assert!(report.message.contains("\"s1\" already exists"));
}

#[test]
fn statements_that_would_leave_session_state_are_refused_when_asked() {
    let not_found = msg(
        b'E',
        b"SERROR\0VERROR\0C26000\0Mprepared statement does not exist\0\0",
    );
    let refused = |out: &[(u8, Vec<u8>)]| {
        assert_eq!(tags(out), "EZ");
        let report = ServerReport::read(&out[0].1);
        assert_eq!(report.code, "0A000");
        report.message
    };
    // A simple query: a Describe fails in its place and a Sync brings its ReadyForQuery.
    let mut r = relay().refusing_session_state();
    r.client(&msg(b'Q', b"SELECT 1; LISTEN jobs\0")).unwrap();
    assert_eq!(tags(&r.take_sent()), "DS", "never sent");
    let release = r.server(&[not_found.clone(), z(b'I')].concat());
    assert!(matches!(release, Some(Event::Release)));
    assert!(refused(&r.take_for_client()).contains("LISTEN"));
    // A Parse: the server skips the rest of the batch after the Describe's error.
    r.client(
        &[
            parse("", "SELECT pg_advisory_lock(1)"),
            bind_execute_sync(""),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(tags(&r.take_sent()), "DBES");
    r.server(&[not_found, z(b'I')].concat());
    assert!(refused(&r.take_for_client()).contains("advisory lock"));
    // What ends with its transaction runs.
    r.client(&msg(b'Q', b"SELECT pg_advisory_xact_lock(1)\0"))
        .unwrap();
    assert_eq!(tags(&r.take_sent()), "Q");
    // Without the setting, nothing is refused.
    let mut r = relay();
    r.client(&msg(b'Q', b"LISTEN jobs\0")).unwrap();
    assert_eq!(tags(&r.take_sent()), "Q");
}

#[test]
fn deallocate_of_a_protocol_statement_is_honoured() {
    let mut r = relay();
    r.prepared("S1", "select 1");
    r.client(&msg(b'Q', b"DEALLOCATE \"S1\"\0")).unwrap();
    let sent = r.take_sent();
    assert_eq!(
        sent,
        vec![(b'Q', b"\0".to_vec())],
        "an empty query in its place"
    );
    assert!(matches!(
        r.server(&[msg(b'I', b""), z(b'I')].concat()),
        Some(Event::Release)
    ));
    let out = r.take_for_client();
    assert_eq!(tags(&out), "CZ");
    assert_eq!(out[0].1, b"DEALLOCATE\0");
    assert!(r.statements.is_empty());
}

#[test]
fn deallocate_all_forgets_statements_made_before_it_only() {
    let mut r = relay();
    let batch = [
        parse("a", "select 1"),
        sync(),
        msg(b'Q', b"deallocate all\0"),
        parse("b", "select 2"),
        sync(),
    ]
    .concat();
    r.client(&batch).unwrap();
    r.server(&answers(b"1Z"));
    r.server(&[msg(b'C', b"DEALLOCATE ALL\0"), z(b'I')].concat());
    assert!(matches!(r.server(&answers(b"1Z")), Some(Event::Release)));
    assert!(!r.statements.contains(b"a") && r.statements.contains(b"b"));
    assert_eq!(r.set.len(), 1);
}

#[test]
fn a_replayed_batch_is_translated_again_for_the_new_connection() {
    let mut r = relay();
    r.prepared("s1", "select 1");
    r.unlink();
    r.link(BACKEND_PID);
    r.client(&bind_execute_sync("s1")).unwrap();
    assert_eq!(tags(&r.take_sent()), "BES", "the first connection had it");
    r.rewind();
    r.set = PreparedSet::default();
    r.link(BACKEND_PID);
    r.client(&[]).unwrap();
    assert_eq!(tags(&r.take_sent()), "PBES", "the second one does not");
    assert!(matches!(r.server(&answers(b"12CZ")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "2CZ");
}

#[test]
fn without_tracking_names_pass_through() {
    let mut r = linked(0);
    r.client(&[parse("s1", "select 1"), bind_execute_sync("s1")].concat())
        .unwrap();
    let sent = r.take_sent();
    assert_eq!(name_in(b'P', &sent[0].1), b"s1");
    assert_eq!(name_in(b'B', &sent[1].1), b"s1");
}

#[test]
fn several_unnamed_parses_in_one_pipeline_pass_through() {
    let mut r = relay();
    let batch = [
        parse("", "select 1"),
        bind_execute_sync("")[..].to_vec(),
        parse("", "select 2"),
        bind_execute_sync(""),
    ]
    .concat();
    r.client(&batch).unwrap();
    assert_eq!(tags(&r.take_sent()), "PBESPBES");
    assert!(r.server(&answers(b"12CZ")).is_none());
    assert!(matches!(r.server(&answers(b"12CZ")), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "12CZ12CZ");
}

#[test]
fn a_parse_of_a_known_statement_outside_a_transaction_needs_no_server() {
    let mut r = relay();
    r.client(&[parse("s1", "select 1"), sync()].concat())
        .unwrap();
    assert!(matches!(r.server(&answers(b"1Z")), Some(Event::Release)));
    r.take_for_client();
    r.take_sent();
    assert!(!r.unlink());
    // Another client (same shared knowledge) prepares the same SQL: answered here, unlinked.
    let mut other = Relay::new(r.rules, Arc::clone(&r.known), CLIENT_PID, Arc::default());
    other
        .client
        .inbox()
        .push(&[parse("mine", "select 1"), sync()].concat());
    other.walk_client().unwrap();
    assert!(other.answer_locally());
    assert_eq!(other.client.untranslated(), 0);
    assert_eq!(split(other.server.walked()), split(&answers(b"1Z")));
    assert!(other.statements.contains(b"mine"));
    // An unknown statement, or anything else in the batch, needs the server.
    other
        .client
        .inbox()
        .push(&[parse("new", "select 2"), sync()].concat());
    other.walk_client().unwrap();
    assert!(!other.answer_locally());
}

#[test]
fn a_changed_result_type_is_retried_once_with_the_statement_made_again() {
    let mut r = relay();
    r.prepared("s1", "select * from t");
    r.unlink();
    r.link(BACKEND_PID);
    // libpq's PQexecPrepared: Bind, Describe portal, Execute, Sync.
    let mut describe = BytesMut::new();
    frontend::describe(b'P', "", &mut describe).unwrap();
    let execute = bind_execute_sync("s1");
    let bind_len = crate::protocol::framing::header(&execute).unwrap().1;
    let batch = [&execute[..bind_len], &describe[..], &execute[bind_len..]].concat();
    r.client(&batch).unwrap();
    assert_eq!(tags(&r.take_sent()), "BDES");
    let changed = msg(
        b'E',
        b"SERROR\0VERROR\0C0A000\0Mcached plan must not change result type\0\0",
    );
    assert!(r.server(&[changed.clone(), z(b'I')].concat()).is_none());
    assert!(
        r.take_for_client().is_empty(),
        "the error and its Z are dropped"
    );
    r.client(&[]).unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "CPBDES", "closed, made again, sent again");
    assert_eq!(name_in(b'C', &sent[0].1), name_in(b'P', &sent[1].1));
    assert!(matches!(
        r.server(&answers(b"312nCZ")),
        Some(Event::Release)
    ));
    assert_eq!(tags(&r.take_for_client()), "2nCZ");

    // A second change on the same link reaches the client.
    r.unlink();
    r.link(BACKEND_PID);
    r.link.as_mut().unwrap().retried = true;
    r.client(&batch).unwrap();
    r.take_sent();
    r.server(&[changed.clone(), z(b'I')].concat());
    assert_eq!(tags(&r.take_for_client()), "EZ");

    // So does the first, for a client that executes without describing the new shape.
    r.unlink();
    r.link(BACKEND_PID);
    r.client(&bind_execute_sync("s1")).unwrap();
    r.take_sent();
    r.server(&[changed, z(b'I')].concat());
    assert_eq!(tags(&r.take_for_client()), "EZ");
}

#[test]
fn messages_are_translated_once_even_when_the_first_answer_is_pgwarms() {
    let mut r = relay();
    r.prepared("a", "select 1");
    r.relink();
    // pgwarm answers the Close itself, which ends replay; the server socket is not written yet.
    r.relay.client.inbox().push(
        &[
            close_statement("a"),
            parse("b", "select 2"),
            bind_execute_sync("b"),
        ]
        .concat(),
    );
    r.relay.walk_client().unwrap();
    r.relay.translate(&mut r.set);
    r.relay.client.inbox().push(&sync());
    r.relay.walk_client().unwrap();
    r.relay.translate(&mut r.set);
    assert_eq!(
        tags(&split(&r.relay.outbox)),
        "PBESS",
        "nothing is sent twice"
    );
}

#[test]
fn a_describe_on_another_connection_creates_the_statement_first() {
    let mut r = relay();
    r.prepared("s1", "select 1");
    r.relink();
    let mut describe = BytesMut::new();
    frontend::describe(b'S', "s1", &mut describe).unwrap();
    r.client(&[describe.to_vec(), sync()].concat()).unwrap();
    let sent = r.take_sent();
    assert_eq!(tags(&sent), "PDS");
    assert_eq!(name_in(b'D', &sent[1].1), name_in(b'P', &sent[0].1));
    let answer = [msg(b'1', b""), msg(b't', b"\0\0"), msg(b'n', b""), z(b'I')].concat();
    assert!(matches!(r.server(&answer), Some(Event::Release)));
    assert_eq!(tags(&r.take_for_client()), "tnZ");
}
