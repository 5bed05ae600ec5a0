//! pgwarm in front of another transaction pooler (`PGWARM_UPSTREAM_POOLER=on`): Debian's
//! PgBouncer in transaction mode, which runs each transaction on whichever backend is free, so
//! nothing pgwarm prepares lasts beyond one. Named statements from psycopg and pgbench, and
//! isolation levels, must work with no error.

use pgwarm_tests::*;

struct Chain {
    db: Target,
    _bouncer: Pgbouncer,
    pgwarm: Pgwarm,
}

/// PostgreSQL ← PgBouncer (transaction mode, 4 backends) ← pgwarm (4 server connections).
fn chain() -> Chain {
    let db = cluster().fresh_target();
    let bouncer = Pgbouncer::start(&db, &[]);
    let pgwarm = Pgwarm::start(
        &bouncer.target(),
        &[
            ("PGWARM_UPSTREAM_POOLER", "on"),
            ("PGWARM_POOL_SIZE", "4"),
            ("PGWARM_SSLMODE", "disable"),
        ],
    );
    Chain {
        db,
        _bouncer: bouncer,
        pgwarm,
    }
}

#[test]
fn psycopg_named_statements_from_several_clients_through_pgbouncer() {
    let chain = chain();
    run_python_case(
        "fidelity.py",
        "many_prepared",
        &chain.pgwarm.target(),
        &chain.db,
    );
    let log = chain.pgwarm.log();
    assert!(!log.contains("keep disappearing"), "{log}");
}

#[test]
fn pgbench_prepared_through_pgbouncer_has_no_failures() {
    let chain = chain();
    let target = chain.pgwarm.target();
    pgbench(&chain.db, &["-i", "-s", "1", "-q"]);
    let out = pgbench(
        &target,
        &[
            "-n", "-M", "prepared", "-S", "-c", "8", "-j", "2", "-T", "4",
        ],
    );
    assert!(out.contains("number of failed transactions: 0"), "{out}");
    assert!(pgbench_processed(&out) > 100, "{out}");
}

#[tokio::test]
async fn isolation_levels_and_tokio_postgres_statements_through_pgbouncer() {
    let chain = chain();
    let client = chain.pgwarm.target().connect().await;
    let doubled = client.prepare("select $1::int * 2").await.unwrap();
    for i in 0..50i32 {
        let row = client.query_one(&doubled, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
    }
    let levels = simple_rows(
        &client,
        "begin isolation level serializable; show transaction_isolation",
    )
    .await;
    assert_eq!(levels, [["serializable"]]);
    client.batch_execute("commit").await.unwrap();
    let levels = simple_rows(
        &client,
        "begin; set transaction isolation level repeatable read; show transaction_isolation",
    )
    .await;
    assert_eq!(levels, [["repeatable read"]]);
    client.batch_execute("commit").await.unwrap();
}

/// A server that refuses the `options` startup parameter (here PgBouncer without it in
/// `ignore_startup_parameters`; likewise PostgreSQL before 14 refuses idle_session_timeout):
/// pgwarm logs in without PGWARM_IDLE_SESSION_TIMEOUT, says so once, and works.
#[tokio::test]
async fn a_server_that_refuses_idle_session_timeout_is_logged_in_to_without_it() {
    let db = cluster().fresh_target();
    let bouncer = Pgbouncer::start(&db, &[("ignore_startup_parameters", "extra_float_digits")]);
    let pgwarm = Pgwarm::start(
        &bouncer.target(),
        &[("PGWARM_SSLMODE", "disable"), ("PGWARM_POOL_SIZE", "2")],
    );
    for _ in 0..3 {
        let client = pgwarm.target().connect().await;
        assert_eq!(simple_rows(&client, "select 'in'").await, [["in"]]);
    }
    let log = pgwarm.log();
    assert_eq!(
        log.matches("refused idle_session_timeout").count(),
        1,
        "said once:\n{log}"
    );
}
