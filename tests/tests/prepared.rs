//! Protocol-level named prepared statements in transaction mode: a client's statements follow it
//! to whichever server connection it lands on (re-prepared there when missing), identical
//! statements share one server statement (`pgwarm_<32 hex>`), a per-connection LRU bounded by
//! PGWARM_MAX_PREPARED_STATEMENTS, and PostgreSQL's own answers for Close, DEALLOCATE,
//! DISCARD ALL, duplicate names, failed Parses, unnamed statements and result-type changes.
//! The expected replies were checked against PostgreSQL 15 directly.

use pgwarm_tests::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::Type;

/// A raw-protocol client logged in to pgwarm (no client password is configured).
fn login(pgwarm: &Pgwarm) -> Wire {
    let target = pgwarm.target();
    Wire::login(pgwarm.addr(), &target.user, &target.dbname).0
}

/// The replies to a successful Parse + Sync.
const PARSED: [Reply; 2] = [Reply::ParseComplete, Reply::Ready('I')];

/// Runs `batch`, which must fail with exactly the SQLSTATEs `codes` (one per Sync at most).
fn expect_codes(wire: &mut Wire, batch: &Batch, codes: &[&str], what: &str) {
    let replies = wire.run(batch);
    assert_eq!(Reply::codes(&replies), codes, "{what}: {replies:?}");
}

/// Runs `batch`, which must succeed with rows whose first columns are `values`.
fn expect_values(wire: &mut Wire, batch: &Batch, values: &[&str], what: &str) {
    let replies = wire.run(batch);
    assert!(Reply::codes(&replies).is_empty(), "{what}: {replies:?}");
    assert_eq!(Reply::values(&replies), values, "{what}: {replies:?}");
}

/// The server-side name pgwarm gives a statement: `pgwarm_` and 32 lower-case hex digits.
fn is_pgwarm_name(name: &str) -> bool {
    let hex = name.strip_prefix("pgwarm_").unwrap_or_default();
    hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Awaits client tasks, all within `limit`; a client's panic fails the test.
async fn join_within(limit: Duration, tasks: Vec<tokio::task::JoinHandle<()>>) {
    let all = async {
        for task in tasks {
            task.await.expect("a client failed (see its panic above)");
        }
    };
    let finished = tokio::time::timeout(limit, all).await;
    assert!(
        finished.is_ok(),
        "the clients did not finish within {limit:?}"
    );
}

/// One of the 50 clients of the load test: 4 statements (2 shared by all clients, 1 by a group
/// of 10, 1 its own), 200 checked executions, every fifth block of 10 inside a transaction.
async fn prepared_load_client(target: Target, c: i64, done: Arc<AtomicUsize>) {
    let client = target.connect().await;
    let factor = c % 5 + 2;
    let sqls = [
        "select $1::int8 + $2::int8".to_owned(),
        "select $1::int8 * $2::int8".to_owned(),
        format!("select $1::int8 * {factor} - $2::int8"),
        format!("select {c} * 1000 + $1::int8 + $2::int8"),
    ];
    let expect = |k: usize, a: i64, b: i64| match k {
        0 => a + b,
        1 => a * b,
        2 => a * factor - b,
        _ => c * 1000 + a + b,
    };
    let mut stmts = Vec::new();
    for sql in &sqls {
        let stmt = client.prepare(sql).await;
        stmts.push(stmt.unwrap_or_else(|e| panic!("client {c}: prepare {sql:?}: {e}")));
    }
    for block in 0..20 {
        if block % 5 == 4 {
            client.batch_execute("begin").await.unwrap();
        }
        for n in block * 10..block * 10 + 10 {
            let (k, what) = (n as usize % 4, format!("client {c}, execution {n}"));
            let row = client.query_one(&stmts[k], &[&n, &c]).await;
            let got: i64 = row
                .unwrap_or_else(|e| panic!("{what} ({}): {e}", sqls[k]))
                .get(0);
            assert_eq!(got, expect(k, n, c), "{what} ({}): wrong result", sqls[k]);
            done.fetch_add(1, Ordering::Relaxed);
        }
        if block % 5 == 4 {
            client.batch_execute("commit").await.unwrap();
        }
    }
}

/// The load test: 50 tokio-postgres clients on 2 server connections run 10,000
/// executions of prepared statements, each landing on whichever connection is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_run_ten_thousand_prepared_queries_on_two_server_connections() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = (0..50)
        .map(|c| tokio::spawn(prepared_load_client(pgwarm.target(), c, Arc::clone(&done))))
        .collect();
    join_within(Duration::from_secs(120), tasks).await;
    assert_eq!(done.load(Ordering::Relaxed), 10_000);
    assert!(cluster().backends_for(&db.user) <= 2, "the pool size is 2");
    // 2 shared + 5 group + 50 own statements: identical SQL is one server statement.
    let check = pgwarm.target().connect().await;
    let names = simple_rows(&check, "select name from pg_prepared_statements").await;
    assert!(
        names.len() <= 57 && names.iter().all(|n| is_pgwarm_name(&n[0])),
        "a server connection holds {} statements, 57 distinct exist: {names:?}",
        names.len()
    );
}

