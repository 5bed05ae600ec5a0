//! Stopping pgwarm (SIGTERM standalone; Lambda's SHUTDOWN takes the same path): clients are
//! told with FATAL 57P01, open transactions are rolled back by the database, every server
//! connection gets Terminate, and no backend of pgwarm's role is left behind.

use pgwarm_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_every_session_and_leaves_no_backend() {
    let db = cluster().fresh_target();
    db.psql_ok("create table t (n int)");
    let pgwarm = Pgwarm::start(&db, &[("PGWARM_POOL_SIZE", "3")]);

    // One client inside a transaction (holding a server connection), one idle between
    // transactions, and a server connection idle in the pool.
    let in_tx = pgwarm.target().connect().await;
    in_tx
        .batch_execute("begin; insert into t values (1)")
        .await
        .expect("begin");
    let idle = pgwarm.target().connect().await;
    let other = pgwarm.target().connect().await;
    let (a, b) = tokio::join!(
        idle.batch_execute("select pg_sleep(0.2)"),
        other.batch_execute("select pg_sleep(0.2)")
    );
    a.and(b)
        .expect("two at once open two more server connections");
    let busy = pgwarm.target().connect().await;
    let sleeper = tokio::spawn(async move { busy.simple_query("select pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cluster().backends_for(&db.user), 3);

    let signalled = Instant::now();
    let (status, log) = pgwarm.terminate();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}\n{log}");
    assert_eq!(
        cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
        0,
        "backends left after the stop"
    );

    let err = in_tx
        .simple_query("select 1")
        .await
        .expect_err("the session was ended");
    assert!(err.is_closed() || sqlstate(&err) == "57P01", "{err}");
    let slept = tokio::time::timeout(Duration::from_secs(5), sleeper)
        .await
        .expect("the sleeping query ended")
        .expect("task");
    let err = slept.expect_err("the running query was cut off");
    assert_eq!(sqlstate(&err), "57P01", "{err}");
    assert_eq!(db.psql_ok("select count(*) from t"), "0", "rolled back");
    assert!(log.contains("every client session ended"), "{log}");
}
