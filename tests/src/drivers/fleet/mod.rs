//! A fleet of Lambda execution environments against a database with few connection slots: the
//! problem pgwarm exists for, played at a scale this machine can run.
//!
//! Each environment runs the naive handler on every invocation: connect, one query inside a
//! transaction (psycopg's default), commit and close; every `leak_every`-th invocation forgets
//! to commit and close (an error path), so its connection stays idle inside a transaction for as
//! long as the environment lives. Invocations come in bursts, each a share of the environments
//! at once, and each has the function's timeout: one that runs past it has failed.
//!
//! The same bursts run three ways: the handler connecting to the database directly; through a
//! pgwarm per environment, with pgwarm's defaults; and through pgwarm (defaults, with
//! `PGWARM_UPSTREAM_POOLER=on`) chained to one central PgBouncer. Each pgwarm runs as the
//! extension of its own environment under lambda-simulator, with the test as the function's
//! runtime ([`crate::harness::TestRuntime`]): INVOKE with its deadline, the Telemetry API's
//! runtimeDone, and a freeze (SIGSTOP) once the runtime and pgwarm have asked for their next
//! event, as Lambda does. The database's role has a `CONNECTION LIMIT`, so a full database
//! answers `too many connections for role`, as RDS does at `max_connections`. A sampler counts the
//! role's backends every 50 ms.

mod report;

pub use report::{table, write_files};

use crate::harness::{
    cluster, number, pools, AdminRow, Lambda, Pgbouncer, Pgwarm, Target, TestRuntime,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often one environment's `SHOW POOLS` is read while a burst invokes it.
pub(crate) const POOLS_EVERY: Duration = Duration::from_millis(20);

/// How the fleet reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Direct,
    Pgwarm,
    PgwarmPgbouncer,
}

impl Way {
    pub const ALL: [Way; 3] = [Way::Direct, Way::Pgwarm, Way::PgwarmPgbouncer];

    /// For file names.
    pub fn slug(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Pgwarm => "pgwarm",
            Way::PgwarmPgbouncer => "pgwarm-pgbouncer",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Pgwarm => "pgwarm",
            Way::PgwarmPgbouncer => "pgwarm + PgBouncer",
        }
    }
}

/// The fleet's shape.
#[derive(Debug, Clone)]
pub struct Shape {
    pub environments: usize,
    /// The role's connection limit: the database's slots for this application.
    pub db_slots: usize,
    pub bursts: usize,
    /// Environments invoked at once in each burst.
    pub burst_size: usize,
    /// Pause between bursts.
    pub pause: Duration,
    /// Every this many invocations, one leaks its connection inside a transaction.
    pub leak_every: usize,
    /// The central PgBouncer's pool, for `PgwarmPgbouncer`.
    pub pgbouncer_pool: usize,
    /// The function's timeout: an invocation that runs past it has failed.
    pub function_timeout: Duration,
}

/// What one way of running the fleet gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub way: Way,
    pub invocations: usize,
    /// Invocations that failed with an error, by the SQLSTATE (or "no code") they failed with.
    pub failures: BTreeMap<String, usize>,
    /// Invocations that ran past the function's timeout.
    pub timed_out: usize,
    /// Invocations after which pgwarm waited for the runtime's end to give its connections back
    /// before the freeze (the database was tight), from the environments' logs.
    pub holds: usize,
    /// The database's connections for the role: the most seen, and (ms, count) samples.
    pub peak_connections: i64,
    pub samples: Vec<(u64, i64)>,
    /// Latency of the successful invocations, sorted, in ms.
    pub latencies_ms: Vec<f64>,
    /// How long each invocation's extension kept it going after the runtime was done (what
    /// Lambda bills as `PostRuntimeExtensionsDuration`), sorted, in ms; pgwarm's ways only.
    pub post_runtime_ms: Vec<f64>,
    /// `SHOW POOLS` of one environment at the busiest moment seen: in each burst, the console of
    /// the environment in its middle is read every [`POOLS_EVERY`] while it is invoked; busiest
    /// is most clients waiting, then the longest wait. As `column=value` pairs (pgwarm's ways
    /// only): what an operator sees while it works.
    pub pools: Option<String>,
}

impl Outcome {
    /// Invocations that failed, with an error or past the function's timeout.
    pub fn failed(&self) -> usize {
        self.failures.values().sum::<usize>() + self.timed_out
    }

    /// The `q` quantile of the successful invocations' latency, in ms (NaN when none succeeded).
    pub fn latency_ms(&self, q: f64) -> f64 {
        crate::drivers::figures::quantile(&self.latencies_ms, q).unwrap_or(f64::NAN)
    }

    /// The `q` quantile of the post-runtime duration, in ms (NaN for the direct way).
    pub fn post_runtime(&self, q: f64) -> f64 {
        crate::drivers::figures::quantile(&self.post_runtime_ms, q).unwrap_or(f64::NAN)
    }
}

/// Invocations that failed through pgwarm's ways (with an error or past the function's
/// timeout): the verdict of the `fleet` binary and of the demo's fleet step.
pub fn failed_through_pgwarm(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| o.way != Way::Direct)
        .map(Outcome::failed)
        .sum()
}

