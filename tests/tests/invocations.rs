//! What pgwarm does with what Lambda tells it of each invocation, under lambda-simulator with the
//! test itself as the function's handler (`TestRuntime`): a wait ends with pgwarm's error before
//! the invocation's deadline, and a transaction a handler leaves open does not outlive its
//! invocation in the pool.

use pgwarm_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The function timeout of these tests' invocations.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an environment stays frozen between two invocations where a test says so.
const FROZEN: Duration = Duration::from_millis(200);

/// Runs `work` as the handler of one invocation and returns, with its answer, how long before
/// the invocation's deadline the work ended.
async fn before_deadline<F, Fut>(lambda: &Lambda, runtime: &TestRuntime, work: F) -> Value
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    lambda
        .invoke_here(runtime, FUNCTION_TIMEOUT, |invoked| async move {
            let began = Instant::now();
            let mut answer = work().await;
            let now = Instant::now();
            answer["early_ms"] = json!(invoked.deadline.saturating_duration_since(now).as_millis());
            answer["late_ms"] = json!(now.saturating_duration_since(invoked.deadline).as_millis());
            answer["took_ms"] = json!(began.elapsed().as_millis());
            answer
        })
        .await
}

fn error_json(e: &tokio_postgres::Error) -> Value {
    json!({ "code": sqlstate(e), "error": format!("{e:?}") })
}

/// A handler's connect and one query: `{"ok": true}`, or the error's SQLSTATE and text.
async fn connect_and_query(target: &Target, sql: &str) -> Value {
    match target.try_connect().await {
        Ok(client) => match client.simple_query(sql).await {
            Ok(_) => json!({ "ok": true }),
            Err(e) => error_json(&e),
        },
        Err(e) => error_json(&e),
    }
}

/// The answer of a handler whose wait ended with pgwarm's error `code`, naming `cause` and the
/// invocation's deadline, before that deadline.
fn assert_ended_before_deadline(answer: &Value, code: &str, cause: &str) {
    eprintln!("{answer}");
    assert_eq!(answer["code"], code, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("before the Lambda invocation's deadline"),
        "{answer}"
    );
    assert!(error.contains(cause), "{answer}");
    assert_eq!(
        answer["late_ms"], 0,
        "the error came before the deadline: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_busy_pool_ends_before_the_invocations_deadline() {
    let db = cluster().fresh_target();
    let lambda = Lambda::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "1"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "30s"),
        ],
        true,
    )
    .await;
    let runtime = TestRuntime::new(&lambda);
    let target = lambda.pgwarm().target();
    let answer = before_deadline(&lambda, &runtime, || async move {
        let holder = target.connect().await;
        holder.batch_execute("begin; select 1").await.unwrap();
        let waiter = target.connect().await;
        let error = waiter
            .simple_query("select 1")
            .await
            .expect_err("the pool's one connection is held");
        holder.batch_execute("commit").await.unwrap();
        error_json(&error)
    })
    .await;
    assert_ended_before_deadline(&answer, "57014", "the function's timeout");
    assert!(
        answer["took_ms"].as_u64() > Some(1000),
        "the client waited most of the invocation first: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_waiting_for_a_full_database_ends_before_the_invocations_deadline() {
    let db = cluster().fresh_target();
    cluster().psql_super(&format!("alter role {} connection limit 1", db.user));
    let _holder = db.connect().await;
    let lambda = Lambda::start(&db, &[("PGWARM_QUERY_WAIT_TIMEOUT", "30s")], true).await;
    let runtime = TestRuntime::new(&lambda);
    let target = lambda.pgwarm().target();
    let answer = before_deadline(&lambda, &runtime, || async move {
        let error = target
            .try_connect()
            .await
            .expect_err("the database has no slot for pgwarm's first login");
        error_json(&error)
    })
    .await;
    assert_ended_before_deadline(&answer, "53300", "too many connections for role");
}

