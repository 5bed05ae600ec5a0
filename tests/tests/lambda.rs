//! pgwarm as a Lambda extension, driven by lambda-simulator with the real `handler-example` as
//! the function: many invocations on a couple of server connections, a freeze during which the
//! database drops every pooled backend, SHUTDOWN inside its deadline, Managed Instances, and a
//! configuration error reported through the init-error call.

use pgwarm_tests::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_invocations_use_a_couple_of_server_connections() {
    let db = cluster().fresh_target();
    let mut lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], true).await;
    assert_eq!(lambda.registered_events().await, ["INVOKE", "SHUTDOWN"]);
    lambda.start_handler(&lambda.pgwarm().target().conn_string());
    for i in 1..=100i64 {
        let state = lambda.invoke(json!({ "source": "test" })).await;
        assert!(state.error.is_none(), "invocation {i}: {:?}", state.error);
        let payload = state.response.expect("a response").payload;
        assert_eq!(payload["visits"], json!(i), "{payload}");
        assert!(payload["db_ms"].as_f64().is_some(), "{payload}");
    }
    let log = lambda.pgwarm().log();
    assert_eq!(
        count(&log, "client logged in"),
        100,
        "one client connection per invocation"
    );
    let opened = count(&log, "opened server connection");
    assert!(
        (1..=2).contains(&opened),
        "{opened} server connections opened"
    );
    assert!(cluster().backends_for(&db.user) <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thaw_after_the_database_dropped_every_backend_goes_unnoticed() {
    let db = cluster().fresh_target();
    let mut lambda = Lambda::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "2"),
            ("PGWARM_SERVER_CHECK_DELAY", "500ms"),
        ],
        true,
    )
    .await;
    lambda.start_handler(&lambda.pgwarm().target().conn_string());
    let first = lambda.invoke(json!({})).await;
    assert!(first.error.is_none(), "{:?}", first.error);

    // Frozen: the database ends every pooled backend and time passes.
    assert!(cluster().terminate_backends_for(&db.user) >= 1);
    assert_eq!(
        cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
        0
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    for _ in 0..3 {
        let state = lambda.invoke(json!({})).await;
        assert!(state.error.is_none(), "{:?}", state.error);
        assert!(state.response.is_some());
    }
    // The thaw check (on INVOKE) and the handler's first query start together: whichever
    // reaches the dead connection first replaces it, and the other finds a live one. Either
    // way it is replaced before a client gets it, and the invocations above saw no error.
    let log = lambda.pgwarm().log();
    assert!(
        log.contains("idle server connection was closed by the database; replacing it"),
        "{log}"
    );
    assert!(log.contains("INVOKE"), "the thaw check ran: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_pgwarm_within_two_seconds_and_leaves_no_backend() {
    let db = cluster().fresh_target();
    let mut lambda = Lambda::start(&db, &[("PGWARM_POOL_SIZE", "2")], true).await;
    lambda.start_handler(&lambda.pgwarm().target().conn_string());
    for _ in 0..3 {
        assert!(lambda.invoke(json!({})).await.error.is_none());
    }
    assert!(cluster().backends_for(&db.user) >= 1);
    let sent = Instant::now();
    let mut pgwarm = lambda.shutdown().await.expect("pgwarm ran");
    let status = pgwarm.wait_exit(Duration::from_secs(2));
    let took = sent.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "pgwarm did not exit cleanly within 2 s ({status:?})\n{}",
        pgwarm.log()
    );
    assert_eq!(
        cluster().wait_for_backends(&db.user, 0, Duration::from_secs(2)),
        0,
        "backends left after SHUTDOWN"
    );
    let log = pgwarm.log();
    assert!(log.contains("SHUTDOWN"), "{log}");
    assert!(log.contains("every client session ended"), "{log}");
    eprintln!("SHUTDOWN to exit: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_instances_register_for_shutdown_only_and_serve_many_clients() {
    let db = cluster().fresh_target();
    let lambda = Lambda::start(
        &db,
        &[
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
        ],
        false,
    )
    .await;
    assert_eq!(lambda.registered_events().await, ["SHUTDOWN"]);
    // Never frozen, so nothing to hear of an invocation's end.
    assert!(
        !lambda.pgwarm().log().contains("Telemetry API"),
        "{}",
        lambda.pgwarm().log()
    );
    assert!(
        lambda.pgwarm().log().contains("pool_size=8"),
        "{}",
        lambda.pgwarm().log()
    );

    let mut clients = Vec::new();
    for c in 0..50i32 {
        let target = lambda.pgwarm().target();
        clients.push(tokio::spawn(async move {
            let client = target.connect().await;
            for i in 0..20i32 {
                let n: i32 = client
                    .query_one("select $1::int + 1", &[&(c * 100 + i)])
                    .await
                    .expect("query")
                    .get(0);
                assert_eq!(n, c * 100 + i + 1);
            }
        }));
    }
    for client in clients {
        tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("50 clients finish")
            .expect("client task");
    }
    assert!(cluster().backends_for(&db.user) <= 8);
    let mut pgwarm = lambda.shutdown().await.expect("pgwarm ran");
    assert!(pgwarm.wait_exit(Duration::from_secs(2)).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_fails_init_with_a_message_naming_it() {
    let db = cluster().fresh_target();
    let sim = lambda_simulator::Simulator::builder()
        .function_name("pgwarm-test")
        .build()
        .await
        .expect("simulator");
    let proxy = InitErrorProxy::start(sim.addr()).await;
    let mut builder = Pgwarm::builder(&db);
    for (k, v) in lambda_env(&sim) {
        builder = builder.env(&k, &v);
    }
    let (status, log) = builder
        .env("AWS_LAMBDA_RUNTIME_API", &proxy.addr.to_string())
        .env("PGWARM_POOL_SIZE", "lots")
        .run_to_exit();
    assert_eq!(status.code(), Some(2), "{log}");
    let calls = proxy.calls();
    assert_eq!(calls.len(), 1, "one init-error call: {calls:?}\n{log}");
    assert_eq!(calls[0].error_type, "Extension.ConfigError");
    let message = calls[0].body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("PGWARM_POOL_SIZE=\"lots\""), "{message}");
    assert!(!message.contains(&db.password) && !log.contains(&db.password));
    assert_eq!(sim.extension_count().await, 1, "it registered to report");
}
