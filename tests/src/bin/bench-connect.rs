//! `bench-connect`: the cost of connect + one query + close, what a Lambda handler that connects
//! inside the handler pays on every invocation: directly to PostgreSQL, through pgwarm and
//! through PgBouncer, each with and without TLS from the client. `scripts/bench-connect.sh`
//! builds it and runs it; its settings come from the environment (below).
//!
//! It starts, on free ports on 127.0.0.1 (nothing else is touched):
//! - the tests' throwaway PostgreSQL cluster: SCRAM (password_encryption = scram-sha-256,
//!   scram-sha-256 for 127.0.0.1 in pg_hba.conf), ssl = on with a P-256 certificate of a
//!   throwaway CA (rcgen, the harness's `TestCerts`), a role and database `bench`,
//!   `pgbench -i -s 1`;
//! - pgwarm (`$PGWARM_BIN`) with PGWARM_SSLMODE=require (its pooled server connections use
//!   TLS), pool size 2 and client TLS on (it answers SSLRequest with 'S' and serves the
//!   self-signed certificate it makes at start-up);
//! - PgBouncer in transaction mode, pool size 2, auth_type scram-sha-256 with the role's SCRAM
//!   secret (from pg_authid) in its auth_file, server_tls_sslmode = require,
//!   client_tls_sslmode = allow with another such certificate, and log_connections/
//!   log_disconnections off (pgwarm does not log connections either).
//!
//! It checks that every target answers a query with and without TLS and that the poolers'
//! server connections use TLS (pg_stat_ssl), then runs, for each of six cases, BENCH_ROUNDS
//! times, with libpq's PGSSLMODE set per case (PGGSSENCMODE=disable throughout):
//! ```text
//! pgbench -n -C -S -c 1 -j 1 -T DURATION      (-C: a new connection for every transaction)
//!
//! direct-tls       sslmode=require  TCP + TLS + SCRAM + a forked backend: no pooler
//! direct-plain     sslmode=disable  TCP + SCRAM + a forked backend
//! pgwarm-tls       sslmode=require  TCP + TLS to pgwarm; a pooled TLS server connection
//! pgwarm-plain     sslmode=disable  TCP to pgwarm
//! pgbouncer-tls    sslmode=require  TCP + TLS + SCRAM to PgBouncer; a pooled TLS server connection
//! pgbouncer-plain  sslmode=disable  TCP + SCRAM to PgBouncer
//! ```
//! The six cases run back to back and their order rotates by one target (two cases) from round
//! to round (direct first, then pgwarm first, then pgbouncer first, ...) so that drift and
//! position effects hit them all alike.
//!
//! Per run it records pgbench's TPS (with -C it counts connect + query + close per second),
//! "latency average" and "average connection time" (connect only: TCP, TLS, startup,
//! authentication, until ReadyForQuery), and for the pooler cases the pooler's own CPU time per
//! connection: utime+stime of the pooler process (all its threads; /proc/PID/stat fields 14 and
//! 15, in clock ticks of `sysconf(_SC_CLK_TCK)`) just before and just after the run, divided by
//! pgbench's "number of transactions actually processed" (one connection each). It also records
//! pgbench's own CPU time per connection, the handler's side of the cost, where libpq's SCRAM
//! and TLS work is spent: pgbench's user + system time from its rusage, read as this process's
//! `getrusage(RUSAGE_CHILDREN)` grows once pgbench is reaped (nothing else is reaped meanwhile).
//!
//! The report gives per case the median over the rounds of the time per connect + query +
//! close, 1000 / TPS in ms (with one client it is pgbench's "latency average"), with the min-max
//! over the rounds, the medians of the connection time, the connections per second, and the
//! pooler's and pgbench's CPU µs per connection; then ratios of the medians of the time per
//! connection (per-round min-max in brackets): direct-tls / pgwarm-tls, direct-tls /
//! pgwarm-plain, pgbouncer-tls / pgwarm-tls, pgbouncer-plain / pgwarm-plain and pgwarm-tls /
//! pgwarm-plain (what the local TLS handshake costs). Its header says what TLS a client
//! negotiates with each target: a probe sends SSLRequest and makes the handshake with rustls
//! (`pgwarm_tests::negotiated_tls`). The report is printed and written to
//! OUT/connect-report.txt; every run's figures go to OUT/connect-runs.tsv, pgbench outputs to
//! OUT/connect-runs/ and server logs to OUT/connect-logs/.
//!
//! Note that by default pgwarm's clients do not authenticate (pgwarm listens on loopback and
//! accepts any user), while PgBouncer's and the database's run SCRAM, whose client side (PBKDF2,
//! 4096 rounds, in libpq) pgbench pays on every connection. PGWARM_CLIENT_PASSWORD=password (the
//! benchmark's password) makes pgwarm's clients log in with SCRAM too. With the SCRAM secret in
//! its auth_file PgBouncer checks a login with a few HMACs and logs in to the server with the
//! client's key; with the plain password there (BENCH_PGBOUNCER_SECRET=plain, what `bench`
//! does) it runs PBKDF2 itself on every client login.
//!
//! Environment:
//! ```text
//! BENCH_ROUNDS    rounds (each runs the six cases once)  (default 3)
//! BENCH_DURATION  seconds per pgbench run                (default 5)
//! BENCH_PGBOUNCER_SECRET  what PgBouncer's auth_file holds: verifier (the SCRAM secret) or
//!                 plain (the password)                   (default verifier)
//! BENCH_OUT_DIR   OUT: where the report, runs and logs go (default target/bench)
//! PGWARM_BIN      the pgwarm binary to measure (default: the workspace's debug build)
//! PGWARM_*        passed through to pgwarm (e.g. PGWARM_CLIENT_PASSWORD=password,
//!                 PGWARM_WORKER_THREADS=2), except the ones the benchmark fixes: LISTEN,
//!                 DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (2, the same as PgBouncer's
//!                 default_pool_size), SSLMODE (require), CLIENT_TLS (on) and LOG_LEVEL (warn).
//! ```
//! Runs: ROUNDS x 6 cases, each DURATION s; the defaults make 18 runs of 5 s, about 2 minutes
//! with setup.
//!
//! A pgbench run succeeds only if it exits 0, has no "aborted" in its output, reports "number of
//! failed transactions: 0", prints no "pgbench: error:" line, and reports a TPS, a latency
//! average, a connection time and a non-zero transaction count (`pgwarm_tests::drivers::bench::judge`).
//! Any other run counts as FAILED: the report marks the figures it belongs to FAILED and quotes
//! its first error line. Exit status: 0; 1 if a run failed, a pooler's CPU time could not be read
//! or a server is gone at the end; 2 for a bad setting; 128 + the signal after Ctrl-C or SIGTERM,
//! which stop the run in progress and everything the benchmark started.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pgwarm_tests::drivers::bench::runner::{Finished, Runner};
use pgwarm_tests::drivers::bench::{
    clock_ticks_per_second, setup, stop, Client, Figure, Halt, OutDirs, RunCpu, SslMode,
};
use pgwarm_tests::drivers::figures::{range, ratio_cell, round_order, Cell};
use pgwarm_tests::drivers::pgwarm_env::show_env;
use pgwarm_tests::drivers::{facts, vars};
use pgwarm_tests::{
    chown_postgres, cluster, find_pgwarm_bin, first_line_of, negotiated_tls, tool, Pgbouncer,
    Pgwarm, Target, TestCerts,
};