/// A statement outlives the server connections it was prepared on: after every pooled backend
/// is terminated, the next execution works at once (re-prepared on the replacement), with no
/// retry by the client.
#[tokio::test]
async fn a_prepared_statement_survives_the_termination_of_every_pooled_backend() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let client = pgwarm.target().connect().await;
    let stmt = client.prepare("select $1::int4 * 3, pg_backend_pid()");
    let stmt = stmt.await.unwrap();
    let late = client.prepare("select 'first run'").await.unwrap();
    let mut pids = Vec::new();
    for round in 0..3i32 {
        let killed = cluster().terminate_backends_for(&db.user);
        assert!(killed >= 1, "round {round}: nothing to terminate");
        // Gone before the next query: a backend terminated just after reading it would fail
        // that query, as on a direct connection (see tests/pool.rs).
        assert_eq!(
            cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
            0
        );
        let row = client
            .query_one(&stmt, &[&round])
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: the statement failed after pg_terminate_backend: {e}")
            });
        assert_eq!(row.get::<_, i32>(0), round * 3);
        pids.push(row.get::<_, i32>(1));
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "each round ran on a new backend: {pids:?}");
    let row = client.query_one(&late, &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "first run");
}

/// pgbench in prepared mode (every client prepares its script's statements once, then only
/// binds them) with 16 clients on 2 server connections: no client may abort.
#[test]
fn pgbench_prepared_mode_with_sixteen_clients_on_two_server_connections() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let target = pgwarm.target();
    pgbench(&target, &["-i", "-s", "1", "-q"]);
    let out = pgbench(
        &target,
        &["-M", "prepared", "-c", "16", "-j", "2", "-T", "10"],
    );
    assert!(out.contains("number of failed transactions: 0"), "{out}");
    let processed = pgbench_processed(&out);
    assert!(processed > 1000, "processed only {processed}:\n{out}");
    assert!(cluster().backends_for(&db.user) <= 2, "the pool size is 2");
}

/// ALTER TABLE under a prepared statement: the next execution returns correct rows or a clear
/// database error (PostgreSQL: 0A000 "cached plan must not change result type"), never rows
/// decoded with the old description. tokio-postgres binds with the column types it got at
/// prepare time, so an int4 column turned text ('1234') would silently read as 825373492.
#[tokio::test]
async fn a_result_type_change_gives_a_clear_error_or_correct_rows() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let client = pgwarm.target().connect().await;
    let setup = "create table t (id int4, name text); insert into t values (1234, 'x')";
    client.batch_execute(setup).await.unwrap();
    let all = client.prepare("select * from t").await.unwrap();
    let id = client.prepare("select id from t").await.unwrap();
    let first: i32 = client.query_one(&id, &[]).await.unwrap().get(0);
    assert_eq!(first, 1234);

    let alter = "alter table t add column extra int4 default 7";
    client.batch_execute(alter).await.unwrap();
    match client.query(&all, &[]).await {
        Ok(rows) => {
            let got = (rows[0].try_get::<_, i32>(0), rows[0].try_get::<_, &str>(1));
            assert!(matches!(got, (Ok(1234), Ok("x"))), "after {alter}: {got:?}");
        }
        Err(e) => assert!(e.code().is_some(), "not a database error: {e:?}"),
    }

    let alter = "alter table t alter column id type text";
    client.batch_execute(alter).await.unwrap();
    match client.query(&id, &[]).await {
        Ok(rows) => {
            let got = rows[0].try_get::<_, i32>(0);
            assert!(
                matches!(got, Ok(1234)),
                "a wrong result after {alter}: {got:?}"
            );
        }
        Err(e) => assert!(e.code().is_some(), "not a database error: {e:?}"),
    }
}