/// How one invocation ended.
enum Ended {
    /// Its time in ms, and the connection it leaked.
    Done(f64, Option<tokio_postgres::Client>),
    /// The SQLSTATE it failed with.
    Failed(String),
    TimedOut,
}

/// One execution environment: its Lambda (simulator and pgwarm, when the way has pgwarm) and
/// the connections its handler leaked, which live as long as it does.
struct Environment {
    lambda: Option<(Lambda, TestRuntime)>,
    target: Target,
    leaked: Mutex<Vec<tokio_postgres::Client>>,
}

impl Environment {
    async fn start(way: Way, upstream: &Target, db: &Target) -> Environment {
        if way == Way::Direct {
            return Environment {
                lambda: None,
                target: db.clone(),
                leaked: Mutex::default(),
            };
        }
        // pgwarm's defaults: nothing but its log format (text) and metrics (off) is set.
        let mut pgwarm = Pgwarm::builder(upstream)
            .env("PGWARM_LOG_LEVEL", "info")
            .env("PGWARM_METRICS", "off");
        if way == Way::PgwarmPgbouncer {
            pgwarm = pgwarm.env("PGWARM_UPSTREAM_POOLER", "on");
        }
        let lambda = Lambda::start_with(Some(pgwarm), true).await;
        let runtime = TestRuntime::new(&lambda);
        Environment {
            target: lambda.pgwarm().target(),
            lambda: Some((lambda, runtime)),
            leaked: Mutex::default(),
        }
    }

    /// One invocation of the naive handler: the outcome, the post-runtime duration, and, when
    /// `watch`, the busiest `SHOW POOLS` row read while it ran (the environment is thawed only
    /// then).
    async fn invoke(
        &self,
        leak: bool,
        timeout: Duration,
        watch: bool,
    ) -> (Ended, Option<f64>, Option<AdminRow>) {
        let Some((lambda, runtime)) = &self.lambda else {
            let deadline = tokio::time::Instant::now() + timeout;
            return (naive(&self.target, leak, deadline).await, None, None);
        };
        let mut ended = None;
        let mut busiest = None;
        let (_, id) = lambda
            .invoke_here_with_id(runtime, timeout, |invoked| {
                let target = &self.target;
                let (ended, busiest) = (&mut ended, &mut busiest);
                let console = watch.then(|| lambda.pgwarm().admin_target());
                async move {
                    let stop = tokio::sync::watch::channel(false);
                    let watcher = console.map(|c| tokio::spawn(watch_pools(c, stop.1)));
                    *ended = Some(naive(target, leak, invoked.deadline.into()).await);
                    let _ = stop.0.send(true);
                    if let Some(watcher) = watcher {
                        *busiest = watcher.await.expect("the SHOW POOLS watcher");
                    }
                    serde_json::json!({})
                }
            })
            .await;
        let ended = ended.unwrap_or(Ended::TimedOut);
        (ended, Some(lambda.post_runtime_ms(&id).await), busiest)
    }
}

/// Runs the fleet one way on a fresh role limited to `shape.db_slots` connections.
pub async fn run(way: Way, shape: &Shape) -> Outcome {
    let db = cluster().fresh_target();
    cluster().psql_super(&format!(
        "ALTER ROLE {} CONNECTION LIMIT {}",
        db.user, shape.db_slots
    ));
    let pgbouncer = (way == Way::PgwarmPgbouncer).then(|| {
        Pgbouncer::start(
            &db,
            &[
                ("default_pool_size", &shape.pgbouncer_pool.to_string()),
                ("max_client_conn", "1000"),
            ],
        )
    });
    let upstream = pgbouncer
        .as_ref()
        .map_or_else(|| db.clone(), Pgbouncer::target);
    let mut fleet = Vec::with_capacity(shape.environments);
    for _ in 0..shape.environments {
        fleet.push(Arc::new(Environment::start(way, &upstream, &db).await));
    }

    let sampling = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample(db.user.clone(), sampling.1));
    let mut outcome = Outcome {
        way,
        invocations: 0,
        failures: BTreeMap::new(),
        timed_out: 0,
        holds: 0,
        peak_connections: 0,
        samples: Vec::new(),
        latencies_ms: Vec::new(),
        post_runtime_ms: Vec::new(),
        pools: None,
    };
    let mut next = 0usize;
    let mut busiest = None;
    for burst in 0..shape.bursts {
        // The environments of this burst: a window that walks the fleet, so each is invoked in
        // turn and stays frozen in between.
        let chosen: Vec<usize> = (0..shape.burst_size)
            .map(|i| (burst * shape.burst_size + i) % shape.environments)
            .collect();
        let mut calls = Vec::new();
        for (n, &i) in chosen.iter().enumerate() {
            next += 1;
            let leak = shape.leak_every > 0 && next.is_multiple_of(shape.leak_every);
            let env = Arc::clone(&fleet[i]);
            let timeout = shape.function_timeout;
            // The console of the environment in the middle of the burst, read while it runs.
            let watch = n == chosen.len() / 2;
            calls.push(tokio::spawn(async move {
                let (ended, post_runtime, seen) = env.invoke(leak, timeout, watch).await;
                if let Ended::Done(ms, Some(client)) = ended {
                    env.leaked.lock().expect("leaked").push(client);
                    return (Ended::Done(ms, None), post_runtime, seen);
                }
                (ended, post_runtime, seen)
            }));
        }
        for call in calls {
            let (ended, post_runtime, seen) = call.await.expect("an invocation task");
            busiest = [busiest.take(), seen]
                .into_iter()
                .flatten()
                .max_by_key(busyness);
            outcome.invocations += 1;
            outcome.post_runtime_ms.extend(post_runtime);
            match ended {
                Ended::Done(ms, _) => outcome.latencies_ms.push(ms),
                Ended::Failed(code) => *outcome.failures.entry(code).or_default() += 1,
                Ended::TimedOut => outcome.timed_out += 1,
            }
        }
        tokio::time::sleep(shape.pause).await;
    }
    let _ = sampling.0.send(true);
    outcome.samples = sampler.await.expect("the sampler");
    outcome.peak_connections = outcome.samples.iter().map(|s| s.1).max().unwrap_or(0);
    outcome.latencies_ms.sort_by(f64::total_cmp);
    outcome.post_runtime_ms.sort_by(f64::total_cmp);
    outcome.pools = busiest.as_ref().map(pools_line);
    outcome.holds = fleet
        .iter()
        .filter_map(|env| env.lambda.as_ref())
        .map(|(lambda, _)| {
            let log = lambda.pgwarm().log();
            log.matches("gave its connections back before the freeze")
                .count()
        })
        .sum();
    drop(fleet);
    drop(pgbouncer);
    outcome
}

