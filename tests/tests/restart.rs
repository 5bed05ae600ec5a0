//! A database restart (`pg_ctl restart -m fast`) under a load of 50 clients through pgwarm. The
//! restart terminates every backend and refuses logins for a moment; clients that were not
//! inside a transaction must see nothing of it but a short wait. In its own test binary: every
//! test of a binary shares its cluster, and this one restarts it.

use pgwarm_tests::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clients of the load, and server connections pgwarm may use for them.
const CLIENTS: usize = 50;
const POOL_SIZE: usize = 4;

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
    // When the database takes logins again, seen by a direct login every few milliseconds.
    let up: Arc<Mutex<Option<Instant>>> = Arc::default();
    let restart = || {
        let started = Instant::now();
        cluster().restart_fast();
        eprintln!("pg_ctl restart took {:?}", started.elapsed());
    };
    let watcher = {
        let (db, up) = (db.clone(), Arc::clone(&up));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
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
    let report = run_fault_load(
        &pgwarm.target(),
        CLIENTS,
        Duration::from_secs(1),
        Duration::from_millis(1500),
        restart,
    )
    .await;
    watcher.await.expect("the login watcher");
    let log = pgwarm.log();
    report.check(&db, POOL_SIZE, &log);

    let up = up
        .lock()
        .unwrap()
        .expect("the restart was seen: logins failed, then worked");
    let back = report
        .first_success_after(up)
        .expect("queries succeeded after the restart");
    eprintln!(
        "restart: {} operations, {} errors ({} inside a transaction), queries again {:?} after the database took logins",
        report.ops,
        report.errors.len(),
        report.errors.iter().filter(|e| e.in_transaction).count(),
        back - up
    );
    assert!(
        back - up < Duration::from_millis(500),
        "queries through pgwarm came back {:?} after the database did",
        back - up
    );
    assert_eq!(
        log.matches("the database is not taking logins").count(),
        1,
        "one log line for the episode, not one per attempt:\n{log}"
    );
    assert!(log.contains("the database takes logins again"), "{log}");
}
