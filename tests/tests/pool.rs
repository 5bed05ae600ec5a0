//! Pool behaviour end to end: many clients on few server connections, clean-up after clients
//! that vanish, replacement of dead and hung server connections, and the limits (wait timeout,
//! client count, idle-in-transaction timeout, server lifetime).

use pgwarm_tests::*;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

async fn backend_pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_typed("select pg_backend_pid()", &[])
        .await
        .expect("pg_backend_pid()")[0]
        .get(0)
}

/// Samples the role's backends in the background and remembers the highest count.
struct BackendWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackendWatch {
    fn start(role: &str) -> BackendWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicI64::new(0));
        let role = role.to_owned();
        let thread = {
            let (stop, max) = (Arc::clone(&stop), Arc::clone(&max));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(cluster().backends_for(&role), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        BackendWatch {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("watcher thread");
        }
        self.max.load(Ordering::Relaxed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_share_two_server_connections() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let setup = pgwarm.target().connect().await;
    setup
        .batch_execute("create table hits (client int, n int)")
        .await
        .unwrap();
    let watch = BackendWatch::start(&db.user);

    let target = pgwarm.target();
    let tasks: Vec<_> = (0..200i32)
        .map(|c| {
            let target = target.clone();
            tokio::spawn(async move {
                let client = target.connect().await;
                for n in 0..5i32 {
                    let row = client
                        .query_typed(
                            "select $1::int4 * 1000 + $2::int4",
                            &[(&c, Type::INT4), (&n, Type::INT4)],
                        )
                        .await
                        .unwrap();
                    assert_eq!(row[0].get::<_, i32>(0), c * 1000 + n);
                }
                // A transaction keeps one server connection from BEGIN to COMMIT.
                client.batch_execute("begin").await.unwrap();
                let a: i64 = client
                    .query_typed("select txid_current()", &[])
                    .await
                    .unwrap()[0]
                    .get(0);
                client
                    .query_typed("insert into hits values ($1, 1)", &[(&c, Type::INT4)])
                    .await
                    .unwrap();
                let b: i64 = client
                    .query_typed("select txid_current()", &[])
                    .await
                    .unwrap()[0]
                    .get(0);
                assert_eq!(a, b, "one transaction, one server connection");
                client.batch_execute("commit").await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let max = watch.finish();
    let rows: i64 = setup
        .query_typed("select count(distinct client) from hits", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(rows, 200, "every client's transaction committed");
    assert!(
        max <= 2,
        "saw {max} backends for the role; the pool size is 2"
    );
    assert!(max >= 1);
}

#[tokio::test]
async fn a_client_killed_mid_transaction_leaves_no_lock_or_transaction() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let target = pgwarm.target();
    let setup = target.connect().await;
    setup
        .batch_execute("create table guarded (n int)")
        .await
        .unwrap();
    drop(setup);

    // A client of our own whose socket we can drop without a Terminate.
    let (victim, connection) = tokio_postgres::connect(&target.conn_string(), NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    victim
        .batch_execute(
            "begin; lock table guarded in access exclusive mode; insert into guarded values (1)",
        )
        .await
        .unwrap();
    driver.abort();
    let _ = driver.await;
    drop(victim);

    let role = db.user.clone();
    let clean = poll_until(Duration::from_secs(10), || {
        let open = cluster().psql_super(&format!(
            "select count(*) from pg_stat_activity where usename = {} and state like 'idle in transaction%'",
            quote_literal(&role)
        ));
        let locks = cluster().psql_super(&format!(
            "select count(*) from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'guarded' and l.database = (select oid from pg_database where datname = {})",
            quote_literal(&db.dbname)
        ));
        (open == "0" && locks == "0").then_some(())
    });
    assert!(clean.is_some(), "a transaction or lock was left behind");

    // The one server connection went back to the pool clean: the next client can lock at once.
    let next = target.connect().await;
    next.batch_execute(
        "set lock_timeout = '1s'; begin; lock table guarded in access exclusive mode; commit",
    )
    .await
    .expect("the lock is free");
    let n: i64 = next
        .query_typed("select count(*) from guarded", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(n, 0, "the killed client's insert was rolled back");
    assert_eq!(
        cluster().backends_for(&db.user),
        1,
        "the server connection was reused"
    );
}

#[tokio::test]
async fn a_terminated_pooled_backend_is_replaced_without_a_client_error() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let client = pgwarm.target().connect().await;
    let mut pids = vec![backend_pid(&client).await];
    for round in 0..3 {
        let killed = cluster().terminate_backends_for(&db.user);
        assert!(killed >= 1, "round {round}: nothing to terminate");
        // Wait for the backends to be gone: one told to terminate just after it read a query
        // fails that query, as it would on a direct connection (pgwarm cannot know whether it
        // ran). A backend that died while idle is what pgwarm must hide.
        assert_eq!(
            cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
            0
        );
        pids.push(backend_pid(&client).await);
    }
    pids.dedup();
    assert_eq!(pids.len(), 4, "each round got a new backend: {pids:?}");
    let rows = client
        .query_typed("select 'still fine'", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, &str>(0), "still fine");
}

#[tokio::test]
async fn a_hung_idle_backend_fails_its_health_check_and_is_replaced() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_SERVER_CHECK_DELAY", "100ms"),
            ("PGWARM_CONNECT_TIMEOUT", "1s"),
        ],
    );
    let client = pgwarm.target().connect().await;
    let hung = backend_pid(&client).await;
    // A stopped backend keeps its socket open and silent: only a health check can tell.
    send_signal(hung as u32, "STOP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replacement = tokio::time::timeout(Duration::from_secs(10), backend_pid(&client)).await;
    send_signal(hung as u32, "CONT");
    let replacement = replacement.expect("the query completed");
    assert_ne!(
        replacement, hung,
        "a new server connection served the query"
    );
    pgwarm.wait_for_log("health check timed out", Duration::from_secs(5));
}

#[tokio::test]
async fn a_client_that_waits_too_long_gets_an_error() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "500ms"),
        ],
    );
    let holder = pgwarm.target().connect().await;
    holder.batch_execute("begin").await.unwrap();
    let waiter = pgwarm.target().connect().await;
    let err = waiter.simple_query("select 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    assert!(
        format!("{err:?}").contains("PGWARM_QUERY_WAIT_TIMEOUT"),
        "{err:?}"
    );
    // The holder is untouched, and once it commits others get through.
    holder.batch_execute("select 1; commit").await.unwrap();
    let next = pgwarm.target().connect().await;
    next.simple_query("select 1").await.unwrap();
}

#[tokio::test]
async fn clients_beyond_the_limit_get_53300() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_MAX_CLIENT_CONN", "3")]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pgwarm.target().connect().await);
    }
    let err = pgwarm.target().try_connect().await.expect_err("refused");
    assert_eq!(sqlstate(&err), "53300", "{err:?}");
    assert!(format!("{err:?}").contains("too many clients"), "{err:?}");
    // The held clients still work, and a freed slot is usable again.
    held[0].simple_query("select 1").await.unwrap();
    held.pop();
    let mut again = None;
    for _ in 0..50 {
        if let Ok(client) = pgwarm.target().try_connect().await {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a slot came free");
}

#[tokio::test]
async fn an_idle_transaction_is_ended_after_the_timeout() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_IDLE_TRANSACTION_TIMEOUT", "500ms"),
        ],
    );
    let sleeper = pgwarm.target().connect().await;
    sleeper
        .batch_execute("create table t (n int)")
        .await
        .unwrap();
    sleeper
        .batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        sleeper.simple_query("select 1").await.is_err(),
        "the client was closed"
    );
    pgwarm.wait_for_log("idle-in-transaction timeout", Duration::from_secs(5));
    // The server connection was rolled back and returned: one backend, nothing left open.
    let other = pgwarm.target().connect().await;
    let n: i64 = other
        .query_typed("select count(*) from t", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(n, 0);
    // Activity inside a transaction keeps it alive.
    other.batch_execute("begin").await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        other.simple_query("select 1").await.unwrap();
    }
    other.batch_execute("commit").await.unwrap();
}