/// The target behaviour for a result-type change: a client that describes the portal it binds
/// learns the new shape, so pgwarm re-prepares the statement and the execution succeeds
/// (PostgreSQL itself answers 0A000 here).
#[test]
fn a_result_type_change_is_recovered() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    let setup = Batch::new()
        .query("create table t (id int4, name text); insert into t values (1234, 'x')")
        .parse("shape", "select * from t")
        .describe_statement("shape")
        .sync();
    let replies = wire.run(&setup);
    assert!(replies.contains(&Reply::RowDescription(vec!["id".into(), "name".into()])));
    wire.run(&Batch::new().query("alter table t add column extra int4 default 7"));
    let described = Batch::new().bind("shape", &[]).describe_portal().execute();
    let columns = ["id", "name", "extra"].map(String::from).to_vec();
    let expected = [
        Reply::BindComplete,
        Reply::RowDescription(columns.clone()),
        Reply::DataRow(["1234", "x", "7"].map(|v| Some(v.to_owned())).to_vec()),
        Reply::CommandComplete("SELECT 1".into()),
        Reply::Ready('I'),
    ];
    let replies = wire.run(&described.sync());
    assert_eq!(replies, expected, "the execution after ALTER TABLE");
    let replies = wire.run(&Batch::new().describe_statement("shape").sync());
    let new_shape = Reply::RowDescription(columns);
    assert!(replies.contains(&new_shape), "describe after: {replies:?}");
}

/// With an LRU of 2 statements per server connection, 3 clients cycling through 10 statements
/// (some shared, some their own) still get every result right: evicted statements are
/// prepared again when needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_statements_rotate_through_a_limit_of_two() {
    let db = cluster().fresh_target();
    let settings = [
        ("PGWARM_POOL_SIZE", "2"),
        ("PGWARM_MAX_PREPARED_STATEMENTS", "2"),
    ];
    let pgwarm = Pgwarm::start(&db, &settings);
    let client_task = |c: i32, target: Target| async move {
        let client = target.connect().await;
        let mut stmts = Vec::new();
        for k in 0..10 {
            let offset = if k % 2 == 0 { k } else { k + 100 * c };
            let sql = format!("select $1::int4 + {offset}");
            stmts.push((client.prepare(&sql).await.unwrap(), offset));
        }
        for n in 0..200i32 {
            let (stmt, offset) = &stmts[n as usize % 10];
            let what = format!("client {c}, execution {n}, statement {}", n % 10);
            let row = client.query_one(stmt, &[&n]).await;
            let got: i32 = row.unwrap_or_else(|e| panic!("{what}: {e}")).get(0);
            assert_eq!(got, n + offset, "{what}");
        }
    };
    let tasks = (0..3)
        .map(|c| tokio::spawn(client_task(c, pgwarm.target())))
        .collect();
    join_within(Duration::from_secs(60), tasks).await;
}

/// PGWARM_MAX_PREPARED_STATEMENTS bounds what a server connection holds: with a limit of 2,
/// pg_prepared_statements (read through pgwarm, so on the pooled backend itself) never shows
/// more than 2 statements, all named `pgwarm_<32 hex>`, while a client uses 10.
#[tokio::test]
async fn a_server_connection_never_holds_more_statements_than_the_limit() {
    let db = cluster().fresh_target();
    let settings = [
        ("PGWARM_POOL_SIZE", "1"),
        ("PGWARM_MAX_PREPARED_STATEMENTS", "2"),
    ];
    let pgwarm = Pgwarm::start(&db, &settings);
    let client = pgwarm.target().connect().await;
    let mut stmts = Vec::new();
    for k in 0..10i32 {
        let stmt = client.prepare(&format!("select {k} + $1::int4")).await;
        stmts.push(stmt.unwrap());
    }
    for n in 0..30i32 {
        let got: i32 = client
            .query_one(&stmts[n as usize % 10], &[&n])
            .await
            .unwrap()
            .get(0);
        assert_eq!(got, n % 10 + n);
        let names = simple_rows(&client, "select name from pg_prepared_statements").await;
        assert!(
            (1..=2).contains(&names.len()) && names.iter().all(|n| is_pgwarm_name(&n[0])),
            "after execution {n} the server connection holds {names:?} (limit 2)"
        );
    }
}

