//! A database restart (`pg_ctl restart -m fast`) under a load of 50 clients through pgwarm. The
//! restart terminates every backend and refuses logins for a moment; clients that were not
//! inside a transaction must see nothing of it but a short wait. Then the same load and restart
//! through PgBouncer, for comparison (reported, not asserted). In its own test binary: every
//! test of a binary shares its cluster, and this one restarts it, so its one test runs all.

use pgwarm_tests::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clients of the load, and server connections each pooler may use for them.
const CLIENTS: usize = 50;
const POOL_SIZE: usize = 4;

/// Runs `load` against `target` (in front of `db`) and restarts the database 1 s in. Returns
/// what the clients saw and how long after the database took logins again a query through
/// `target` succeeded, and prints both as `what`.
async fn restart_under(load: &FaultLoad, what: &str, target: &Target, db: &Target) -> LoadReport {
    // When the database takes logins again, seen by a direct login every few milliseconds.
    let up: Arc<Mutex<Option<Instant>>> = Arc::default();
    let watcher = {
        let (db, up) = (db.clone(), Arc::clone(&up));
        tokio::spawn(async move {
            tokio::time::sleep(load_start_margin()).await;
            let mut was_down = false;
            let limit = Instant::now() + Duration::from_secs(30);
            while Instant::now() < limit {
                match db.try_connect().await {
                    Ok(_) if was_down => {
                        *up.lock().unwrap() = Some(Instant::now());
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => was_down = true,
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let mut report = load.run(target, || cluster().restart_fast()).await;
    watcher.await.expect("the login watcher");
    let up = up
        .lock()
        .unwrap()
        .expect("the restart was seen: logins failed, then worked");
    let back = report.first_success_after(up).map(|t| t - up);
    eprintln!(
        "restart, {what}: {} operations, {} errors ({} inside a transaction), {} hangs; \
         queries again {back:?} after the database took logins",
        report.ops,
        report.errors.len(),
        report.errors.iter().filter(|e| e.in_transaction).count(),
        report.hangs.len(),
    );
    report.recovery = back;
    report
}

/// The watcher starts probing a little before the fault (1 s into the load).
fn load_start_margin() -> Duration {
    Duration::from_millis(900)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_is_a_wait_for_clients_outside_a_transaction() {
    let db = cluster().fresh_target();
    db.psql_ok("create table bad_days(client int, n int)");
    let pool_size = POOL_SIZE.to_string();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", pool_size.as_str()),
            ("PGWARM_QUERY_WAIT_TIMEOUT", "20s"),
            ("PGWARM_LOG_LEVEL", "info"),
        ],
    );
    let mixed = FaultLoad::new(CLIENTS);
    let report = restart_under(&mixed, "pgwarm", &pgwarm.target(), &db).await;
    let log = pgwarm.log();
    report.check(&db, POOL_SIZE, &log);
    let back = report
        .recovery
        .expect("queries succeeded after the restart");
    assert!(
        back < Duration::from_millis(500),
        "queries through pgwarm came back {back:?} after the database did"
    );
    assert_eq!(
        log.matches("the database is not taking logins").count(),
        1,
        "one log line for the episode, not one per attempt:\n{log}"
    );
    assert!(log.contains("the database takes logins again"), "{log}");

    // The same with unnamed statements only, which PgBouncer 1.18 in transaction mode can run
    // too, through pgwarm and then through PgBouncer (4 server connections): the comparison.
    let unnamed = FaultLoad {
        named_statements: false,
        ..FaultLoad::new(CLIENTS)
    };
    db.psql_ok("truncate bad_days");
    let report = restart_under(&unnamed, "pgwarm, unnamed", &pgwarm.target(), &db).await;
    report.check(&db, POOL_SIZE, &pgwarm.log());
    let db = cluster().fresh_target();
    db.psql_ok("create table bad_days(client int, n int)");
    let bouncer = Pgbouncer::start(&db, &[]);
    restart_under(&unnamed, "PgBouncer, unnamed", &bouncer.target(), &db).await;
}
