//! The fleet scenario of `scripts/demo.sh` at a small scale: a database role with 4 connection
//! slots and 8 environments invoked 4 at a time, each under lambda-simulator (INVOKE with its
//! deadline, runtimeDone, a freeze between invocations), each connecting, querying inside a
//! transaction and closing on every invocation, and one in five leaking its connection inside
//! the transaction. Directly, invocations fail with 53300; through a pgwarm per environment with
//! its defaults, or pgwarm chained to one PgBouncer, none fails or runs past the function's
//! timeout, and the database never sees more connections than its slots (or PgBouncer's pool).
//! With room to spare, pgwarm adds nothing to an invocation.

use pgwarm_tests::drivers::fleet::{run, Shape, Way};
use std::time::Duration;

fn shape() -> Shape {
    Shape {
        environments: 8,
        db_slots: 4,
        bursts: 8,
        burst_size: 4,
        pause: Duration::from_millis(200),
        leak_every: 5,
        pgbouncer_pool: 2,
        function_timeout: Duration::from_secs(6),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directly_the_fleet_runs_out_of_connections() {
    let o = run(Way::Direct, &shape()).await;
    assert_eq!(o.invocations, 32);
    assert!(
        o.failures.get("53300").copied().unwrap_or(0) > 0,
        "leaked connections fill the role's slots: {o:?}"
    );
    assert!(o.peak_connections <= 4, "{o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgwarm_no_invocation_fails() {
    let o = run(Way::Pgwarm, &shape()).await;
    assert_eq!(o.invocations, 32);
    assert_eq!(o.failed(), 0, "{o:?}");
    assert_eq!(o.timed_out, 0, "{o:?}");
    assert!(o.peak_connections <= 4, "{o:?}");
    assert!(o.holds > 0, "the database was tight: {o:?}");
    // An operator's view of one environment, read while it was invoked (whether a client shows
    // there depends on the moment: a warm invocation takes a few ms).
    let pools = o.pools.as_deref().expect("SHOW POOLS of one environment");
    assert!(pools.contains("pool_mode=transaction"), "{pools}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgwarm_and_a_central_pgbouncer_no_invocation_fails() {
    let o = run(Way::PgwarmPgbouncer, &shape()).await;
    assert_eq!(o.invocations, 32);
    assert_eq!(o.failed(), 0, "{o:?}");
    assert!(
        o.peak_connections <= 2,
        "PgBouncer's pool bounds the database's connections: {o:?}"
    );
}

/// The same fleet with room to spare: pgwarm keeps its connections warm through the freezes and
/// asks for its next event at once, so no invocation is kept going after its handler is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_room_to_spare_pgwarm_adds_no_post_runtime_duration() {
    let shape = Shape {
        db_slots: 100,
        ..shape()
    };
    let o = run(Way::Pgwarm, &shape).await;
    assert_eq!(o.failed(), 0, "{o:?}");
    eprintln!(
        "post-runtime ms with room: p50 {:.2}, max {:.2}",
        o.post_runtime(0.5),
        o.post_runtime(1.0)
    );
    assert_eq!(o.holds, 0, "{o:?}");
}
