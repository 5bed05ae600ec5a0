//! Session state in transaction mode: a client that leaves state in its backend's session keeps
//! that server connection until the state is gone, so its next transactions find it and no other
//! client inherits it.

use futures_util::StreamExt;
use pgwarm_tests::*;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};

/// pgwarm in transaction mode with `pool_size` server connections.
fn pgwarm(db: &Target, pool_size: &str) -> Pgwarm {
    Pgwarm::start(db, &[("PGWARM_POOL_SIZE", pool_size)])
}

/// Polls `SHOW CLIENTS` until `n` clients are pinned (5 s at most): the session decides after
/// the client has its answer.
async fn wait_for_pinned(admin: &tokio_postgres::Client, n: usize) -> Vec<AdminRow> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let clients = show(admin, "CLIENTS").await;
        let pinned = clients.iter().filter(|c| !c["pinned"].is_empty()).count();
        if pinned == n || std::time::Instant::now() > deadline {
            return clients;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Advisory locks held in `db`'s database (other tests share the cluster).
fn advisory_locks(db: &Target) -> String {
    db.psql_ok(
        "select count(*) from pg_locks where locktype = 'advisory' \
         and database = (select oid from pg_database where datname = current_database())",
    )
}

/// The one-row, one-column answer of `sql`.
async fn value(client: &tokio_postgres::Client, sql: &str) -> String {
    let rows = simple_rows(client, sql).await;
    rows.first()
        .and_then(|row| row.first())
        .cloned()
        .unwrap_or_else(|| panic!("no value from {sql}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_runner_keeps_its_advisory_lock_across_transactions() {
    let db = cluster().fresh_target();
    db.psql_ok("create table migrated (runner text, step int)");
    let pgwarm = pgwarm(&db, "2");
    let run = |runner: &'static str| {
        let target = pgwarm.target();
        async move {
            let client = target.connect().await;
            client
                .batch_execute("select pg_advisory_lock(42)")
                .await
                .expect("lock");
            for step in 0..3 {
                let sql =
                    format!("begin; insert into migrated values ('{runner}', {step}); commit");
                client.batch_execute(&sql).await.expect("a migration step");
            }
            value(&client, "select pg_advisory_unlock(42)").await
        }
    };
    let (a, b) = tokio::join!(run("a"), run("b"));
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("t", "t"),
        "each unlock found its own lock"
    );
    // The lock serialised them: one runner's steps all come before the other's.
    let order = db.psql_ok("select string_agg(runner, '' order by ctid) from migrated");
    assert!(
        order == "aaabbb" || order == "bbbaaa",
        "interleaved: {order}"
    );
    let locks = advisory_locks(&db);
    assert_eq!(locks, "0", "no advisory lock is left behind");
    let log = pgwarm.log();
    assert!(
        log.contains("client pinned to its server connection"),
        "{log}"
    );
    assert!(log.contains("advisory lock"), "{log}");
}

#[tokio::test]
async fn temporary_tables_follow_their_client_and_leave_with_it() {
    let db = cluster().fresh_target();
    // Both clients pinned at once, and one connection left for the others.
    let pgwarm = pgwarm(&db, "3");
    let (one, two) = (
        pgwarm.target().connect().await,
        pgwarm.target().connect().await,
    );
    for (client, n) in [(&one, 1), (&two, 2)] {
        client
            .batch_execute("create temp table scratch (n int)")
            .await
            .expect("create temp table");
        client
            .batch_execute(&format!("begin; insert into scratch values ({n}); commit"))
            .await
            .expect("insert in a later transaction");
    }
    assert_eq!(
        value(&one, "select string_agg(n::text, ',') from scratch").await,
        "1"
    );
    assert_eq!(
        value(&two, "select string_agg(n::text, ',') from scratch").await,
        "2"
    );
    // The admin console says who is pinned and why.
    let admin = pgwarm.admin_target().connect().await;
    let clients = show(&admin, "CLIENTS").await;
    let pinned: Vec<&str> = clients.iter().map(|c| c["pinned"].as_str()).collect();
    assert_eq!(
        pinned,
        ["temporary table", "temporary table"],
        "{clients:?}"
    );
    drop((one, two));
    // The next clients get server connections without the tables.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..2 {
        let next = pgwarm.target().connect().await;
        let left = value(
            &next,
            "select count(*) from pg_class where relnamespace = pg_my_temp_schema()",
        )
        .await;
        assert_eq!(left, "0", "a temporary table outlived its client");
    }
}