/// Identical statements (same SQL, same parameter types) from different clients are one server
/// statement; the same SQL with other parameter types is another.
#[tokio::test]
async fn identical_statements_from_two_clients_share_one_server_statement() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let target = pgwarm.target();
    let (a, b, c) = (
        target.connect().await,
        target.connect().await,
        target.connect().await,
    );
    let sql = "select $1 + 1";
    let (sa, sb) = (a.prepare(sql).await.unwrap(), b.prepare(sql).await.unwrap());
    let sc = c.prepare_typed(sql, &[Type::INT8]).await.unwrap();
    let two: i32 = a.query_one(&sa, &[&1i32]).await.unwrap().get(0);
    let answer: i32 = b.query_one(&sb, &[&41i32]).await.unwrap().get(0);
    let big: i64 = c.query_one(&sc, &[&(1i64 << 40)]).await.unwrap().get(0);
    assert_eq!((two, answer, big), (2, 42, (1 << 40) + 1));
    let rows = simple_rows(
        &a,
        "select parameter_types::text, name from pg_prepared_statements \
         where statement = 'select $1 + 1' order by 1",
    )
    .await;
    let types: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        types,
        ["{bigint}", "{integer}"],
        "one statement per types: {rows:?}"
    );
    assert!(rows.iter().all(|r| is_pgwarm_name(&r[1])), "{rows:?}");
}

/// Statement names belong to their client: two clients may use one name for different SQL, and
/// each always gets its own statement, whichever server connection runs it.
#[test]
fn the_same_name_in_two_clients_means_each_clients_own_sql() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let (mut a, mut b) = (login(&pgwarm), login(&pgwarm));
    assert_eq!(a.run(&Batch::prepare("q", "select 'a'")), PARSED);
    assert_eq!(b.run(&Batch::prepare("q", "select 'b'")), PARSED);
    for _ in 0..5 {
        expect_values(&mut a, &Batch::exec("q", &[]), &["a"], "client a's q");
        expect_values(&mut b, &Batch::exec("q", &[]), &["b"], "client b's q");
    }
}

/// Close (what a driver sends when it drops a statement) removes the name for that client only:
/// binding it then fails with 26000 as on PostgreSQL, the name can be parsed again for other
/// SQL, closing an unknown name is no error, and another client's statement with the same SQL
/// (the same server statement) keeps working.
#[test]
fn close_removes_the_name_for_that_client_only() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let (mut a, mut b) = (login(&pgwarm), login(&pgwarm));
    a.run(&Batch::prepare("s1", "select 'first'"));
    b.run(&Batch::prepare("s1", "select 'first'"));
    let closed = [Reply::CloseComplete, Reply::Ready('I')];
    assert_eq!(a.run(&Batch::new().close_statement("s1").sync()), closed);
    expect_codes(
        &mut a,
        &Batch::exec("s1", &[]),
        &["26000"],
        "bind after Close",
    );
    expect_values(
        &mut b,
        &Batch::exec("s1", &[]),
        &["first"],
        "the other client's s1",
    );
    let again = Batch::new()
        .parse("s1", "select 'second'")
        .bind("s1", &[])
        .execute();
    expect_values(
        &mut a,
        &again.sync(),
        &["second"],
        "s1 parsed again after Close",
    );
    let unknown = a.run(&Batch::new().close_statement("never_prepared").sync());
    assert_eq!(unknown, closed, "Close of an unknown name");
}

/// `DEALLOCATE name` by simple query removes a protocol-level statement (quoted and
/// `DEALLOCATE PREPARE` forms too); an unknown name is 26000, like binding a removed one.
#[test]
fn deallocate_by_name_is_honoured() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    wire.run(
        &Batch::new()
            .parse("Stmt One", "select 1")
            .parse("lower", "select 2")
            .sync(),
    );
    for sql in ["deallocate \"Stmt One\"", "deallocate prepare lower"] {
        let done = [
            Reply::CommandComplete("DEALLOCATE".into()),
            Reply::Ready('I'),
        ];
        assert_eq!(wire.run(&Batch::new().query(sql)), done, "{sql}");
    }
    let unknown = Batch::new().query("deallocate nosuch");
    expect_codes(
        &mut wire,
        &unknown,
        &["26000"],
        "DEALLOCATE of an unknown name",
    );
    for name in ["Stmt One", "lower"] {
        expect_codes(&mut wire, &Batch::exec(name, &[]), &["26000"], name);
    }
    let again = Batch::new()
        .parse("lower", "select 3")
        .bind("lower", &[])
        .execute();
    expect_values(&mut wire, &again.sync(), &["3"], "the name is free again");
}

