//! The database's bad days, through pgwarm: every pooled backend terminated under load, a
//! database that is full (53300), one that does not answer or refuses connections, and the one
//! deadline (`PGWARM_QUERY_WAIT_TIMEOUT`) a client waits whatever pgwarm is doing meanwhile.
//! The restart under load is in `restart.rs`, a binary of its own.

use pgwarm_tests::*;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// How far past its deadline a client may get its error: scheduling on a busy 2-core machine,
/// not pgwarm's own slack (the figures in the log show the real margin).
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

/// A client's wait of `waited` ended at its deadline `wait`: not before, and not much after.
fn assert_at_deadline(waited: Duration, wait: Duration, what: &str) {
    eprintln!("{what}: error after {waited:?}");
    assert!(
        waited >= wait && waited < wait + DEADLINE_SLACK,
        "{what}: {waited:?} for a wait of {wait:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pooled_backend_terminated_under_load_is_invisible_outside_transactions() {
    let db = cluster().fresh_target();
    db.psql_ok("create table bad_days(client int, n int)");
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "4")]);
    let role = db.user.clone();
    let report = FaultLoad::new(50)
        .run(&pgwarm.target(), move || {
            let n = cluster().terminate_backends_for(&role);
            eprintln!("terminated {n} backends");
        })
        .await;
    report.check(&db, 4, &pgwarm.log());
    eprintln!(
        "terminate: {} operations, {} errors ({} inside a transaction)",
        report.ops,
        report.errors.len(),
        report.errors.iter().filter(|e| e.in_transaction).count()
    );
}

/// A role limited to 2 connections, both held by other sessions: the database is full for
/// pgwarm's logins (53300, "too many connections for role").
struct FullDatabase {
    db: Target,
    holders: Vec<tokio_postgres::Client>,
}

impl FullDatabase {
    async fn new() -> FullDatabase {
        let db = cluster().fresh_target();
        cluster().psql_super(&format!("alter role {} connection limit 2", db.user));
        let holders = vec![db.connect().await, db.connect().await];
        assert!(db.try_connect().await.is_err(), "the role is full");
        FullDatabase { db, holders }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_is_waited_out_when_a_slot_frees_within_the_deadline() {
    let mut full = FullDatabase::new().await;
    let pgwarm = Pgwarm::start(&full.db, &[("PGWARM_QUERY_WAIT_TIMEOUT", "5s")]);
    let target = pgwarm.target();
    let started = Instant::now();
    let client = tokio::spawn(async move {
        let client = target.connect().await;
        simple_rows(&client, "select 'through'").await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !client.is_finished(),
        "the client waits while the database is full"
    );
    full.holders.pop();
    let rows = tokio::time::timeout(Duration::from_secs(4), client)
        .await
        .expect("served once a slot freed")
        .expect("the client task");
    assert_eq!(rows, [["through"]]);
    let waited = started.elapsed();
    eprintln!("served after {waited:?}");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    let log = pgwarm.log();
    assert!(log.contains("the database is not taking logins"), "{log}");
    assert!(log.contains("the database takes logins again"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stays_full_gives_a_clear_53300_at_the_deadline() {
    let full = FullDatabase::new().await;
    let wait = Duration::from_secs(1);
    let pgwarm = Pgwarm::start(&full.db, &[("PGWARM_QUERY_WAIT_TIMEOUT", "1s")]);
    let started = Instant::now();
    let error = pgwarm
        .target()
        .try_connect()
        .await
        .expect_err("no slot frees");
    let waited = started.elapsed();
    eprintln!("53300 after {waited:?}: {error}");
    assert_eq!(sqlstate(&error), "53300", "{error:?}");
    let text = format!("{error:?}");
    assert!(text.contains("too many connections for role"), "{text}");
    assert!(text.contains("PGWARM_QUERY_WAIT_TIMEOUT"), "{text}");
    assert_at_deadline(waited, wait, "a database that stays full");
    assert_eq!(full.holders.len(), 2);
}

/// A tight database full of pgwarm's own connections: client A holds the one connection the
/// role may have, inside a transaction; client B needs another, and the database refuses its
/// login (53300). When A commits, B gets A's connection at once, not when the database would
/// take another login (never, here) or when B's wait runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_given_back_ends_a_wait_on_a_refused_login() {
    let db = cluster().fresh_target();
    cluster().psql_super(&format!("alter role {} connection limit 1", db.user));
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "2"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "10s"),
        ],
    );
    let a = pgwarm.target().connect().await;
    a.batch_execute("begin; select 1").await.unwrap();
    let b = pgwarm.target().connect().await;
    let asked = tokio::spawn(async move {
        let rows = simple_rows(&b, "select 'b'").await;
        (rows, Instant::now())
    });
    // B's login is refused and retried meanwhile.
    let retried = poll_until(Duration::from_secs(5), || {
        pgwarm
            .log()
            .contains("the database is not taking logins")
            .then_some(())
    });
    assert!(retried.is_some(), "B's login was refused: {}", pgwarm.log());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!asked.is_finished(), "B waits while A holds the connection");
    a.batch_execute("commit").await.unwrap();
    let committed = Instant::now();
    let (rows, served) = tokio::time::timeout(Duration::from_secs(5), asked)
        .await
        .expect("B is served once A commits")
        .expect("the client task");
    assert_eq!(rows, [["b"]]);
    let after = served.saturating_duration_since(committed);
    eprintln!("B served {after:?} after A's COMMIT");
    assert!(after < Duration::from_secs(1), "{after:?}");
    assert_eq!(cluster().backends_for(&db.user), 1);
}

/// The deadline holds whatever pgwarm is doing: waiting for a busy pool, logging in to a
/// database that does not answer, or retrying one that refuses connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_deadline_holds_whatever_pgwarm_is_doing() {
    let wait = Duration::from_secs(1);
    let settings = [
        ("PGWARM_QUERY_WAIT_TIMEOUT", "1s"),
        ("PGWARM_CONNECT_TIMEOUT", "5s"),
    ];

