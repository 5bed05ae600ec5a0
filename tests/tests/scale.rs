//! One environment, many clients (Lambda Managed Instances' case): 1,000 idle clients and 200
//! active ones on a pool of 4, with every answer checked; PGWARM_MAX_CLIENT_CONN enforced with
//! FATAL 53300 and nothing else disturbed. It prints pgwarm's resident memory at idle, with the
//! idle clients (the cost of one), and the active clients' p99 latency: README quotes a run
//! with the release binary (`PGWARM_BIN=target/layer/x86_64/extensions/pgwarm`).

use pgwarm_tests::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const IDLE: usize = 1000;
const ACTIVE: usize = 200;
const QUERIES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_and_two_hundred_active_clients_on_a_pool_of_four() {
    let db = cluster().fresh_target();
    let limit = (IDLE + ACTIVE).to_string();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_POOL_SIZE", "4"),
            ("PGWARM_MAX_CLIENT_CONN", limit.as_str()),
            ("PGWARM_LOG_LEVEL", "info"),
        ],
    );
    pgwarm.warm_up().await;
    let at_idle = pgwarm.settled_rss_kib().await;
    let idle = pgwarm.idle_clients(IDLE).await;
    let with_idle = pgwarm.settled_rss_kib().await;

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..ACTIVE {
        let (target, latencies) = (pgwarm.target(), Arc::clone(&latencies));
        tasks.push(tokio::spawn(async move {
            let client = target.connect().await;
            for q in 0..QUERIES as i32 {
                let started = Instant::now();
                let row = client
                    .query_one("select $1::int + $2::int", &[&(c as i32), &q])
                    .await
                    .unwrap_or_else(|e| panic!("client {c}, query {q}: {e}"));
                latencies.lock().unwrap().push(started.elapsed());
                assert_eq!(row.get::<_, i32>(0), c as i32 + q, "client {c}, query {q}");
            }
            client
        }));
    }
    let mut active = Vec::new();
    for task in tasks {
        active.push(task.await.expect("an active client failed"));
    }
    let with_all = rss_kib(pgwarm.pid());

    // One more is over the limit: FATAL 53300, and everyone else goes on.
    let over = pgwarm
        .target()
        .try_connect()
        .await
        .expect_err("over PGWARM_MAX_CLIENT_CONN");
    assert_eq!(sqlstate(&over), "53300", "{over:?}");
    assert_eq!(simple_rows(&active[0], "select 'still'").await, [["still"]]);
    let mut idle = idle;
    let replies = idle[0].run(&Batch::new().query("select 'idle one'"));
    assert_eq!(Reply::values(&replies), ["idle one"]);
    assert!(cluster().backends_for(&db.user) <= 4, "the pool size is 4");

    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "scale: RSS {at_idle} KiB at idle, {with_idle} KiB with {IDLE} idle clients ({:.1} KiB \
         each), {with_all} KiB with {ACTIVE} active too; {} queries, p50 {:?}, p99 {:?}",
        (with_idle.saturating_sub(at_idle)) as f64 / IDLE as f64,
        latencies.len(),
        p(0.5),
        p(0.99)
    );
}