#[tokio::test]
async fn listen_gets_notifications_and_unlisten_gives_the_connection_back() {
    let db = cluster().fresh_target();
    let pgwarm = pgwarm(&db, "2");
    let target = pgwarm.target();
    let (listener, mut connection) = tokio_postgres::connect(&target.conn_string(), NoTls)
        .await
        .expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    listener
        .batch_execute("listen events")
        .await
        .expect("listen");
    let notifier = target.connect().await;
    notifier
        .batch_execute("notify events, 'hello'")
        .await
        .expect("notify");
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the notification arrives while the listener is idle");
    assert_eq!(got.as_deref(), Some("hello"));

    let admin = pgwarm.admin_target().connect().await;
    let pinned = |clients: &[AdminRow]| clients.iter().filter(|c| !c["pinned"].is_empty()).count();
    assert_eq!(pinned(&wait_for_pinned(&admin, 1).await), 1);
    listener
        .batch_execute("unlisten *")
        .await
        .expect("unlisten");
    assert_eq!(
        pinned(&wait_for_pinned(&admin, 0).await),
        0,
        "UNLISTEN * unpins"
    );
    let pools = wait_for_pool(&admin, "the connection back", |p| p["sv_active"] == "0").await;
    assert_eq!(
        pools["sv_active"], "0",
        "the connection went back: {pools:?}"
    );
    drop(listener);
    let _ = driver.await;
}

#[tokio::test]
async fn held_cursors_and_sql_prepare_last_across_transactions() {
    let db = cluster().fresh_target();
    let pgwarm = pgwarm(&db, "2");
    let client = pgwarm.target().connect().await;
    // Another client opens a transaction in between: the connection given back last is the one
    // it takes, unless the first client kept it.
    let other = pgwarm.target().connect().await;
    client
        .batch_execute(
            "begin; declare c cursor with hold for select g from generate_series(1, 3) g; commit",
        )
        .await
        .expect("declare a held cursor");
    other.batch_execute("begin; select 1").await.expect("begin");
    assert_eq!(value(&client, "fetch 1 from c").await, "1");
    assert_eq!(value(&client, "fetch 1 from c").await, "2");
    client.batch_execute("close c").await.expect("close");
    other.batch_execute("commit").await.expect("commit");

    client
        .batch_execute("prepare twice(int) as select $1 * 2")
        .await
        .expect("prepare");
    other.batch_execute("begin; select 1").await.expect("begin");
    assert_eq!(value(&client, "execute twice(21)").await, "42");
    client
        .batch_execute("deallocate twice")
        .await
        .expect("deallocate");
    other.batch_execute("commit").await.expect("commit");
    let admin = pgwarm.admin_target().connect().await;
    let clients = wait_for_pinned(&admin, 0).await;
    assert!(
        clients.iter().all(|c| c["pinned"].is_empty()),
        "{clients:?}"
    );
}

#[tokio::test]
async fn a_prepared_lock_pins_when_it_runs_and_a_client_that_leaves_takes_its_lock_along() {
    let db = cluster().fresh_target();
    let pgwarm = pgwarm(&db, "1");
    // tokio-postgres prepares in one round trip and executes in another.
    let client = pgwarm.target().connect().await;
    let lock = client
        .prepare("select pg_advisory_lock($1)")
        .await
        .expect("prepare");
    client.execute(&lock, &[&7i64]).await.expect("lock");
    let admin = pgwarm.admin_target().connect().await;
    let clients = wait_for_pinned(&admin, 1).await;
    assert!(
        clients.iter().any(|c| c["pinned"] == "advisory lock"),
        "{clients:?}"
    );
    drop(client);
    // Its connection closes with it: the next client (one connection) takes the lock at once.
    let next = pgwarm.target().connect().await;
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        value(&next, "select pg_try_advisory_lock(7)::text"),
    )
    .await
    .expect("an answer");
    assert_eq!(got, "true", "the lock left with its client");
    next.batch_execute("select pg_advisory_unlock_all()")
        .await
        .expect("unlock");
    drop(next);

    // A client closed inside a transaction that took a lock takes it along too.
    let third = pgwarm.target().connect().await;
    third
        .batch_execute("begin; select pg_advisory_lock(8)")
        .await
        .expect("lock inside a transaction");
    drop(third);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let locks = advisory_locks(&db);
    assert_eq!(locks, "0", "no lock is handed to the next client");
}

/// The SQLSTATE, message and hint a statement was refused with.
async fn refused(client: &tokio_postgres::Client, sql: &str) -> (String, String, String) {
    let error = client
        .batch_execute(sql)
        .await
        .expect_err("refused with PGWARM_PINNING=refuse");
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not a database error: {error:?}"));
    let hint = db.hint().unwrap_or_default().to_owned();
    (db.code().code().to_owned(), db.message().to_owned(), hint)
}