    // A busy pool: its one connection is held in a transaction.
    let db = cluster().fresh_target();
    let busy = Pgwarm::start(&db, &[settings[0], settings[1], ("PGWARM_POOL_SIZE", "1")]);
    let holder = busy.target().connect().await;
    holder.batch_execute("begin; select 1").await.unwrap();
    let waiter = busy.target().connect().await;
    let started = Instant::now();
    let error = waiter
        .simple_query("select 1")
        .await
        .expect_err("the pool is held");
    let waited = started.elapsed();
    eprintln!("busy pool: {waited:?}: {error}");
    assert_eq!(sqlstate(&error), "57014", "{error:?}");
    assert!(format!("{error:?}").contains("busy"), "{error:?}");
    assert_at_deadline(waited, wait, "a busy pool");

    // A database that takes the TCP connection and never answers, and one where nothing
    // listens: pgwarm logs in within what is left of the wait, and retries.
    let silent = TcpListener::bind("127.0.0.1:0").expect("a listener that never answers");
    let closed_port = free_port();
    for (what, port) in [
        ("silent", silent.local_addr().unwrap().port()),
        ("refusing", closed_port),
    ] {
        let mut unreachable = db.clone();
        unreachable.port = port;
        let pgwarm = Pgwarm::start(&unreachable, &settings);
        let started = Instant::now();
        let error = pgwarm
            .target()
            .try_connect()
            .await
            .expect_err("no database to reach");
        let waited = started.elapsed();
        eprintln!("{what} database: {waited:?}: {error}");
        assert_eq!(sqlstate(&error), "08006", "{what}: {error:?}");
        assert!(
            format!("{error:?}").contains("PGWARM_QUERY_WAIT_TIMEOUT"),
            "{what}: {error:?}"
        );
        assert_at_deadline(waited, wait, what);
    }
    drop(silent);
}

/// With `PGWARM_IDLE_SESSION_TIMEOUT`, the database itself closes pgwarm's idle server
/// connections (so a frozen environment gives its slots back), and the next client works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_connections_are_closed_by_the_database_and_replaced_unseen() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_IDLE_SESSION_TIMEOUT", "1s"),
            ("PGWARM_POOL_SIZE", "2"),
        ],
    );
    let client = pgwarm.target().connect().await;
    assert_eq!(simple_rows(&client, "select 1").await, [["1"]]);
    assert_eq!(cluster().backends_for(&db.user), 1);
    assert_eq!(
        cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
        0,
        "the idle server connection is gone from pg_stat_activity"
    );
    for _ in 0..3 {
        assert_eq!(simple_rows(&client, "select 2").await, [["2"]]);
    }
    let fresh = pgwarm.target().connect().await;
    assert_eq!(simple_rows(&fresh, "select 3").await, [["3"]]);
    let timeout = simple_rows(&client, "show idle_session_timeout").await;
    assert_eq!(timeout, [["1s"]], "asked of the database at login");
}

/// A backend terminated while its client's query runs: the client gets the server's own FATAL
/// (57P01), once, as directly, and then the end of the connection; not a second error of
/// pgwarm's that would hide the first from drivers that keep the last.
#[test]
fn a_terminated_query_ends_with_the_servers_own_fatal_once() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[]);
    let mut wire = Wire::login(pgwarm.addr(), &db.user, &db.dbname).0;
    wire.send(&raw_message(b'Q', b"select pg_sleep(20)\0"));
    let terminated = poll_until(Duration::from_secs(5), || {
        let n = cluster().psql_super(&format!(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where usename = {} and query like 'select pg_sleep%'",
            quote_literal(&db.user)
        ));
        (n == "1").then_some(())
    });
    assert!(terminated.is_some(), "the running query was found");
    let mut errors = Vec::new();
    while let Some(message) = wire.read() {
        if let postgres_protocol::message::backend::Message::ErrorResponse(body) = message {
            errors.push(wire_error(&body));
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].code, "57P01", "{errors:?}");
    assert_eq!(errors[0].severity, "FATAL", "{errors:?}");
}