const PROGRAM: &str = "bench-connect";
/// pgwarm's and PgBouncer's pool.
const POOL_SIZE: &str = "2";
const SCALE: u32 = 1;
/// The settings pgwarm gets from the benchmark, whatever the caller's environment says (and its
/// connection to the database, which the harness sets).
const PGWARM_SETTINGS: [(&str, &str); 4] = [
    ("PGWARM_POOL_SIZE", POOL_SIZE),
    ("PGWARM_SSLMODE", "require"),
    ("PGWARM_CLIENT_TLS", "on"),
    ("PGWARM_LOG_LEVEL", "warn"),
];

fn say(text: impl AsRef<str>) {
    eprintln!("{PROGRAM}: {}", text.as_ref());
}

// ---- settings -----------------------------------------------------------------------------------

/// What pgbench connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    Direct,
    Pgwarm,
    Pgbouncer,
}

const WAYS: [Way; 3] = [Way::Direct, Way::Pgwarm, Way::Pgbouncer];

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Pgwarm => "pgwarm",
            Way::Pgbouncer => "pgbouncer",
        }
    }
}

/// A target and whether the client asks it for TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Case {
    way: Way,
    sslmode: SslMode,
}

const CASES: [Case; 6] = {
    const fn case(way: Way, sslmode: SslMode) -> Case {
        Case { way, sslmode }
    }
    [
        case(Way::Direct, SslMode::Require),
        case(Way::Direct, SslMode::Disable),
        case(Way::Pgwarm, SslMode::Require),
        case(Way::Pgwarm, SslMode::Disable),
        case(Way::Pgbouncer, SslMode::Require),
        case(Way::Pgbouncer, SslMode::Disable),
    ]
};