/// psycopg's default: every connection is inside a transaction after its first query, so a
/// handler that forgets to close one leaves a transaction open. Two such leaks in an
/// environment with a pool of 2 used to hold both of its server connections for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_a_handler_leaves_open_do_not_outlive_its_invocation() {
    let db = cluster().fresh_target();
    db.psql_ok("create table leaked(n int)");
    let lambda = Lambda::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "2"),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "30s"),
        ],
        true,
    )
    .await;
    let runtime = TestRuntime::new(&lambda);
    let target = lambda.pgwarm().target();
    // The handler keeps its clients (as a module-level variable or a reference cycle would).
    let leaked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for n in 0..2 {
        let (target, leaked) = (target.clone(), std::sync::Arc::clone(&leaked));
        lambda
            .invoke_here(&runtime, FUNCTION_TIMEOUT, |_| async move {
                let client = target.connect().await;
                client
                    .batch_execute(&format!("begin; insert into leaked values ({n})"))
                    .await
                    .unwrap();
                leaked.lock().unwrap().push(client);
                json!({})
            })
            .await;
        // Frozen between invocations, as an environment waits for its next event.
        tokio::time::sleep(FROZEN).await;
    }
    for _ in 0..4 {
        let target = target.clone();
        let answer = before_deadline(&lambda, &runtime, || async move {
            connect_and_query(&target, "select count(*) from leaked").await
        })
        .await;
        assert_eq!(answer["ok"], true, "{answer}\n{}", lambda.pgwarm().log());
        assert!(answer["took_ms"].as_u64() < Some(1000), "no wait: {answer}");
    }
    assert_eq!(leaked.lock().unwrap().len(), 2);
    assert_eq!(
        db.psql_ok("select count(*) from leaked"),
        "0",
        "what the leaked transactions wrote was rolled back"
    );
    let log = lambda.pgwarm().log();
    assert!(
        log.contains("left open by a Lambda invocation that has ended"),
        "{log}"
    );
    assert!(cluster().backends_for(&db.user) <= 2);
}

/// A client that comes back to its leaked connection reads why it was closed, as a driver that
/// reads what is pending before its next query does (libpq).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_back_at_its_leaked_connection_reads_why_it_was_closed() {
    let db = cluster().fresh_target();
    let lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], true).await;
    let runtime = TestRuntime::new(&lambda);
    let addr = lambda.pgwarm().addr();
    let (user, dbname) = (db.user.clone(), db.dbname.clone());
    let wire = tokio::task::spawn_blocking(move || Wire::login(addr, &user, &dbname).0)
        .await
        .unwrap();
    let wire = std::sync::Arc::new(std::sync::Mutex::new(wire));
    let first = std::sync::Arc::clone(&wire);
    lambda
        .invoke_here(&runtime, FUNCTION_TIMEOUT, |_| async move {
            tokio::task::spawn_blocking(move || first.lock().unwrap().query("begin; select 1"))
                .await
                .unwrap();
            json!({})
        })
        .await;
    tokio::time::sleep(FROZEN).await;
    let again = std::sync::Arc::clone(&wire);
    let answer = lambda
        .invoke_here(&runtime, FUNCTION_TIMEOUT, |_| async move {
            tokio::task::spawn_blocking(move || {
                let mut wire = again.lock().unwrap();
                let error = wire.expect_error();
                json!({ "code": error.code, "severity": error.severity, "error": error.message, "closed": wire.is_closed() })
            })
            .await
            .unwrap()
        })
        .await;
    assert_eq!(answer["code"], "25P03", "{answer}");
    assert_eq!(answer["severity"], "FATAL", "{answer}");
    assert_eq!(answer["closed"], true, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("left open by a Lambda invocation"),
        "{answer}"
    );
}

/// One plain invocation: connect, query, close; the request id and whether it worked.
async fn naive_invocation(lambda: &Lambda, runtime: &TestRuntime) -> (Value, String) {
    let target = lambda.pgwarm().target();
    lambda
        .invoke_here_with_id(runtime, FUNCTION_TIMEOUT, |_| async move {
            connect_and_query(&target, "select 1").await
        })
        .await
}

/// With room in the database nothing is added to an invocation but the first (whose login reads
/// the connection use): pgwarm asks for its next event at once, and its connection stays open
/// through the freeze for the next invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_room_to_spare_connections_stay_warm_and_nothing_waits_for_the_freeze() {
    let db = cluster().fresh_target();
    let lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], true).await;
    let runtime = TestRuntime::new(&lambda);
    let mut post_runtime = Vec::new();
    for _ in 0..5 {
        let (answer, id) = naive_invocation(&lambda, &runtime).await;
        assert_eq!(answer["ok"], true, "{answer}");
        post_runtime.push(lambda.post_runtime_ms(&id).await);
        assert_eq!(
            cluster().backends_for(&db.user),
            1,
            "kept through the freeze"
        );
    }
    eprintln!("post-runtime duration with room to spare (ms): {post_runtime:?}");
    assert!(
        !log_holds_after_first(&lambda.pgwarm().log()),
        "{}",
        lambda.pgwarm().log()
    );
    let log = lambda.pgwarm().log();
    assert!(log.contains("subscribed to the Telemetry API"), "{log}");
    assert_eq!(log.matches("opened server connection").count(), 1, "{log}");
    assert!(!log.contains("gave its connections back"), "{log}");
    assert!(!log.contains("the database is tight"), "{log}");
}