/// `DEALLOCATE ALL` and `DISCARD ALL` forget every statement of that client (then binding fails
/// with 26000 and the names are free), and nothing of another client on the same server
/// connection.
#[test]
fn deallocate_all_and_discard_all_forget_the_clients_statements() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let mut other = login(&pgwarm);
    other.run(&Batch::prepare("keep", "select 'kept'"));
    for command in ["DEALLOCATE ALL", "DISCARD ALL"] {
        let mut wire = login(&pgwarm);
        wire.run(
            &Batch::new()
                .parse("a", "select 1")
                .parse("b", "select 'kept'")
                .sync(),
        );
        let replies = wire.run(&Batch::new().query(command));
        let done = Reply::CommandComplete(command.into());
        assert_eq!(replies.first(), Some(&done), "{replies:?}");
        for name in ["a", "b"] {
            let what = format!("bind {name} after {command}");
            expect_codes(&mut wire, &Batch::exec(name, &[]), &["26000"], &what);
        }
        assert_eq!(
            wire.run(&Batch::prepare("a", "select 11")),
            PARSED,
            "{command}"
        );
        let what = format!("another client after {command}");
        expect_values(&mut other, &Batch::exec("keep", &[]), &["kept"], &what);
    }
}

/// Parsing a name the client already has fails with 42P05, even for the very same SQL and
/// within one pipeline, and the first statement stays usable.
#[test]
fn parsing_an_existing_name_fails_with_42p05() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    wire.run(&Batch::prepare("dup", "select 1"));
    for sql in ["select 2", "select 1"] {
        let what = format!("second Parse of dup as {sql:?}");
        expect_codes(&mut wire, &Batch::prepare("dup", sql), &["42P05"], &what);
    }
    let twice = Batch::new()
        .parse("dup2", "select 1")
        .parse("dup2", "select 2")
        .sync();
    let replies = wire.run(&twice);
    assert_eq!(replies[0], Reply::ParseComplete, "{replies:?}");
    assert_eq!(Reply::codes(&replies), ["42P05"], "{replies:?}");
    for name in ["dup", "dup2"] {
        expect_values(&mut wire, &Batch::exec(name, &[]), &["1"], name);
    }
}

/// A Parse that fails leaves no statement behind (the name stays free), while a statement
/// prepared in a transaction that is rolled back stays, as on PostgreSQL (statements are not
/// transactional).
#[test]
fn parse_failures_and_rollbacks_follow_postgresql() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    let bad = Batch::prepare("bad", "selec 1");
    expect_codes(&mut wire, &bad, &["42601"], "a syntax error");
    let good = wire.run(&Batch::prepare("bad", "select 1"));
    assert_eq!(good, PARSED, "the name of a failed Parse is free");

    wire.run(
        &Batch::new()
            .query("begin")
            .parse("kept", "select 42")
            .sync()
            .query("rollback"),
    );
    let what = "prepared in a rolled-back transaction";
    expect_values(&mut wire, &Batch::exec("kept", &[]), &["42"], what);

    // In an aborted transaction PostgreSQL refuses the Parse with 25P02. A pooler answering it
    // from its cache must then really have the statement: either way the client's view holds.
    let aborted = Batch::new()
        .query("begin")
        .query("select 1/0")
        .parse("x", "select 5");
    let refused = Reply::codes(&wire.run(&aborted.sync())).contains(&"25P02".to_owned());
    wire.run(&Batch::new().query("rollback"));
    if refused {
        expect_codes(
            &mut wire,
            &Batch::exec("x", &[]),
            &["26000"],
            "the refused x",
        );
        assert_eq!(wire.run(&Batch::prepare("x", "select 5")), PARSED);
    } else {
        expect_values(
            &mut wire,
            &Batch::exec("x", &[]),
            &["5"],
            "the acknowledged x",
        );
    }
}

