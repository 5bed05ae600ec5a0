//! One execution environment's life, measured: invocations of `handler-example` timed from the
//! event to the result, the thaw check (the database ends every backend while the environment
//! is frozen; the next invocation must not notice), SHUTDOWN timed to pgwarm's exit, and
//! pgwarm's start-up as an extension. The `demo` and `lambda-run` drivers and `footprint` are
//! built on these, over [`Lambda`], so they run the lifecycle code the tests check.

use crate::harness::process_state;
use crate::harness::{in_lambda, simulator, Lambda};
use crate::harness::{Pgwarm, PgwarmBuilder};
use serde_json::json;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lambda's SHUTDOWN budget for extensions: pgwarm must be gone within it.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(2);

/// How long a step without a deadline of its own may take (terminated backends to go away,
/// pgwarm to listen or register).
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One invocation: its time from enqueueing the event (which thaws the environment) to the
/// result, and what the handler answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub wall_ms: f64,
    pub outcome: Result<Answer, String>,
}

/// What `handler-example` answers: the time its database work took, and the visits it counted.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub db_ms: f64,
    pub visits: i64,
}

impl Invocation {
    pub fn answer(&self) -> Option<Answer> {
        self.outcome.as_ref().ok().copied()
    }
}

/// Invokes the function once with `{"source": <source>}`.
pub async fn invoke(lambda: &Lambda, source: &str) -> Invocation {
    let (state, wall) = lambda.invoke_timed(json!({ "source": source })).await;
    let payload = state.response.as_ref().map(|r| &r.payload);
    let visits = payload.and_then(|p| p["visits"].as_i64());
    let db_ms = payload.and_then(|p| p["db_ms"].as_f64());
    let outcome = match (&state.error, visits, db_ms) {
        (None, Some(visits), Some(db_ms)) => Ok(Answer { db_ms, visits }),
        (Some(error), ..) => Err(format!("{error:?}")),
        (None, ..) => Err(format!("unexpected answer {}", json!(payload))),
    };
    Invocation {
        wall_ms: ms(wall),
        outcome,
    }
}

/// The thaw check's result: how many backends the database terminated, and the invocation after
/// the thaw.
#[derive(Debug, Clone)]
pub struct ThawCheck {
    pub terminated: i64,
    pub invocation: Invocation,
}

impl ThawCheck {
    /// The check means something only if there was a backend to terminate.
    pub fn passed(&self) -> bool {
        self.terminated > 0 && self.invocation.outcome.is_ok()
    }
}