impl Case {
    fn name(self) -> String {
        let tls = match self.sslmode {
            SslMode::Require => "tls",
            SslMode::Disable => "plain",
        };
        format!("{}-{tls}", self.way.name())
    }

    fn named(name: &str) -> Case {
        CASES
            .into_iter()
            .find(|c| c.name() == name)
            .expect("one of the six cases")
    }
}

/// What PgBouncer's auth_file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Secret {
    /// The role's SCRAM secret from pg_authid: a login costs PgBouncer a few HMACs.
    Verifier,
    /// The password: PgBouncer runs PBKDF2 on every client login.
    Plain,
}

#[derive(Debug)]
struct Settings {
    rounds: usize,
    duration: u32,
    secret: Secret,
    pgwarm_bin: PathBuf,
    /// The caller's PGWARM_* variables that reach pgwarm.
    passthrough: Vec<(String, String)>,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let secret =
            match vars::choice("BENCH_PGBOUNCER_SECRET", "verifier", &["verifier", "plain"])?
                .as_str()
            {
                "plain" => Secret::Plain,
                _ => Secret::Verifier,
            };
        Ok(Settings {
            rounds: vars::number("BENCH_ROUNDS", 3, 1)? as usize,
            duration: vars::number("BENCH_DURATION", 5, 1)?,
            secret,
            pgwarm_bin: find_pgwarm_bin(std::env::var_os("PGWARM_BIN").as_deref().map(Path::new))?,
            passthrough: setup::passthrough(&PGWARM_SETTINGS),
        })
    }

    fn client_password_set(&self) -> bool {
        self.passthrough
            .iter()
            .any(|(k, _)| k == "PGWARM_CLIENT_PASSWORD")
    }
}

// ---- runs ---------------------------------------------------------------------------------------

/// One pgbench run: a row of connect-runs.tsv.
#[derive(Clone, Debug)]
struct Run {
    round: usize,
    position: usize,
    case: Case,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
enum Outcome {
    Measured(Figures),
    Failed {
        transactions: Option<u64>,
        /// Why, and pgbench's first error line.
        why: String,
        error: String,
    },
}

/// The figures of a run that counts.
#[derive(Clone, Copy, Debug)]
struct Figures {
    tps: f64,
    /// 1000 / TPS.
    ms_per_connection: f64,
    latency_ms: f64,
    connection_ms: f64,
    transactions: u64,
    pgbench_cpu_us: f64,
    pooler: RunCpu,
}

const RUNS_HEADER: &str = "round\tposition\tcase\ttarget\tsslmode\ttps\tms_per_connection\tlatency_average_ms\tconnection_time_ms\ttransactions\tpgbench_cpu_us_per_connection\tpooler_cpu_ticks\tpooler_cpu_us_per_connection\tfailure";

impl Run {
    fn figures(&self) -> Option<&Figures> {
        match &self.outcome {
            Outcome::Measured(f) => Some(f),
            Outcome::Failed { .. } => None,
        }
    }