/// Unnamed statements keep working, several in one pipeline before one Sync (mixed with a
/// named one and an error), and across Syncs sent in a single write.
#[test]
fn unnamed_statements_work_several_per_sync() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let mut wire = login(&pgwarm);
    let pipeline = Batch::new()
        .parse("", "select 1 as one")
        .bind("", &[])
        .describe_portal()
        .execute()
        .parse("", "select $1::int4 * 2")
        .bind("", &[Some("21")])
        .execute()
        .parse("named", "select $1::text || '!'")
        .bind("named", &[Some("hi")])
        .execute()
        .parse("", "select 'three'")
        .bind("", &[])
        .execute()
        .sync();
    let (pc, bc, done) = (
        Reply::ParseComplete,
        Reply::BindComplete,
        Reply::CommandComplete("SELECT 1".into()),
    );
    let one = Reply::RowDescription(vec!["one".into()]);
    #[rustfmt::skip]
    let expected = [
        pc.clone(), bc.clone(), one, Reply::row("1"), done.clone(),
        pc.clone(), bc.clone(), Reply::row("42"), done.clone(),
        pc.clone(), bc.clone(), Reply::row("hi!"), done.clone(),
        pc, bc, Reply::row("three"), done,
        Reply::Ready('I'),
    ];
    assert_eq!(wire.run(&pipeline), expected);

    let three_syncs = Batch::new()
        .parse("", "select 1/0")
        .bind("", &[])
        .execute()
        .sync()
        .parse("", "select generate_series(1, 3)::text")
        .bind("", &[])
        .execute()
        .sync()
        .bind("named", &[Some("again")])
        .execute()
        .sync();
    let replies = wire.run(&three_syncs);
    assert_eq!(Reply::codes(&replies), ["22012"], "{replies:?}");
    let values = Reply::values(&replies);
    assert_eq!(values, ["1", "2", "3", "again!"], "{replies:?}");
}

/// PGWARM_MAX_PREPARED_STATEMENTS=0 turns the feature off: names reach the server as the
/// client sent them (the old behaviour, fine with one server connection).
#[test]
fn a_limit_of_zero_passes_statement_names_through() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_MAX_PREPARED_STATEMENTS", "0"),
        ],
    );
    let mut wire = login(&pgwarm);
    assert_eq!(
        wire.run(&Batch::prepare("plain_name", "select 'as sent'")),
        PARSED
    );
    let names = Batch::new().query("select name from pg_prepared_statements");
    expect_values(
        &mut wire,
        &names,
        &["plain_name"],
        "the server's statement names",
    );
    expect_values(
        &mut wire,
        &Batch::exec("plain_name", &[]),
        &["as sent"],
        "plain_name",
    );
}

/// In session mode a client keeps its server connection, so prepared statements work as on
/// PostgreSQL itself, in and outside transactions.
#[tokio::test]
async fn session_mode_keeps_prepared_statements_working() {
    let db = cluster().fresh_target();
    let settings = [("PGWARM_POOL_MODE", "session"), ("PGWARM_POOL_SIZE", "2")];
    let pgwarm = Pgwarm::start(&db, &settings);
    for c in 0..2i32 {
        let client = pgwarm.target().connect().await;
        let shared = client.prepare("select $1::int4 * 2").await.unwrap();
        let own = client
            .prepare(&format!("select $1::int4 + {c}"))
            .await
            .unwrap();
        for n in 0..50i32 {
            if n % 10 == 0 {
                client.batch_execute("begin").await.unwrap();
            }
            let doubled: i32 = client.query_one(&shared, &[&n]).await.unwrap().get(0);
            let added: i32 = client.query_one(&own, &[&n]).await.unwrap().get(0);
            assert_eq!(
                (doubled, added),
                (n * 2, n + c),
                "client {c}, execution {n}"
            );
            if n % 10 == 9 {
                client.batch_execute("commit").await.unwrap();
            }
        }
    }
}