/// Frozen, the database (through `superuser`, a superuser's connection) terminates every backend
/// of `role` and waits until they are gone; then one invocation.
pub async fn thaw_check(
    lambda: &Lambda,
    superuser: &tokio_postgres::Client,
    role: &str,
) -> Result<ThawCheck, String> {
    let sql_error = |e: tokio_postgres::Error| format!("as superuser: {e}");
    let backends = "FROM pg_stat_activity WHERE usename = $1 \
                    AND backend_type = 'client backend' AND pid <> pg_backend_pid()";
    let terminated: i64 = superuser
        .query_one(
            &format!("SELECT count(pg_terminate_backend(pid)) {backends}"),
            &[&role],
        )
        .await
        .map_err(sql_error)?
        .get(0);
    let asked = Instant::now();
    loop {
        let left: i64 = superuser
            .query_one(&format!("SELECT count(*) {backends}"), &[&role])
            .await
            .map_err(sql_error)?
            .get(0);
        if left == 0 {
            break;
        }
        if asked.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "{left} backends of {role} still there after termination"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let invocation = invoke(lambda, "thaw-check").await;
    Ok(ThawCheck {
        terminated,
        invocation,
    })
}

/// SHUTDOWN as pgwarm lived it.
#[derive(Debug)]
pub struct Shutdown {
    /// From SHUTDOWN to pgwarm's exit; `None` when it was not gone within the budget.
    pub exit_ms: Option<f64>,
    /// `None` while it still runs.
    pub status: Option<ExitStatus>,
    /// pgwarm itself, exited or not, for its log.
    pub pgwarm: Pgwarm,
}

impl Shutdown {
    /// Exited with status 0 within Lambda's budget.
    pub fn clean(&self) -> bool {
        self.exit_ms.is_some() && self.status.is_some_and(|s| s.success())
    }

    /// `0`, `1`, `signal9`, or `running`.
    pub fn status_text(&self) -> String {
        match self.status {
            None => "running".to_owned(),
            Some(s) => s.code().map_or_else(
                || format!("signal{}", s.signal().unwrap_or_default()),
                |c| c.to_string(),
            ),
        }
    }
}

/// Sends SHUTDOWN to an environment started with pgwarm and times pgwarm's exit.
pub async fn shutdown(lambda: Lambda) -> Shutdown {
    let pid = lambda.pgwarm().pid();
    let sent = Instant::now();
    // Polled from its own thread, so the time does not depend on the shutdown steps below.
    let exited = tokio::task::spawn_blocking(move || {
        while sent.elapsed() < SHUTDOWN_BUDGET {
            if matches!(process_state(pid), None | Some('Z' | 'X')) {
                return Some(sent.elapsed());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    });
    let mut pgwarm = lambda.shutdown().await.expect("started with pgwarm");
    let exited = exited.await.expect("exit watcher");
    let status = pgwarm.wait_exit(Duration::from_millis(100));
    Shutdown {
        exit_ms: exited.map(ms),
        status,
        pgwarm,
    }
}

/// One start of pgwarm as an extension, in ms from exec.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    /// To the first TCP connect that succeeds.
    pub listening_ms: f64,
    /// To the simulator's own registration timestamp.
    pub registered_ms: f64,
}

/// Starts pgwarm from `pgwarm` under a fresh simulator, times exec to listening and to
/// registered, then SHUTDOWN. Listening is probed with a connect every 0.1 ms (pgwarm sees a
/// client that leaves at once): /proc/net/tcp, which the harness reads elsewhere to wait for a
/// listener, takes milliseconds to read on some machines, too coarse here. Err, with pgwarm's
/// log, when it did not listen, register or exit cleanly.
pub async fn startup(pgwarm: PgwarmBuilder) -> Result<Startup, String> {
    let nothing = |_| async { Ok(()) };
    startup_then(pgwarm, nothing)
        .await
        .map(|(startup, ())| startup)
}

/// [`startup`], with `then` run once pgwarm has registered and before SHUTDOWN (given pgwarm's
/// address): what a cold start's first invocation does, say. Its error is the start's.
pub async fn startup_then<T, Then, Fut>(
    pgwarm: PgwarmBuilder,
    then: Then,
) -> Result<(Startup, T), String>
where
    Then: FnOnce(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let sim = simulator(false).await;
    let mut pgwarm = in_lambda(pgwarm, &sim).spawn_nowait();
    let (pid, addr, started) = (pgwarm.pid(), pgwarm.addr(), pgwarm.started());
    // The simulator stamps registrations with the wall clock: the spawn on that clock.
    let spawned_at = SystemTime::now() - started.elapsed();
    let listening = tokio::task::spawn_blocking(move || {
        while started.elapsed() < STEP_TIMEOUT {
            // Refused at once until pgwarm listens.
            if std::net::TcpStream::connect_timeout(&addr, STEP_TIMEOUT).is_ok() {
                return Some(started.elapsed());
            }
            if matches!(process_state(pid), None | Some('Z' | 'X')) {
                return None;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        None
    });
    let registered = sim
        .wait_for(|| async { sim.extension_count().await == 1 }, STEP_TIMEOUT)
        .await;
    let listening = listening.await.expect("listener watcher");
    let (Some(listening), Ok(())) = (listening, registered) else {
        return Err(format!(
            "pgwarm did not listen and register\n--- pgwarm log ---\n{}",
            pgwarm.log()
        ));
    };
    let registered_at = sim.get_registered_extensions().await[0].registered_at;
    let spawned_us = spawned_at
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as i64;
    let registered_ms = (registered_at.timestamp_micros() - spawned_us) as f64 / 1000.0;
    let then = then(addr).await;
    sim.graceful_shutdown(lambda_simulator::ShutdownReason::Spindown)
        .await;
    if !pgwarm
        .wait_exit(SHUTDOWN_BUDGET)
        .is_some_and(|s| s.success())
    {
        return Err(format!(
            "pgwarm did not exit cleanly on SHUTDOWN\n--- pgwarm log ---\n{}",
            pgwarm.log()
        ));
    }
    let startup = Startup {
        listening_ms: ms(listening),
        registered_ms,
    };
    Ok((startup, then?))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
