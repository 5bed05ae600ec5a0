//! A fleet of Lambda execution environments against a database with few connection slots: the
//! problem pgwarm exists for, played at a scale this machine can run.
//!
//! Each environment runs the naive handler: connect, one query, close, on every invocation, and
//! every `leak_every`-th invocation forgets to close (an error path). Between invocations an
//! environment is frozen, as Lambda freezes it: its pgwarm is stopped with SIGSTOP, and whatever
//! it holds (a leaked connection, pgwarm's server connection) stays open. Invocations come in
//! bursts, each a share of the environments at once.
//!
//! The same bursts run three ways: the handler connecting to the database directly; through a
//! pgwarm per environment (pool of 1, `idle_session_timeout` so a frozen environment's connection
//! is closed by the database, waiting out a full database); and through pgwarm chained to one
//! central PgBouncer. The database's role has a `CONNECTION LIMIT`, so a full database answers
//! `too many connections for role`, as RDS does at `max_connections`. A sampler counts the role's
//! backends every 50 ms.

use crate::{cluster, number, pools, send_signal, AdminRow, Pgbouncer, Pgwarm, Target};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often one environment's `SHOW POOLS` is read while a burst invokes it.
const POOLS_EVERY: Duration = Duration::from_millis(20);

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
    /// Every this many invocations, one leaks its connection.
    pub leak_every: usize,
    /// The central PgBouncer's pool, for `PgwarmPgbouncer`.
    pub pgbouncer_pool: usize,
}

/// What one way of running the fleet gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub way: Way,
    pub invocations: usize,
    /// Failed invocations, by the SQLSTATE (or "no code") they failed with.
    pub failures: BTreeMap<String, usize>,
    /// The database's connections for the role: the most seen, and (ms, count) samples.
    pub peak_connections: i64,
    pub samples: Vec<(u64, i64)>,
    /// Latency of the successful invocations, sorted, in ms.
    pub latencies_ms: Vec<f64>,
    /// `SHOW POOLS` of one environment at the busiest moment seen: in each burst, the console of
    /// the environment in its middle is read every [`POOLS_EVERY`] while it is invoked; busiest
    /// is most clients waiting, then the longest wait. As `column=value` pairs (pgwarm's ways
    /// only): what an operator sees while it works.
    pub pools: Option<String>,
}

impl Outcome {
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// The `q` quantile of the successful invocations' latency, in ms (NaN when none succeeded).
    pub fn latency_ms(&self, q: f64) -> f64 {
        crate::figures::quantile(&self.latencies_ms, q).unwrap_or(f64::NAN)
    }
}

/// One execution environment: its pgwarm (when there is one) and the connections its handler
/// leaked, which live as long as it does.
struct Environment {
    pgwarm: Option<Pgwarm>,
    target: Target,
    leaked: Vec<tokio_postgres::Client>,
}

impl Environment {
    fn thaw(&self) {
        if let Some(p) = &self.pgwarm {
            send_signal(p.pid(), "CONT");
        }
    }

    fn freeze(&self) {
        if let Some(p) = &self.pgwarm {
            send_signal(p.pid(), "STOP");
        }
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
        let pgwarm = (way != Way::Direct).then(|| {
            let mut settings = vec![
                ("PGWARM_POOL_SIZE", "1"),
                ("PGWARM_QUERY_WAIT_TIMEOUT", "30s"),
                ("PGWARM_LOG_LEVEL", "warn"),
                ("PGWARM_METRICS", "off"),
            ];
            match way {
                Way::PgwarmPgbouncer => settings.push(("PGWARM_UPSTREAM_POOLER", "on")),
                _ => settings.push(("PGWARM_IDLE_SESSION_TIMEOUT", "1s")),
            }
            Pgwarm::start(&upstream, &settings)
        });
        let target = pgwarm.as_ref().map_or_else(|| db.clone(), Pgwarm::target);
        let env = Environment {
            pgwarm,
            target,
            leaked: Vec::new(),
        };
        env.freeze();
        fleet.push(env);
    }

    let sampling = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample(db.user.clone(), sampling.1));
    let mut outcome = Outcome {
        way,
        invocations: 0,
        failures: BTreeMap::new(),
        peak_connections: 0,
        samples: Vec::new(),
        latencies_ms: Vec::new(),
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
        for &i in &chosen {
            fleet[i].thaw();
        }
        // The console of the environment in the middle of the burst, read while it is invoked.
        let watching = tokio::sync::watch::channel(false);
        let watched = chosen
            .get(chosen.len() / 2)
            .and_then(|&i| fleet[i].pgwarm.as_ref());
        let watcher = watched.map(|p| tokio::spawn(watch_pools(p.admin_target(), watching.1)));
        let mut calls = Vec::new();
        for &i in &chosen {
            next += 1;
            let leak = shape.leak_every > 0 && next.is_multiple_of(shape.leak_every);
            let target = fleet[i].target.clone();
            calls.push(tokio::spawn(
                async move { (i, invoke(&target, leak).await) },
            ));
        }
        for call in calls {
            let (i, result) = call.await.expect("an invocation task");
            outcome.invocations += 1;
            match result {
                Ok((ms, leaked)) => {
                    outcome.latencies_ms.push(ms);
                    fleet[i].leaked.extend(leaked);
                }
                Err(code) => *outcome.failures.entry(code).or_default() += 1,
            }
        }
        let _ = watching.0.send(true);
        if let Some(watcher) = watcher {
            let seen = watcher.await.expect("the SHOW POOLS watcher");
            busiest = [busiest.take(), seen]
                .into_iter()
                .flatten()
                .max_by_key(busyness);
        }
        for &i in &chosen {
            fleet[i].freeze();
        }
        tokio::time::sleep(shape.pause).await;
    }
    let _ = sampling.0.send(true);
    outcome.samples = sampler.await.expect("the sampler");
    outcome.peak_connections = outcome.samples.iter().map(|s| s.1).max().unwrap_or(0);
    outcome.latencies_ms.sort_by(f64::total_cmp);
    outcome.pools = busiest.as_ref().map(pools_line);
    for env in &fleet {
        env.thaw();
    }
    drop(fleet);
    drop(pgbouncer);
    outcome
}