/// A statement whose parameter type the server inferred, prepared while a type existed that
/// ROLLBACK TO SAVEPOINT then removed, lingers on the server connection. Another client's
/// first Parse of the same SQL, after the type was made again, must mean the type as it is now
/// (directly it would), not fail with "cache lookup failed for type" (XX000) on the old
/// statement; and a typed statement that failed a Bind is parsed anew before its next use.
#[test]
fn a_parse_of_untyped_parameters_is_never_matched_to_a_statement_from_another_catalog() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let make_type = "create type mood as enum ('happy', 'sad'); create table tm(m mood)";
    let insert = "insert into tm values ($1)";
    let mut a = login(&pgwarm);
    let setup = Batch::new()
        .query(&format!("begin; savepoint s; {make_type}"))
        .parse("s1", insert)
        .sync()
        .query("rollback to savepoint s; commit")
        .query(make_type);
    let replies = a.run(&setup);
    assert!(Reply::codes(&replies).is_empty(), "setup: {replies:?}");
    for client in ["b", "c"] {
        let mut wire = login(&pgwarm);
        let replies = wire.run(
            &Batch::prepare("mine", insert)
                .bind("mine", &[Some("happy")])
                .execute()
                .sync(),
        );
        assert_eq!(
            Reply::codes(&replies),
            Vec::<String>::new(),
            "client {client}: {replies:?}"
        );
    }
    expect_values(
        &mut a,
        &Batch::new().query("select count(*)::text from tm"),
        &["2"],
        "both inserts landed",
    );
}

/// A table made again with another column type, then a new client's Parse + Describe of a query
/// on it (asyncpg's prepare): the server parses it as it is now. pgwarm once matched the Parse to
/// the old shared statement, whose Describe then failed with "cached plan must not change
/// result type" (0A000).
#[test]
fn a_fresh_parse_after_the_table_changed_describes_the_table_as_it_is() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let mut a = login(&pgwarm);
    let replies = a.run(
        &Batch::new()
            .query("create table t (c int)")
            .parse("s", "select * from t")
            .describe_statement("s")
            .sync()
            .query("drop table t; create table t (c text, d int)"),
    );
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    let mut b = login(&pgwarm);
    let replies = b.run(
        &Batch::new()
            .parse("s", "select * from t")
            .describe_statement("s")
            .sync(),
    );
    assert!(Reply::codes(&replies).is_empty(), "{replies:?}");
    assert!(
        replies.contains(&Reply::RowDescription(vec!["c".into(), "d".into()])),
        "{replies:?}"
    );
}

#[test]
fn the_unnamed_statement_a_client_parsed_is_its_own_in_its_next_transaction() {
    let db = cluster().fresh_target();
    // Without statement tracking too: the unnamed statement is watched whatever the names do.
    let untracked = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_MAX_PREPARED_STATEMENTS", "0"),
            ("PGWARM_PINNING", "off"),
        ],
    );
    let (mut a, _) = Wire::login(untracked.addr(), &db.user, &db.dbname);
    let (mut b, _) = Wire::login(untracked.addr(), &db.user, &db.dbname);
    a.run(&Batch::new().parse("", "SELECT 111").sync());
    b.run(&Batch::new().parse("", "SELECT 222").sync());
    let replies = a.run(&Batch::new().bind("", &[]).execute().sync());
    assert_eq!(Reply::values(&replies), ["111"], "without tracking");
    drop((a, b, untracked));

    // One server connection: both clients' transactions run on it.
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let (mut a, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    let (mut b, _) = Wire::login(pgwarm.addr(), &db.user, &db.dbname);
    a.run(&Batch::new().parse("", "SELECT 111").sync());
    b.run(&Batch::new().parse("", "SELECT 222").sync());
    let replies = a.run(&Batch::new().bind("", &[]).execute().sync());
    assert_eq!(
        Reply::values(&replies),
        ["111"],
        "never another client's statement"
    );

    // A pinned client whose transaction makes pgwarm ask about session state (the question is
    // a simple query, which destroys the unnamed statement): asyncpg's Parse, Describe, Flush,
    // then Sync, then Bind.
    a.run(&Batch::new().query("SELECT pg_advisory_lock(1)"));
    a.send(
        Batch::new()
            .parse("", "SELECT 333 AS dropped")
            .describe_statement("")
            .flush()
            .bytes(),
    );
    a.run(&Batch::new().sync());
    let replies = a.run(&Batch::new().bind("", &[]).execute().sync());
    assert_eq!(Reply::values(&replies), ["333"]);
}