    fn tsv_line(&self) -> String {
        let head = format!(
            "{}\t{}\t{}\t{}\t{}",
            self.round,
            self.position,
            self.case.name(),
            self.case.way.name(),
            self.case.sslmode.as_str()
        );
        match &self.outcome {
            Outcome::Measured(f) => {
                let (ticks, us) = f.pooler.columns();
                format!(
                    "{head}\t{}\t{:.6}\t{}\t{}\t{}\t{:.4}\t{ticks}\t{us}\t",
                    f.tps,
                    f.ms_per_connection,
                    f.latency_ms,
                    f.connection_ms,
                    f.transactions,
                    f.pgbench_cpu_us
                )
            }
            Outcome::Failed {
                transactions,
                why,
                error,
            } => {
                let txns = transactions.map(|t| t.to_string()).unwrap_or_default();
                let error = error.replace('\t', " ");
                format!("{head}\tFAILED\t\t\t\t{txns}\t\t\t\t{why}: {error}")
            }
        }
    }
}

/// `figure` of `case` per round (None: failed).
fn per_round(
    runs: &[Run],
    rounds: usize,
    case: Case,
    figure: impl Fn(&Figures) -> Option<f64>,
) -> Vec<Option<f64>> {
    (1..=rounds)
        .map(|round| {
            runs.iter()
                .find(|r| r.round == round && r.case == case)
                .and_then(Run::figures)
                .and_then(&figure)
        })
        .collect()
}

// ---- the benchmark ------------------------------------------------------------------------------

/// The two poolers, started against the cluster, and the certificate PgBouncer serves.
struct Poolers {
    pgwarm: Pgwarm,
    pgbouncer: Pgbouncer,
    _pgbouncer_certs: TestCerts,
}

impl Poolers {
    fn start(s: &Settings, db: &Target, pgbouncer_secret: &str) -> Result<Poolers, String> {
        // The harness runs $PGWARM_BIN (Pgwarm::builder), which Settings checked: s.pgwarm_bin.
        let pgwarm = setup::pgwarm(PROGRAM, db, &s.passthrough, &PGWARM_SETTINGS);
        let certs = TestCerts::new(&["localhost", "127.0.0.1"]);
        // PgBouncer runs as `postgres` when we are root: its key must be that user's.
        fs::set_permissions(&certs.server_key_file, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod 600 {}: {e}", certs.server_key_file.display()))?;
        chown_postgres(&certs.server_key_file);
        chown_postgres(&certs.server_cert_file);
        let key = certs.server_key_file.display().to_string();
        let cert = certs.server_cert_file.display().to_string();
        let pgbouncer = Pgbouncer::start_with_auth(
            db,
            pgbouncer_secret,
            &[
                ("default_pool_size", POOL_SIZE),
                ("max_client_conn", "200"),
                ("ignore_startup_parameters", "extra_float_digits"),
                ("server_tls_sslmode", "require"),
                ("client_tls_sslmode", "allow"),
                ("client_tls_key_file", &key),
                ("client_tls_cert_file", &cert),
                ("log_connections", "0"),
                ("log_disconnections", "0"),
            ],
        );
        say(format!(
            "{} on 127.0.0.1:{}",
            Pgbouncer::version(),
            pgbouncer.port
        ));
        Ok(Poolers {
            pgwarm,
            pgbouncer,
            _pgbouncer_certs: certs,
        })
    }

    fn target(&self, way: Way, db: &Target) -> Target {
        let port = match way {
            Way::Direct => db.port,
            Way::Pgwarm => self.pgwarm.port,
            Way::Pgbouncer => self.pgbouncer.port,
        };
        Target { port, ..db.clone() }
    }

    /// Each pooler's name, executable and pid.
    fn processes(&self, s: &Settings) -> [(&'static str, PathBuf, u32); 2] {
        [
            ("pgwarm", s.pgwarm_bin.clone(), self.pgwarm.pid()),
            ("pgbouncer", tool("pgbouncer"), self.pgbouncer.pid()),
        ]
    }

    fn save_logs(&self, out: &OutDirs) {
        out.save_log("pgwarm.log", &self.pgwarm.log());
        out.save_log("pgbouncer.log", &self.pgbouncer.log());
    }
}

/// What the report says besides the runs' figures.
struct Session {
    client_tls: Vec<(Way, String)>,
    server_tls: String,
    finished: Finished,
    ticks_per_second: u64,
}

fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("usage: bench-connect (settings in BENCH_* variables)");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            say(e);
            return ExitCode::from(2);
        }
    };
    setup::run(
        PROGRAM,
        "connect-",
        "some runs FAILED or a measurement is missing",
        |out| on_database(&settings, out, clock_ticks_per_second()?),
    )
}