#[tokio::test]
async fn server_connections_are_replaced_after_their_lifetime() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_SERVER_LIFETIME", "500ms"),
        ],
    );
    let client = pgwarm.target().connect().await;
    let first = backend_pid(&client).await;
    assert_eq!(backend_pid(&client).await, first, "reused while young");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_ne!(backend_pid(&client).await, first, "replaced when old");
    assert_eq!(
        cluster().wait_for_backends(&db.user, 1, Duration::from_secs(5)),
        1
    );
}

#[tokio::test]
async fn a_batch_sent_to_a_dying_backend_is_replayed_on_another() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "1")]);
    let client = pgwarm.target().connect().await;
    let doomed = backend_pid(&client).await;
    // Stopped, the backend cannot act on the termination yet, so the idle check finds its
    // socket quiet and the client's query is written to it; on SIGCONT it dies with a FATAL
    // before answering, and pgwarm must send the query again elsewhere.
    send_signal(doomed as u32, "STOP");
    cluster().psql_super(&format!("select pg_terminate_backend({doomed})"));
    let query = tokio::spawn(async move {
        let pid = backend_pid(&client).await;
        (client, pid)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_signal(doomed as u32, "CONT");
    let (_client, pid) = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("the query completed")
        .expect("no client error");
    assert_ne!(pid, doomed);
    pgwarm.wait_for_log("replaying on another", Duration::from_secs(5));
}

// Multi-threaded: the test thread blocks in psql while the spawned query must keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_killed_by_an_admin_is_not_run_again() {
    let db = cluster().fresh_target();
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "2")]);
    let client = pgwarm.target().connect().await;
    client
        .batch_execute("create table runs (n int)")
        .await
        .unwrap();
    let runner = tokio::spawn(async move {
        client
            .simple_query("insert into runs values (1); select pg_sleep(30)")
            .await
    });
    let role = db.user.clone();
    let sleeping = poll_until(Duration::from_secs(10), || {
        let pid = cluster().psql_super(&format!(
            "select pid from pg_stat_activity where usename = {} and query like '%pg_sleep(30)%' and state = 'active'",
            quote_literal(&role)
        ));
        (!pid.is_empty()).then_some(pid)
    })
    .expect("the query is running");
    cluster().psql_super(&format!("select pg_terminate_backend({sleeping})"));
    let result = tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("the client heard about it")
        .unwrap();
    assert!(result.is_err(), "the kill reached the client");
    // Not replayed: nothing runs pg_sleep any more, and the insert happened at most once.
    std::thread::sleep(Duration::from_millis(300));
    let still = cluster().psql_super(&format!(
        "select count(*) from pg_stat_activity where usename = {} and query like '%pg_sleep(30)%' and state = 'active'",
        quote_literal(&role)
    ));
    assert_eq!(still, "0", "the killed query was started again");
    let other = pgwarm.target().connect().await;
    let n: i64 = other
        .query_typed("select count(*) from runs", &[])
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(
        n, 0,
        "the killed transaction was rolled back and not repeated"
    );
}