#[tokio::test]
async fn with_pinning_refused_such_statements_fail_and_the_client_goes_on() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_PINNING", "refuse")]);
    let client = pgwarm.target().connect().await;
    for (sql, named) in [
        ("select pg_advisory_lock(42)", "advisory lock"),
        ("create temp table t (n int)", "temporary table"),
        ("listen jobs", "LISTEN"),
        (
            "begin; declare c cursor with hold for select 1",
            "WITH HOLD",
        ),
        ("prepare q as select 1", "SQL PREPARE"),
    ] {
        let (code, message, hint) = refused(&client, sql).await;
        assert_eq!(code, "0A000", "{sql}");
        assert!(message.contains(named), "{sql}: {message}");
        assert!(hint.contains("PGWARM_PINNING=on"), "{sql}: {hint}");
        // Inside a transaction the refusal aborts it, as a failed statement would.
        client.batch_execute("rollback").await.expect("rollback");
        assert_eq!(value(&client, "select 1").await, "1", "after {sql}");
    }
    // The extended protocol: a Parse is refused the same way.
    let error = client
        .prepare("select pg_try_advisory_lock($1)")
        .await
        .expect_err("refused at its Parse");
    assert_eq!(error.code().map(|c| c.code()), Some("0A000"));
    // What ends with its transaction runs.
    client
        .batch_execute(
            "begin; create temp table scratch (n int) on commit drop; \
             select pg_advisory_xact_lock(1); commit",
        )
        .await
        .expect("transaction-scoped state is not refused");
    // State the statements do not show (made inside a DO block) is pinned, as with `on`.
    client
        .batch_execute("do $$ begin perform pg_advisory_lock(9); end $$")
        .await
        .expect("a DO block runs");
    let admin = pgwarm.admin_target().connect().await;
    let clients = wait_for_pinned(&admin, 1).await;
    assert!(
        clients.iter().any(|c| c["pinned"] == "advisory lock"),
        "{clients:?}"
    );
    let locks = advisory_locks(&db);
    assert_eq!(locks, "1", "only the DO block's lock was taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_clients_cannot_take_every_connection() {
    let db = cluster().fresh_target();
    // Two connections: one may be pinned (PGWARM_MAX_PINNED's default), one stays shared.
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "2"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "1s"),
        ],
    );
    let holder = pgwarm.target().connect().await;
    holder
        .batch_execute("select pg_advisory_lock(1)")
        .await
        .expect("the first lock pins");
    let admin = pgwarm.admin_target().connect().await;
    wait_for_pinned(&admin, 1).await;
    let second = pgwarm.target().connect().await;
    second
        .batch_execute("listen jobs")
        .await
        .expect("the statement itself runs");
    // The session decides after the answer: the client's next request finds it closed.
    let error = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match second.batch_execute("select 1").await {
                Err(error) => return error,
                Ok(()) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("the second client is closed within 5 s");
    let db_error = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not a database error: {error:?}"));
    assert_eq!(db_error.code().code(), "53400");
    assert!(
        db_error.message().contains("PGWARM_MAX_PINNED=1"),
        "{}",
        db_error.message()
    );
    // The shared connection still serves everyone else, and the holder keeps its lock.
    let third = pgwarm.target().connect().await;
    assert_eq!(value(&third, "select 1").await, "1");
    assert_eq!(
        value(&holder, "select pg_advisory_unlock(1)::text").await,
        "true"
    );
    wait_for_pinned(&admin, 0).await;
    let pools = show(&admin, "POOLS").await;
    assert_eq!(pools[0]["sv_pinned"], "0", "{pools:?}");
    let stats = show(&admin, "STATS").await;
    assert_eq!(stats[0]["total_pins"], "1", "{stats:?}");
    let listening = db.psql_ok(
        "select count(*) from pg_stat_activity where query = 'listen jobs' \
         and datname = current_database()",
    );
    assert_eq!(
        listening, "0",
        "the refused pin's LISTEN went with its connection"
    );
}

#[tokio::test]
async fn with_pinning_off_the_state_stays_with_the_connection() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_PINNING", "off"), ("PGWARM_POOL_SIZE", "1")]);
    let first = pgwarm.target().connect().await;
    first
        .batch_execute("select pg_advisory_lock(5)")
        .await
        .expect("lock");
    // PgBouncer's behaviour: the connection (and its lock) goes to the next client at once.
    let second = pgwarm.target().connect().await;
    assert_eq!(
        value(
            &second,
            "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"
        )
        .await,
        "1",
        "the next client's backend holds the first client's lock"
    );
    let admin = pgwarm.admin_target().connect().await;
    let clients = show(&admin, "CLIENTS").await;
    assert!(
        clients.iter().all(|c| c["pinned"].is_empty()),
        "{clients:?}"
    );
    let pools = show(&admin, "POOLS").await;
    assert_eq!(pools[0]["sv_pinned"], "0");
}

#[tokio::test]
async fn a_load_keeps_its_backend_until_the_client_leaves() {
    // LOAD of a library outside `plugins/` is for superusers.
    let db = cluster().superuser();
    let pgwarm = pgwarm(&db, "2");
    let loader = pgwarm.target().connect().await;
    loader
        .batch_execute("load 'auto_explain'")
        .await
        .expect("LOAD");
    let admin = pgwarm.admin_target().connect().await;
    let clients = wait_for_pinned(&admin, 1).await;
    assert!(
        clients.iter().any(|c| c["pinned"] == "LOAD"),
        "no catalog shows a library, yet the client is pinned: {clients:?}"
    );
    // The library is still in its backend: its settings exist there.
    let pid = value(&loader, "select pg_backend_pid()::text").await;
    for _ in 0..3 {
        let other = pgwarm.target().connect().await;
        value(&other, "select 1").await;
        assert_eq!(value(&loader, "select pg_backend_pid()::text").await, pid);
    }
    assert_eq!(
        value(
            &loader,
            "select current_setting('auto_explain.log_min_duration')"
        )
        .await,
        "-1"
    );
}