fn on_database(s: &Settings, out: &OutDirs, ticks_per_second: u64) -> Result<bool, Halt> {
    let pg = cluster();
    // enable_ssl copies the certificate and key into the data directory.
    pg.enable_ssl(&TestCerts::new(&["localhost", "127.0.0.1"]));
    let db = setup::database(PROGRAM, SCALE)?;
    let pgbouncer_secret = match s.secret {
        Secret::Plain => setup::PASSWORD.to_owned(),
        Secret::Verifier => {
            let secret = pg.psql_super("SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'");
            if !secret.starts_with("SCRAM-SHA-256$") {
                return Err(Halt::Failed(
                    "the role bench has no SCRAM secret in pg_authid".into(),
                ));
            }
            secret
        }
    };
    let poolers = Poolers::start(s, &db, &pgbouncer_secret)?;
    let measured = stop::check()
        .map_err(Halt::from)
        .and_then(|()| measure(s, out, &poolers, &db, ticks_per_second));
    // The logs as they are when the servers stop (they are killed as `poolers` drops).
    poolers.save_logs(out);
    drop(poolers);
    let (runs, session, all_counted) = measured?;

    let report = report(s, &runs, &session);
    let report_path = out.root.join("connect-report.txt");
    fs::write(&report_path, &report).map_err(|e| format!("{}: {e}", report_path.display()))?;
    println!("\n{report}");
    say(format!(
        "report written to {} (per-run figures in {})",
        report_path.display(),
        out.root.join("connect-runs.tsv").display()
    ));
    Ok(all_counted)
}

/// The checks, then every run; the runs, the session's facts, and whether every run counted.
fn measure(
    s: &Settings,
    out: &OutDirs,
    poolers: &Poolers,
    db: &Target,
    ticks_per_second: u64,
) -> Result<(Vec<Run>, Session, bool), Halt> {
    let client = |case: Case| Client::new(poolers.target(case.way, db), case.sslmode);
    // One query through each case before measuring: a broken path fails here, clearly. It also
    // opens the poolers' first server connections.
    for case in CASES {
        let answer = client(case).query("SELECT count(*) FROM pgbench_branches");
        if answer.as_deref() != Ok(SCALE.to_string().as_str()) {
            return Err(Halt::Failed(format!(
                "sanity query, {} (port {}, sslmode {}), failed: {answer:?}",
                case.name(),
                poolers.target(case.way, db).port,
                case.sslmode.as_str()
            )));
        }
    }
    // The poolers' server connections must use TLS: every backend of `bench` still open once the
    // sanity queries' own backends have gone (they may take a moment) is one.
    let count_tls = || {
        let ssl = cluster().psql_super(
            "SELECT count(*), count(*) FILTER (WHERE NOT s.ssl), \
             coalesce(string_agg(DISTINCT s.version || '/' || s.cipher, ','), '-') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'bench'",
        );
        let fields: Vec<&str> = ssl.split('|').collect();
        match fields[..] {
            [n, plain, tls] => Ok((
                n.parse::<u32>().unwrap_or(0),
                plain.parse::<u32>().unwrap_or(u32::MAX),
                tls.to_owned(),
            )),
            _ => Err(Halt::Failed(format!("pg_stat_ssl answered {ssl:?}"))),
        }
    };
    let mut seen = count_tls()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.1 != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = count_tls()?;
    }
    let (n_server, n_plain, server_tls) = seen;
    if n_server < 2 {
        return Err(Halt::Failed(format!(
            "expected the poolers' server connections in pg_stat_activity, found {n_server}"
        )));
    }
    if n_plain != 0 {
        return Err(Halt::Failed(format!(
            "{n_plain} of the poolers' {n_server} server connections do not use TLS"
        )));
    }
    say(format!(
        "the poolers' {n_server} server connections use TLS ({server_tls})"
    ));
    let client_tls = WAYS
        .iter()
        .map(|&way| {
            let addr = SocketAddr::from(([127, 0, 0, 1], poolers.target(way, db).port));
            let seen = negotiated_tls(addr).unwrap_or_else(|e| format!("? ({e})"));
            (way, seen)
        })
        .collect();

    let mut runner = Runner::start(
        PROGRAM,
        &poolers.processes(s),
        out.root.join("connect-runs.tsv"),
        RUNS_HEADER,
        ticks_per_second,
    )?;
    let total_runs = s.rounds * CASES.len();
    say(format!(
        "running {total_runs} pgbench -C runs of {}s each, {} rounds (load average before: {})",
        s.duration,
        s.rounds,
        runner.load_before()
    ));
    let mut runs: Vec<Run> = Vec::new();
    let mut all_counted = true;
    for round in 1..=s.rounds {
        for (i, case) in round_order(&CASES, round, 2).into_iter().enumerate() {
            let label = format!(
                "[{}/{total_runs}] round {round}/{} {} (sslmode={})",
                runs.len() + 1,
                s.rounds,
                case.name(),
                case.sslmode.as_str()
            );
            let file = out.runs.join(format!("{}-r{round}.txt", case.name()));
            let (outcome, counted) = one_run(s, &runner, &client(case), case, &file, &label)?;
            all_counted &= counted;
            let run = Run {
                round,
                position: i + 1,
                case,
                outcome,
            };
            runner.record(&run.tsv_line())?;
            runs.push(run);
        }
    }
    let finished = runner.finish(&out.logs);
    all_counted &= finished.servers_alive;
    let session = Session {
        client_tls,
        server_tls,
        finished,
        ticks_per_second,
    };
    Ok((runs, session, all_counted))
}

