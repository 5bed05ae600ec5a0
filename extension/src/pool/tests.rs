//! Unit tests of the pool: waiting, slots handed over, logins retried until the deadline.

use super::*;
use crate::config::{SslMode, TargetSettings};
use crate::credentials::StaticCredentials;

fn pool(size: usize, wait: Duration) -> Arc<Pool> {
    let target = TargetSettings {
        host: "127.0.0.1".into(),
        port: 1,
        dbname: "d".into(),
        user: "u".into(),
        password: None,
    };
    Pool::new(
        PoolSettings {
            size,
            query_wait_timeout: wait,
            connect_timeout: Duration::from_secs(1),
            server_check_delay: Duration::from_secs(10),
            server_lifetime: Duration::from_secs(3600),
            idle_session_timeout: None,
            watch_headroom: false,
            hosts: Vec::new(),
            target_session_attrs: crate::config::SessionAttrs::ReadWrite,
            plan: Plan::Writer,
            instance_hosts: crate::config::InstanceHosts::Auto,
            max_pinned: 1,
        },
        Arc::new(StaticCredentials::new(&target)),
        Arc::new(TlsSetup::new(SslMode::Disable, None).expect("plain TCP needs no set-up")),
    )
}

#[tokio::test]
async fn a_login_that_keeps_failing_ends_at_the_deadline_not_later() {
    let wait = Duration::from_millis(300);
    let pool = pool(1, wait);
    let started = Instant::now();
    let err = pool
        .checkout()
        .await
        .err()
        .expect("nothing listens on port 1");
    let waited = started.elapsed();
    assert!(matches!(err, PoolError::Unavailable { .. }), "{err}");
    assert!(waited >= wait, "{waited:?}");
    assert!(waited < wait + Duration::from_millis(100), "{waited:?}");
    assert_eq!(pool.stats().open, 0, "the slot was given back");
}

#[tokio::test]
async fn waiters_that_timed_out_do_not_pile_up_while_the_pool_is_held() {
    let pool = pool(1, Duration::from_millis(1));
    // The only slot is taken (as by a client holding its connection for a session).
    pool.lock().open = 1;
    for _ in 0..100 {
        let err = pool
            .checkout()
            .await
            .err()
            .expect("no connection to be had");
        assert!(matches!(err, PoolError::WaitTimeout { .. }), "{err}");
    }
    assert!(pool.stats().waiting <= 1, "{:?}", pool.stats());
    let held = pool.lock().waiters.held();
    assert!(held <= 16, "{held} waiters kept");
}

#[tokio::test]
async fn one_timer_serves_wait_after_wait() {
    let wait = Duration::from_millis(60);
    let pool = pool(1, wait);
    pool.lock().open = 1;
    let mut timer = Box::pin(tokio::time::sleep(Duration::ZERO));
    for _ in 0..3 {
        let started = Instant::now();
        // Bounded here, so that a timer that never fires fails the test instead of hanging it.
        let err = tokio::time::timeout(Duration::from_secs(10), pool.checkout_with(timer.as_mut()))
            .await
            .expect("the wait ended at its bound")
            .err()
            .expect("no connection to be had");
        let waited = started.elapsed();
        assert!(matches!(err, PoolError::WaitTimeout { .. }), "{err}");
        assert!(waited >= wait, "ended early: {waited:?}");
    }
}

#[tokio::test]
async fn a_slot_given_up_goes_to_the_longest_waiter() {
    let pool = pool(1, Duration::from_millis(400));
    pool.lock().open = 1;
    let first = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move { pool.checkout().await.err().map(|e| e.to_string()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.stats().waiting, 1);
    // The holder loses its connection: its slot goes to the waiter, which tries to connect
    // (to a closed port), keeps trying until its deadline, and reports what it met.
    pool.release_slot(None);
    let outcome = tokio::time::timeout(Duration::from_secs(3), first)
        .await
        .expect("the waiter gave up at its deadline")
        .unwrap()
        .expect("connecting to port 1 fails");
    assert!(outcome.contains("could not connect"), "{outcome}");
    assert!(outcome.contains("PGWARM_QUERY_WAIT_TIMEOUT"), "{outcome}");
    assert_eq!(
        pool.stats(),
        PoolStats {
            idle: 0,
            open: 0,
            waiting: 0
        }
    );
}