/// Reads `SHOW POOLS` on `console` every [`POOLS_EVERY`] until told to stop; the busiest row.
async fn watch_pools(
    console: Target,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<AdminRow> {
    let console = console.connect().await;
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

/// The naive handler: connect, one query, close (or not, when it leaks). Ok: its time in ms and
/// the connection it leaked; Err: the SQLSTATE it failed with.
async fn invoke(
    target: &Target,
    leak: bool,
) -> Result<(f64, Option<tokio_postgres::Client>), String> {
    let began = Instant::now();
    let code = |e: tokio_postgres::Error| {
        e.code()
            .map_or_else(|| "no code".to_owned(), |c| c.code().to_owned())
    };
    let client = target.try_connect().await.map_err(code)?;
    client
        .simple_query("SELECT count(*) FROM pg_class")
        .await
        .map_err(code)?;
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    Ok((ms, leak.then_some(client)))
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

/// The table a person reads in ten seconds.
pub fn table(shape: &Shape, outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} environments, bursts of {} at once ({} bursts), a database role limited to {} connections;",
        shape.environments, shape.burst_size, shape.bursts, shape.db_slots
    );
    let _ = writeln!(
        t,
        "the handler connects, queries and closes on every invocation, and every {}th leaks its connection.\n",
        shape.leak_every
    );
    let _ = writeln!(
        t,
        "{:<20} {:>11} {:>8}  {:<32} {:>14} {:>9} {:>9}",
        "way", "invocations", "failed", "failures by SQLSTATE", "db peak conns", "p50 ms", "p99 ms"
    );
    for o in outcomes {
        let failures = match o.failures.is_empty() {
            true => "-".to_owned(),
            false => o
                .failures
                .iter()
                .map(|(code, n)| format!("{code} x{n}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            t,
            "{:<20} {:>11} {:>8}  {:<32} {:>14} {:>9.1} {:>9.1}",
            o.way.name(),
            o.invocations,
            o.failed(),
            failures,
            o.peak_connections,
            o.latency_ms(0.5),
            o.latency_ms(0.99)
        );
    }
    let _ = writeln!(
        t,
        "\n53300: too many connections for role (what RDS answers at max_connections: 53300 too)."
    );
    for o in outcomes {
        if let Some(pools) = &o.pools {
            let _ = writeln!(
                t,
                "SHOW POOLS of one environment at the busiest moment seen (read every {} ms), {}:\n  {pools}",
                POOLS_EVERY.as_millis(),
                o.way.name()
            );
        }
    }
    t
}

/// Writes into `out` `fleet.txt` (the [`table`]), per way `connections-<way>.tsv` (seconds,
/// the role's connections), and `fleet-connections.svg`, their chart drawn by gnuplot; returns
/// the chart's path.
pub fn write_files(out: &Path, shape: &Shape, outcomes: &[Outcome]) -> Result<PathBuf, String> {
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text)
            .map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    write("fleet.txt", &table(shape, outcomes))?;
    let mut plots = Vec::new();
    for o in outcomes {
        let mut series = String::from("seconds\tconnections\n");
        for (ms, n) in &o.samples {
            let _ = writeln!(series, "{:.2}\t{n}", *ms as f64 / 1000.0);
        }
        let name = format!("connections-{}.tsv", o.way.slug());
        write(&name, &series)?;
        plots.push(format!(
            "\"{}\" using 1:2 skip 1 with steps lw 2 title \"{}\"",
            out.join(&name).display(),
            o.way.name()
        ));
    }
    let chart = out.join("fleet-connections.svg");
    let script = format!(
        "set terminal svg size 900,400 dynamic font \"sans,11\" background rgb \"white\"\n\
         set output \"{}\"\n\
         set title \"The database's connections for the fleet's role ({} slots)\"\n\
         set xlabel \"seconds\"\nset ylabel \"connections\"\nset yrange [0:{}]\n\
         set grid\nset key bottom right\n\
         plot {}, {} with lines dt 2 lc rgb \"black\" title \"slots\"\n",
        chart.display(),
        shape.db_slots,
        shape.db_slots + 2,
        plots.join(", "),
        shape.db_slots
    );
    let gnuplot = crate::try_tool("gnuplot").ok_or(format!(
        "no gnuplot to draw {}: install the {}",
        chart.display(),
        crate::package_hint("gnuplot")
    ))?;
    let mut gnuplot = std::process::Command::new(gnuplot);
    let done = crate::output_with_timeout(
        &mut gnuplot,
        Some(script.as_bytes()),
        Duration::from_secs(60),
    );
    match done.status.success() {
        true => Ok(chart),
        false => Err(format!(
            "gnuplot failed ({}): {}",
            done.status,
            String::from_utf8_lossy(&done.stderr)
        )),
    }
}