/// One `pgbench -C` run of `case`, its output saved to `file`, said on stderr as `label`; its
/// outcome, and whether it counts.
fn one_run(
    s: &Settings,
    runner: &Runner,
    client: &Client,
    case: Case,
    file: &Path,
    label: &str,
) -> Result<(Outcome, bool), Halt> {
    let duration = s.duration.to_string();
    let args = ["-n", "-C", "-S", "-c", "1", "-j", "1", "-T", &duration];
    let server = (case.way != Way::Direct).then(|| case.way.name());
    let timed = runner.pgbench(client, &args, s.duration, server, file)?;
    let sm = &timed.pgbench.summary;
    if let Some(failure) = timed
        .pgbench
        .failure(&[Figure::LatencyAverage, Figure::ConnectionTime])
    {
        say(format!(
            "{label}: FAILED ({failure}), see {}",
            file.display()
        ));
        say(format!("    {}", failure.error_line()));
        let outcome = Outcome::Failed {
            transactions: Some(sm.processed).filter(|t| *t > 0),
            why: failure.why(),
            error: failure.error_line().to_owned(),
        };
        return Ok((outcome, false));
    }
    let figure = |f: Option<f64>| f.expect("a run that counts has its figures");
    let tps = figure(sm.tps);
    let transactions = sm.processed;
    let pgbench_cpu_us = timed.pgbench.cpu.as_secs_f64() * 1e6 / transactions as f64;
    let (note, cpu_read) = timed.cpu_note("conn");
    let f = Figures {
        tps,
        ms_per_connection: 1000.0 / tps,
        latency_ms: figure(sm.latency_ms),
        connection_ms: figure(sm.connection_ms),
        transactions,
        pgbench_cpu_us,
        pooler: timed.cpu,
    };
    say(format!(
        "{label}: {:.3} ms/conn ({tps} conn/s), connect {} ms, \
         pgbench CPU {pgbench_cpu_us:.1} us/conn{note}",
        f.ms_per_connection, f.connection_ms
    ));
    Ok((Outcome::Measured(f), cpu_read))
}

// ---- the report ---------------------------------------------------------------------------------