/// Reads `SHOW POOLS` on `console` every [`POOLS_EVERY`] until told to stop; the busiest row.
async fn watch_pools(
    console: Target,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<AdminRow> {
    let console = tokio::time::timeout(Duration::from_secs(2), console.try_connect())
        .await
        .ok()?
        .ok()?;
    let mut busiest: Option<AdminRow> = None;
    loop {
        let row = pools(&console).await;
        busiest = [busiest.take(), Some(row)]
            .into_iter()
            .flatten()
            .max_by_key(busyness);
        tokio::select! {
            _ = tokio::time::sleep(POOLS_EVERY) => {}
            _ = stop.changed() => return busiest,
        }
    }
}

/// Clients waiting, then the longest wait, then clients linked: what makes a moment busy.
fn busyness(row: &AdminRow) -> (i64, i64, i64) {
    (
        number(row, "cl_waiting"),
        number(row, "maxwait_us") + 1_000_000 * number(row, "maxwait"),
        number(row, "cl_active"),
    )
}

/// What an operator sees of one environment: its `SHOW POOLS` row, the columns that tell the
/// story.
fn pools_line(row: &AdminRow) -> String {
    [
        "cl_active",
        "cl_waiting",
        "sv_active",
        "sv_idle",
        "sv_login",
        "maxwait",
        "maxwait_us",
        "pool_mode",
    ]
    .iter()
    .map(|c| format!("{c}={}", row.get(*c).map_or("?", String::as_str)))
    .collect::<Vec<_>>()
    .join(" ")
}

/// The naive handler, as a Python one with psycopg's defaults runs: connect, one query (inside
/// a transaction), commit and close; or, when it leaks, neither commit nor close. All of it
/// before `deadline`, the function's timeout.
async fn naive(target: &Target, leak: bool, deadline: tokio::time::Instant) -> Ended {
    let began = Instant::now();
    let work = async {
        let code = |e: tokio_postgres::Error| {
            e.code()
                .map_or_else(|| "no code".to_owned(), |c| c.code().to_owned())
        };
        let client = target.try_connect().await.map_err(code)?;
        client
            .batch_execute("BEGIN; SELECT count(*) FROM pg_class")
            .await
            .map_err(code)?;
        if leak {
            return Ok(Some(client));
        }
        client.batch_execute("COMMIT").await.map_err(code)?;
        Ok(None)
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(Ok(leaked)) => Ended::Done(began.elapsed().as_secs_f64() * 1000.0, leaked),
        Ok(Err(code)) => Ended::Failed(code),
        Err(_) => Ended::TimedOut,
    }
}

/// Counts the role's backends every 50 ms until told to stop; returns (ms since start, count).
async fn sample(role: String, mut stop: tokio::sync::watch::Receiver<bool>) -> Vec<(u64, i64)> {
    let superuser = cluster().superuser();
    let client = superuser.connect().await;
    let began = Instant::now();
    let mut samples = Vec::new();
    loop {
        let rows = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE usename = $1 AND backend_type = 'client backend'",
                &[&role],
            )
            .await
            .expect("counting the role's backends");
        samples.push((began.elapsed().as_millis() as u64, rows.get::<_, i64>(0)));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => return samples,
        }
    }
}