/// A role with two connection slots, one held elsewhere: pgwarm's login finds it tight. After
/// the first invocation (whose login learns it) and every later one, pgwarm waits for the
/// runtime's end and closes its connection before the freeze, and every invocation still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_database_gets_its_connections_back_before_each_freeze() {
    let db = cluster().fresh_target();
    cluster().psql_super(&format!("alter role {} connection limit 2", db.user));
    let _elsewhere = db.connect().await;
    let lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], true).await;
    let runtime = TestRuntime::new(&lambda);
    let mut post_runtime = Vec::new();
    for _ in 0..5 {
        let (answer, id) = naive_invocation(&lambda, &runtime).await;
        assert_eq!(answer["ok"], true, "{answer}");
        post_runtime.push(lambda.post_runtime_ms(&id).await);
        assert_eq!(
            cluster().wait_for_backends(&db.user, 1, Duration::from_secs(2)),
            1,
            "only the connection held elsewhere is left while frozen"
        );
    }
    eprintln!("post-runtime duration when tight (ms): {post_runtime:?}");
    let log = lambda.pgwarm().log();
    assert!(log.contains("the database is tight"), "{log}");
    assert_eq!(
        log.matches("gave its connections back before the freeze")
            .count(),
        5,
        "{log}"
    );
    // The console tells the same (read while an invocation thaws the environment).
    let console = lambda.pgwarm().admin_target();
    let shown = lambda
        .invoke_here(&runtime, FUNCTION_TIMEOUT, |_| async move {
            let console = console.connect().await;
            let rows = show(&console, "LAMBDA").await;
            let value = |key: &str| {
                rows.iter()
                    .find(|r| r.get("key").map(String::as_str) == Some(key))
                    .and_then(|r| r.get("value").cloned())
                    .unwrap_or_default()
            };
            json!({
                "tight": value("database_tight"),
                "use": value("database_use"),
                "holds": value("holds"),
                "given_back": value("given_back"),
            })
        })
        .await;
    assert_eq!(shown["tight"], "yes", "{shown}");
    assert!(
        shown["use"]
            .as_str()
            .unwrap_or_default()
            .contains("CONNECTION LIMIT 2"),
        "{shown}"
    );
    assert_eq!(shown["holds"], "5", "{shown}");
    assert_eq!(shown["given_back"], "5", "{shown}");
}

/// A runtimeDone that never comes holds pgwarm's next-event request no longer than the
/// invocation's deadline (less a margin); after two such invocations in a row pgwarm does not
/// wait for it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_done_that_never_comes_stalls_two_invocations_at_most() {
    let db = cluster().fresh_target();
    cluster().psql_super(&format!("alter role {} connection limit 2", db.user));
    let _elsewhere = db.connect().await;
    let lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], true).await;
    lambda
        .sim
        .set_telemetry_delivery_policy(
            "platform.runtimeDone",
            lambda_simulator::DeliveryPolicy::Suppress,
        )
        .await;
    let runtime = TestRuntime::new(&lambda);
    // The first invocation (which learns the database is tight) and the second wait for
    // runtimeDone in vain.
    let mut post_runtime = Vec::new();
    for _ in 0..4 {
        let (answer, id) = naive_invocation(&lambda, &runtime).await;
        assert_eq!(answer["ok"], true, "{answer}");
        post_runtime.push(lambda.post_runtime_ms(&id).await);
    }
    eprintln!("post-runtime duration without runtimeDone (ms): {post_runtime:?}");
    // No further than the deadline (pgwarm stops 100 ms before it; the simulator's own limit on
    // an extension is 2 s), with room for a loaded machine's scheduling.
    let bound = (FUNCTION_TIMEOUT + Duration::from_millis(500)).as_millis() as f64;
    assert!(
        post_runtime.iter().all(|&ms| ms < bound),
        "{post_runtime:?}"
    );
    let stalled = post_runtime.iter().filter(|&&ms| ms > 500.0).count();
    assert_eq!(stalled, 2, "two invocations waited: {post_runtime:?}");
    let log = lambda.pgwarm().log();
    assert_eq!(log.matches("no platform.runtimeDone").count(), 2, "{log}");
    assert_eq!(
        log.matches("pgwarm no longer waits for it").count(),
        1,
        "{log}"
    );
}

/// Whether pgwarm waited for a runtimeDone after any invocation but the first (debug lines).
fn log_holds_after_first(log: &str) -> bool {
    log.matches("ended what the invocation left open before the freeze")
        .count()
        > 1
}