fn report(s: &Settings, runs: &[Run], session: &Session) -> String {
    let mut r = String::new();
    let (bytes, digest) = facts::file_digest(&s.pgwarm_bin).unwrap_or((0, "?".into()));
    let postgres = first_line_of(&cluster().bindir.join("postgres"), "--version");
    let first_order: Vec<String> = round_order(&CASES, 1, 2).iter().map(|c| c.name()).collect();
    let pgwarm_auth = match s.client_password_set() {
        true => "SCRAM (PGWARM_CLIENT_PASSWORD set)",
        false => "none (PGWARM_CLIENT_PASSWORD unset: any user is accepted)",
    };
    let pgbouncer_auth = match s.secret {
        Secret::Verifier => "auth_file holds the role's SCRAM secret",
        Secret::Plain => "auth_file holds the plain password (PBKDF2 on every login)",
    };
    let lines = [
        format!(
            "pgwarm connect benchmark (connect + one query + close), {}",
            facts::utc_now()
        ),
        format!(
            "commit: {}   nproc: {}   pgwarm binary: {bytes} bytes, sha256 {digest}...",
            facts::commit(),
            facts::nproc()
        ),
        format!(
            "pgbench -n -C -S -c 1 -j 1 -T {}, scale {SCALE}; PGSSLMODE per case, PGGSSENCMODE=disable",
            s.duration
        ),
        format!(
            "{postgres}: ssl = on (P-256, a throwaway CA's), SCRAM; {}",
            Pgbouncer::version()
        ),
        format!(
            "pgwarm: PGWARM_SSLMODE=require, pool size {POOL_SIZE}, client TLS on (its own self-signed certificate),"
        ),
        format!(
            "  client auth {pgwarm_auth}; extra env: {}",
            show_env(&s.passthrough)
        ),
        format!(
            "PgBouncer: transaction mode, pool size {POOL_SIZE}, auth_type scram-sha-256, {pgbouncer_auth},"
        ),
        "  server_tls_sslmode = require, client_tls_sslmode = allow (P-256, a throwaway CA's), log_connections = 0".into(),
        "client TLS as a client sees it (SSLRequest, then a rustls handshake):".into(),
    ];
    for line in lines {
        let _ = writeln!(r, "{line}");
    }
    for (way, seen) in &session.client_tls {
        let _ = writeln!(r, "  {:<10} {seen}", way.name());
    }
    let _ = writeln!(
        r,
        "the poolers' server connections: TLS ({})",
        session.server_tls
    );
    let _ = writeln!(
        r,
        "{} rounds of {} runs back to back, the order rotating by one target each round",
        s.rounds,
        CASES.len()
    );
    let _ = writeln!(
        r,
        "({} first); {} runs took {}s",
        first_order.join(","),
        runs.len(),
        session.finished.seconds
    );
    let _ = writeln!(
        r,
        "load average before: {}   after: {}",
        session.finished.load_before, session.finished.load_after
    );
    let _ = writeln!(r);
    let explanation = [
        "ms/conn: time per connect + query + close, 1000 / TPS (pgbench -C's TPS includes the".to_owned(),
        "  connections; with one client it equals pgbench's \"latency average\"), median over the rounds".into(),
        "  and min-max. connect ms: pgbench's \"average connection time\" (TCP, TLS, startup, auth, up to".into(),
        "  ReadyForQuery), median. conn/s: TPS, median. pooler CPU: the pooler process's utime+stime".into(),
        format!(
            "  (/proc/PID/stat, CLK_TCK {}) per connection in µs, median. pgbench CPU: the same for the",
            session.ticks_per_second
        ),
        "  client (user+sys of pgbench, from its rusage): what the handler's side of a connection costs.".into(),
        "  FAILED k/N: k of the N runs failed.".into(),
    ];
    for line in explanation {
        let _ = writeln!(r, "{line}");
    }
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "{:<16} {:<8} {:>8} {:<15} {:>10} {:>8} {:>15} {:>16}",
        "case",
        "sslmode",
        "ms/conn",
        "(min-max)",
        "connect ms",
        "conn/s",
        "pooler CPU µs",
        "pgbench CPU µs"
    );
    let rounds = s.rounds;
    let ms = |case| per_round(runs, rounds, case, |f| Some(f.ms_per_connection));
    for case in CASES {
        let cell =
            |figure: fn(&Figures) -> Option<f64>| Cell::of(&per_round(runs, rounds, case, figure));
        let pooler = match case.way {
            Way::Direct => "-".to_owned(),
            _ => cell(|f| f.pooler.us()).show(1),
        };
        let _ = writeln!(
            r,
            "{:<16} {:<8} {:>8} {:<15} {:>10} {:>8} {:>15} {:>16}",
            case.name(),
            case.sslmode.as_str(),
            cell(|f| Some(f.ms_per_connection)).show(3),
            format!("({})", range(&ms(case), 3)),
            cell(|f| Some(f.connection_ms)).show(3),
            cell(|f| Some(f.tps)).show(0),
            pooler,
            cell(|f| Some(f.pgbench_cpu_us)).show(1),
        );
    }
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "ratios of the median ms/conn (min-max of the per-round ratios); > 1: the second is faster"
    );
    for (num, den, note) in [
        ("direct-tls", "pgwarm-tls", ""),
        ("direct-tls", "pgwarm-plain", ""),
        ("pgbouncer-tls", "pgwarm-tls", ""),
        ("pgbouncer-plain", "pgwarm-plain", ""),
        ("pgwarm-tls", "pgwarm-plain", " (TLS cost)"),
    ] {
        let label = format!("{num} / {den}{note}");
        let cell = ratio_cell(&ms(Case::named(num)), &ms(Case::named(den)));
        let _ = writeln!(r, "  {label:<38} {cell}");
    }
    let failed: Vec<&Run> = runs
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(r);
        for case in CASES {
            for run in failed.iter().filter(|r| r.case == case) {
                if let Outcome::Failed { why, error, .. } = &run.outcome {
                    let _ = writeln!(r, "FAILED {} round {}: {why}", case.name(), run.round);
                    let _ = writeln!(r, "    {error}");
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_six_cases_by_name_and_their_rotation() {
        let names: Vec<String> = CASES.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "direct-tls",
                "direct-plain",
                "pgwarm-tls",
                "pgwarm-plain",
                "pgbouncer-tls",
                "pgbouncer-plain"
            ]
        );
        let second: Vec<String> = round_order(&CASES, 2, 2).iter().map(|c| c.name()).collect();
        assert_eq!(second[0], "pgwarm-tls", "round 2 starts with pgwarm");
        assert_eq!(Case::named("pgbouncer-plain").sslmode, SslMode::Disable);
    }

    #[test]
    fn a_run_is_one_row_of_connect_runs_tsv() {
        let run = Run {
            round: 1,
            position: 3,
            case: Case::named("pgwarm-tls"),
            outcome: Outcome::Measured(Figures {
                tps: 436.543812,
                ms_per_connection: 1000.0 / 436.543812,
                latency_ms: 2.291,
                connection_ms: 1.911,
                transactions: 437,
                pgbench_cpu_us: 1022.9,
                pooler: RunCpu::Measured {
                    ticks: 61,
                    us_per_item: 1395.881,
                },
            }),
        };
        assert_eq!(
            run.tsv_line(),
            "1\t3\tpgwarm-tls\tpgwarm\trequire\t436.543812\t2.290721\t2.291\t1.911\t437\t\
             1022.9000\t61\t1395.8810\t"
        );
        assert_eq!(
            RUNS_HEADER.split('\t').count(),
            run.tsv_line().split('\t').count()
        );
        let failed = Run {
            outcome: Outcome::Failed {
                transactions: None,
                why: "exit status 1".into(),
                error: "pgbench: error: connection refused".into(),
            },
            ..run
        };
        assert_eq!(
            failed.tsv_line(),
            "1\t3\tpgwarm-tls\tpgwarm\trequire\tFAILED\t\t\t\t\t\t\t\texit status 1: \
             pgbench: error: connection refused"
        );
        assert_eq!(
            RUNS_HEADER.split('\t').count(),
            failed.tsv_line().split('\t').count()
        );
    }
}
