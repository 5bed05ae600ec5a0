//! `bench`: pgwarm's throughput and CPU per transaction against a direct connection, PgBouncer
//! and a plain TCP relay, with pgbench. `scripts/bench.sh` builds it and runs it.
//!
//! ```text
//! bench                                    the benchmark, its settings from the environment
//! bench --summarize RUNS_TSV [OUT_DIR]     only the chart data (charts.tsv) of a runs.tsv
//! ```
//!
//! It starts the tests' throwaway PostgreSQL cluster, pgwarm (`$PGWARM_BIN`), PgBouncer and
//! HAProxy on free ports on 127.0.0.1 (nothing else is touched), and runs
//! `pgbench -n -S -M MODE -T DURATION -c C -j min(C,2)` against each target, BENCH_ROUNDS
//! times. Within a round, for each mode and client count, the targets run back to back, and
//! their order rotates from round to round (direct, pgwarm, pgbouncer, haproxy; then pgwarm,
//! pgbouncer, haproxy, direct; ...) so that drift and position effects hit all of them alike.
//!
//! The targets:
//! - direct: PostgreSQL itself, the ceiling.
//! - pgwarm: pool of 4, transaction mode.
//! - pgbouncer: PgBouncer (`BENCH_PGBOUNCER_BIN`, else Debian's), pool of 4, transaction mode,
//!   SCRAM; from 1.21 on with `max_prepared_statements = 200` (1.24's default).
//! - haproxy: HAProxy (Debian's) in `mode tcp` with one thread, as pgwarm and PgBouncer run: a
//!   relay that only copies bytes, one server connection per client, no pooling. No pooler
//!   does less work per transaction: it is the floor for CPU, and the reference for the
//!   latency a hop adds.
//!
//! PgBouncer before 1.21 cannot run -M prepared in transaction mode; when -M extended runs too,
//! its -M prepared runs are skipped and the prepared table compares with its extended figures.
//! Every client uses libpq's sslmode=disable (the cluster has no TLS) and no GSSAPI encryption.
//!
//! Single runs are noisy on small machines, so besides the TPS it records, for pgwarm, PgBouncer
//! and HAProxy, the process's own CPU time per transaction: utime+stime of the process (all its
//! threads; /proc/PID/stat fields 14 and 15, in clock ticks of `sysconf(_SC_CLK_TCK)`) read just
//! before and just after each pgbench run, divided by pgbench's "number of transactions actually
//! processed". It includes the process's share of the connection setup (SCRAM) of that run.
//!
//! The report has one table per mode. Per client count it gives the median over the rounds of
//! each target's TPS, pgwarm's ratios to the others (ratios of those medians, with the min-max
//! range of the per-round ratios), and the median CPU µs/transaction of the three relays with
//! pgwarm's ratios to PgBouncer's and HAProxy's. It is printed and written to OUT/report.txt;
//! every run's figures go to OUT/runs.tsv, pgbench outputs to OUT/runs/ and server logs to
//! OUT/logs/. OUT/charts.tsv holds what the charts show, per mode and client count: each
//! relay's median TPS as a share of direct's and its median CPU µs per transaction (NaN where a
//! run failed; PgBouncer's prepared cells are its extended ones when those runs were skipped);
//! `scripts/bench-charts.sh` draws tps.svg and cpu.svg from it. `--summarize` recomputes
//! charts.tsv from a runs.tsv (OUT_DIR defaults to the runs.tsv's folder), so committed runs
//! redraw the same charts.
//!
//! Environment:
//! ```text
//! BENCH_ROUNDS    rounds (each runs every target once per mode and client count) (default 3)
//! BENCH_DURATION  seconds per pgbench run                                        (default 10)
//! BENCH_CLIENTS   client counts, space separated                            (default "1 16 64")
//! BENCH_MODES     pgbench -M query modes, space separated  (default "simple extended prepared")
//! BENCH_SCALE     pgbench -i scale factor                                        (default 10)
//! BENCH_OUT_DIR   OUT: where the report, runs and logs go                 (default target/bench)
//! PGWARM_BIN      the pgwarm binary to measure (default: the workspace's debug build)
//! BENCH_PGBOUNCER_BIN  the PgBouncer to compare with (default: Debian's, `pgbouncer` on PATH;
//!                 `scripts/bench.sh` builds the current release when it can)
//! PGWARM_*        passed through to pgwarm (e.g. PGWARM_WORKER_THREADS=2), except the ones the
//!                 benchmark fixes: LISTEN, DB_HOST/PORT/NAME/USER/PASSWORD, POOL_SIZE (4, the
//!                 same as PgBouncer's default_pool_size) and LOG_LEVEL (warn).
//! ```
//! Runs: ROUNDS x modes x client counts x 4 targets (3 for prepared), each DURATION s; the
//! defaults make 99 runs of 10 s, about 18 minutes with setup.
//!
//! A pgbench run succeeds only if it exits 0, has no "aborted" in its output, reports "number of
//! failed transactions: 0", prints no "pgbench: error:" line, and reports a TPS and a non-zero
//! transaction count (`pgwarm_tests::drivers::bench::judge`). Any other run counts as FAILED: the report
//! marks the figures it belongs to FAILED and quotes its first error line. PgBouncer's
//! -M prepared runs, when they run, are expected to fail (see [`expected_failure`]). Exit
//! status: 0; 1 if any other run failed, a relay's CPU time could not be read or a server is
//! gone at the end; 2 for a bad setting; 128 + the signal after Ctrl-C or SIGTERM, which stop
//! the run in progress and everything the benchmark started.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pgwarm_tests::drivers::bench::runner::{Finished, Runner};
use pgwarm_tests::drivers::bench::{
    clock_ticks_per_second, setup, stop, Client, Halt, OutDirs, RunCpu, SslMode,
};
use pgwarm_tests::drivers::figures::{ratio_cell, round_order, Cell};
use pgwarm_tests::drivers::pgwarm_env::show_env;
use pgwarm_tests::drivers::{facts, vars};
use pgwarm_tests::{
    cluster, find_pgwarm_bin, first_line_of, tool, Haproxy, Pgbouncer, Pgwarm, Target,
};

const PROGRAM: &str = "bench";
/// pgwarm's and PgBouncer's pool.
const POOL_SIZE: &str = "4";
/// The tests' cluster allows 300 connections, 3 of them for superusers: pgbench's clients (one
/// backend each, direct or through HAProxy), the two pools and the checks' own must fit.
const MAX_CLIENTS: u32 = 280;
/// The settings pgwarm gets from the benchmark, whatever the caller's environment says (and its
/// connection to the database, which the harness sets).
const PGWARM_SETTINGS: [(&str, &str); 2] = [
    ("PGWARM_POOL_SIZE", POOL_SIZE),
    ("PGWARM_LOG_LEVEL", "warn"),
];

fn say(text: impl AsRef<str>) {
    eprintln!("{PROGRAM}: {}", text.as_ref());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => run(),
        [flag, runs] if flag == "--summarize" => summarize(Path::new(runs), None),
        [flag, runs, out] if flag == "--summarize" => {
            summarize(Path::new(runs), Some(Path::new(out)))
        }
        _ => {
            eprintln!("usage: bench (settings in BENCH_* variables)\n       bench --summarize RUNS_TSV [OUT_DIR]");
            ExitCode::from(2)
        }
    }
}

// ---- settings -----------------------------------------------------------------------------------

/// A pgbench `-M` query mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Simple,
    Extended,
    Prepared,
}

impl Mode {
    fn parse(word: &str) -> Option<Mode> {
        match word {
            "simple" => Some(Mode::Simple),
            "extended" => Some(Mode::Extended),
            "prepared" => Some(Mode::Prepared),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Extended => "extended",
            Mode::Prepared => "prepared",
        }
    }
}

/// What pgbench talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    Direct,
    Pgwarm,
    Pgbouncer,
    Haproxy,
}

const WAYS: [Way; 4] = [Way::Direct, Way::Pgwarm, Way::Pgbouncer, Way::Haproxy];
/// The targets whose process's CPU time is measured.
const RELAYS: [Way; 3] = [Way::Pgwarm, Way::Pgbouncer, Way::Haproxy];

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Direct => "direct",
            Way::Pgwarm => "pgwarm",
            Way::Pgbouncer => "pgbouncer",
            Way::Haproxy => "haproxy",
        }
    }

    fn parse(name: &str) -> Option<Way> {
        WAYS.into_iter().find(|w| w.name() == name)
    }
}

#[derive(Debug)]
struct Settings {
    rounds: usize,
    duration: u32,
    clients: Vec<u32>,
    modes: Vec<Mode>,
    scale: u32,
    pgwarm_bin: PathBuf,
    /// The caller's PGWARM_* variables that reach pgwarm.
    passthrough: Vec<(String, String)>,
    /// `BENCH_PGBOUNCER_BIN`, or Debian's; its `--version` line, and whether it keeps prepared
    /// statements in transaction mode (1.21 and later).
    pgbouncer_bin: PathBuf,
    pgbouncer_version: String,
    pgbouncer_prepares: bool,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let rounds = vars::number("BENCH_ROUNDS", 3, 1)? as usize;
        let duration = vars::number("BENCH_DURATION", 10, 1)?;
        let scale = vars::number("BENCH_SCALE", 10, 1)?;
        // At most what the cluster's connections allow.
        let clients = vars::numbers("BENCH_CLIENTS", "1 16 64", 1, MAX_CLIENTS)?;
        let modes = vars::words("BENCH_MODES", "simple extended prepared")?
            .iter()
            .map(|m| Mode::parse(m).ok_or(format!("BENCH_MODES: unknown pgbench mode '{m}'")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(twice) = modes
            .iter()
            .find(|m| modes.iter().filter(|n| n == m).count() > 1)
        {
            return Err(format!("BENCH_MODES: {} is there twice", twice.as_str()));
        }
        let pgwarm_bin = find_pgwarm_bin(std::env::var_os("PGWARM_BIN").as_deref().map(Path::new))?;
        let pgbouncer_bin = match std::env::var_os("BENCH_PGBOUNCER_BIN") {
            Some(p) => std::path::absolute(&p)
                .ok()
                .filter(|p| p.is_file())
                .ok_or(format!(
                    "BENCH_PGBOUNCER_BIN: {} is not a file",
                    p.to_string_lossy()
                ))?,
            None => tool("pgbouncer"),
        };
        let pgbouncer_version = Pgbouncer::version_of(&pgbouncer_bin);
        let pgbouncer_prepares = Pgbouncer::keeps_prepared_statements(&pgbouncer_version);
        Ok(Settings {
            rounds,
            duration,
            clients,
            modes,
            scale,
            pgwarm_bin,
            passthrough: setup::passthrough(&PGWARM_SETTINGS),
            pgbouncer_bin,
            pgbouncer_version,
            pgbouncer_prepares,
        })
    }
}

/// Whether `way` failing in `mode` is a known limitation rather than a fault. PgBouncer 1.18
/// predates max_prepared_statements: in transaction mode it passes pgbench's named statements
/// (P_0, ...) through to whichever server connection the transaction gets, so a client soon runs
/// one on a connection that never prepared it ("does not exist"), or prepares one that an earlier
/// client left there ("already exists"). 1.21 and later keep them (`max_prepared_statements`).
fn expected_failure(way: Way, mode: Mode, pgbouncer_prepares: bool) -> bool {
    way == Way::Pgbouncer && mode == Mode::Prepared && !pgbouncer_prepares
}

/// PgBouncer's -M prepared runs are skipped when they can only fail and its -M extended runs
/// too: the prepared table then compares pgwarm with its extended figures.
fn skipped(way: Way, mode: Mode, modes: &[Mode], pgbouncer_prepares: bool) -> bool {
    expected_failure(way, mode, pgbouncer_prepares) && modes.contains(&Mode::Extended)
}

/// The mode whose runs give `way`'s figures in `mode`'s table and chart: PgBouncer's extended
/// ones in the prepared table when it has no prepared runs (they were skipped).
fn figure_mode(way: Way, mode: Mode, runs: &[Run]) -> Mode {
    let ran = |m: Mode| runs.iter().any(|r| r.way == way && r.mode == m);
    match way == Way::Pgbouncer && mode == Mode::Prepared && !ran(mode) && ran(Mode::Extended) {
        true => Mode::Extended,
        false => mode,
    }
}

// ---- runs ---------------------------------------------------------------------------------------

/// One pgbench run: a row of runs.tsv.
#[derive(Clone, Debug)]
struct Run {
    round: usize,
    position: usize,
    mode: Mode,
    clients: u32,
    way: Way,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
enum Outcome {
    Measured {
        tps: f64,
        transactions: u64,
        cpu: RunCpu,
    },
    Failed {
        transactions: Option<u64>,
        /// Why, and pgbench's first error line (and first client abort line, if another).
        why: String,
        error: String,
        abort: Option<String>,
    },
}

const RUNS_HEADER: &str = "round\tposition\tmode\tclients\ttarget\ttps\ttransactions\tpooler_cpu_ticks\tpooler_cpu_us_per_txn\tfailure";

impl Run {
    fn tps(&self) -> Option<f64> {
        match self.outcome {
            Outcome::Measured { tps, .. } => Some(tps),
            Outcome::Failed { .. } => None,
        }
    }

    fn cpu_us(&self) -> Option<f64> {
        match self.outcome {
            Outcome::Measured { cpu, .. } => cpu.us(),
            Outcome::Failed { .. } => None,
        }
    }

    fn tsv_line(&self) -> String {
        let head = format!(
            "{}\t{}\t{}\t{}\t{}",
            self.round,
            self.position,
            self.mode.as_str(),
            self.clients,
            self.way.name()
        );
        match &self.outcome {
            Outcome::Measured {
                tps,
                transactions,
                cpu,
            } => {
                let (ticks, us) = cpu.columns();
                format!("{head}\t{tps}\t{transactions}\t{ticks}\t{us}\t")
            }
            Outcome::Failed {
                transactions,
                why,
                error,
                abort,
            } => {
                let txns = transactions.map(|t| t.to_string()).unwrap_or_default();
                let abort = abort
                    .as_ref()
                    .map(|a| format!(" | {}", a.replace('\t', " ")))
                    .unwrap_or_default();
                let error = error.replace('\t', " ");
                format!("{head}\tFAILED\t{txns}\t\t\t{why}: {error}{abort}")
            }
        }
    }

    /// A row of runs.tsv, its columns found by `header`'s names.
    fn from_tsv(header: &[&str], line: &str) -> Result<Run, String> {
        let fields: Vec<&str> = line.split('\t').collect();
        let col = |name: &str| -> Result<&str, String> {
            let i = header
                .iter()
                .position(|h| *h == name)
                .ok_or(format!("no column {name}"))?;
            Ok(fields.get(i).copied().unwrap_or_default())
        };
        let number = |name: &str| -> Result<u64, String> {
            col(name)?
                .parse()
                .map_err(|_| format!("{name} is not a number"))
        };
        let way = Way::parse(col("target")?).ok_or("an unknown target")?;
        let transactions = col("transactions")?.parse::<u64>().ok();
        let outcome = match col("tps")? {
            "FAILED" => Outcome::Failed {
                transactions,
                why: col("failure")?.to_owned(),
                error: String::new(),
                abort: None,
            },
            tps => Outcome::Measured {
                tps: tps.parse().map_err(|_| format!("tps {tps:?}"))?,
                transactions: transactions.ok_or("no transactions")?,
                cpu: RunCpu::from_columns(col("pooler_cpu_ticks")?, col("pooler_cpu_us_per_txn")?)?,
            },
        };
        Ok(Run {
            round: number("round")? as usize,
            position: number("position")? as usize,
            mode: Mode::parse(col("mode")?).ok_or("an unknown mode")?,
            clients: number("clients")? as u32,
            way,
            outcome,
        })
    }
}

/// Every run, and what the report and the charts read from them.
struct Results {
    rounds: usize,
    modes: Vec<Mode>,
    clients: Vec<u32>,
    runs: Vec<Run>,
}

impl Results {
    /// `figure` of `way` in `mode`'s table with `clients` clients, per round (None: failed).
    fn per_round(
        &self,
        figure: fn(&Run) -> Option<f64>,
        mode: Mode,
        clients: u32,
        way: Way,
    ) -> Vec<Option<f64>> {
        let mode = figure_mode(way, mode, &self.runs);
        (1..=self.rounds)
            .map(|round| {
                self.runs
                    .iter()
                    .find(|r| (r.round, r.mode, r.clients, r.way) == (round, mode, clients, way))
                    .and_then(figure)
            })
            .collect()
    }

    /// charts.tsv: per mode and client count (ascending), the relays' median TPS as a share of
    /// direct's and their median CPU µs per transaction; NaN for a cell with a failed run.
    fn charts_tsv(&self) -> String {
        let mut clients = self.clients.clone();
        clients.sort_unstable();
        let mut t = String::from("cell");
        for way in RELAYS {
            let _ = write!(t, "\t{}_tps_share", way.name());
        }
        for way in RELAYS {
            let _ = write!(t, "\t{}_cpu_us", way.name());
        }
        t.push('\n');
        let cell = |v: Option<f64>| v.map_or("NaN".to_owned(), |v| format!("{v:.4}"));
        for &mode in &self.modes {
            for &c in &clients {
                let median = |figure, way| Cell::of(&self.per_round(figure, mode, c, way)).value();
                let direct = median(Run::tps, Way::Direct).filter(|d| *d > 0.0);
                let _ = write!(t, "{} c={c}", mode.as_str());
                for way in RELAYS {
                    let share = median(Run::tps, way).zip(direct).map(|(w, d)| w / d);
                    let _ = write!(t, "\t{}", cell(share));
                }
                for way in RELAYS {
                    let _ = write!(t, "\t{}", cell(median(Run::cpu_us, way)));
                }
                t.push('\n');
            }
        }
        t
    }

    /// The runs of a runs.tsv: modes and client counts in the order they first appear.
    fn parse(text: &str) -> Result<Results, String> {
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines.next().ok_or("it is empty")?.1.split('\t').collect();
        let mut results = Results {
            rounds: 0,
            modes: Vec::new(),
            clients: Vec::new(),
            runs: Vec::new(),
        };
        for (i, line) in lines.filter(|(_, l)| !l.is_empty()) {
            let run = Run::from_tsv(&header, line).map_err(|e| format!("line {}: {e}", i + 1))?;
            results.rounds = results.rounds.max(run.round);
            if !results.modes.contains(&run.mode) {
                results.modes.push(run.mode);
            }
            if !results.clients.contains(&run.clients) {
                results.clients.push(run.clients);
            }
            results.runs.push(run);
        }
        Ok(results)
    }
}

/// `--summarize`: charts.tsv from a runs.tsv.
fn summarize(runs_tsv: &Path, out: Option<&Path>) -> ExitCode {
    let text = match fs::read_to_string(runs_tsv) {
        Ok(text) => text,
        Err(e) => {
            say(format!("{}: {e}", runs_tsv.display()));
            return ExitCode::from(2);
        }
    };
    let results = match Results::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            say(format!(
                "{} is not a runs.tsv of bench: {e}",
                runs_tsv.display()
            ));
            return ExitCode::from(2);
        }
    };
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| runs_tsv.parent().map(Path::to_path_buf).unwrap_or_default());
    write_charts(&results, &out)
}

fn write_charts(results: &Results, out: &Path) -> ExitCode {
    let path = out.join("charts.tsv");
    match fs::create_dir_all(out).and_then(|()| fs::write(&path, results.charts_tsv())) {
        Ok(()) => {
            say(format!("chart data written to {}", path.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(format!("{}: {e}", path.display()));
            ExitCode::FAILURE
        }
    }
}

// ---- the benchmark ------------------------------------------------------------------------------

/// The three relays, started against the cluster.
struct Relays {
    pgwarm: Pgwarm,
    pgbouncer: Pgbouncer,
    haproxy: Haproxy,
}

impl Relays {
    fn start(s: &Settings, db: &Target) -> Relays {
        // The harness runs $PGWARM_BIN (Pgwarm::builder), which Settings checked: s.pgwarm_bin.
        let pgwarm = setup::pgwarm(PROGRAM, db, &s.passthrough, &PGWARM_SETTINGS);
        let max_clients = (MAX_CLIENTS + 10).to_string();
        let mut settings = vec![
            ("default_pool_size", POOL_SIZE),
            ("max_client_conn", max_clients.as_str()),
            ("ignore_startup_parameters", "extra_float_digits"),
        ];
        if s.pgbouncer_prepares {
            // 1.24's default, set for 1.21 to 1.23 too: the same for every version that has it.
            settings.push(("max_prepared_statements", "200"));
        }
        let pgbouncer = Pgbouncer::start_bin(&s.pgbouncer_bin, db, &db.password, &settings);
        say(format!(
            "{} ({}) on 127.0.0.1:{}",
            s.pgbouncer_version,
            s.pgbouncer_bin.display(),
            pgbouncer.port
        ));
        let haproxy = Haproxy::start(db);
        say(format!(
            "{} on 127.0.0.1:{}",
            Haproxy::version(),
            haproxy.port
        ));
        Relays {
            pgwarm,
            pgbouncer,
            haproxy,
        }
    }

    fn target(&self, way: Way, db: &Target) -> Target {
        let port = match way {
            Way::Direct => db.port,
            Way::Pgwarm => self.pgwarm.port,
            Way::Pgbouncer => self.pgbouncer.port,
            Way::Haproxy => self.haproxy.port,
        };
        Target { port, ..db.clone() }
    }

    /// Each relay's name, executable and pid.
    fn processes(&self, s: &Settings) -> [(&'static str, PathBuf, u32); 3] {
        [
            ("pgwarm", s.pgwarm_bin.clone(), self.pgwarm.pid()),
            ("pgbouncer", s.pgbouncer_bin.clone(), self.pgbouncer.pid()),
            ("haproxy", tool("haproxy"), self.haproxy.pid()),
        ]
    }

    fn save_logs(&self, out: &OutDirs) {
        out.save_log("pgwarm.log", &self.pgwarm.log());
        out.save_log("pgbouncer.log", &self.pgbouncer.log());
        out.save_log("haproxy.log", &self.haproxy.log());
    }
}

/// What the report needs besides the runs.
struct Session {
    finished: Finished,
    total_runs: usize,
    ticks_per_second: u64,
}

fn run() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            say(e);
            return ExitCode::from(2);
        }
    };
    setup::run(PROGRAM, "", "some runs FAILED", |out| {
        // charts.tsv is this run's or none: scripts/bench.sh draws the charts when it is there.
        let _ = fs::remove_file(out.root.join("charts.tsv"));
        on_database(&settings, out, clock_ticks_per_second()?)
    })
}

fn on_database(s: &Settings, out: &OutDirs, ticks_per_second: u64) -> Result<bool, Halt> {
    let db = setup::database(PROGRAM, s.scale)?;
    let relays = Relays::start(s, &db);
    let measured = stop::check()
        .map_err(Halt::from)
        .and_then(|()| measure(s, out, &relays, &db, ticks_per_second));
    // The logs as they are when the servers stop (they are killed as `relays` drops).
    relays.save_logs(out);
    drop(relays);
    let (results, session, mut all_counted) = measured?;

    let report = report(s, &results, &session);
    let report_path = out.root.join("report.txt");
    fs::write(&report_path, &report).map_err(|e| format!("{}: {e}", report_path.display()))?;
    println!("\n{report}");
    say(format!(
        "report written to {} (per-run figures in {})",
        report_path.display(),
        out.root.join("runs.tsv").display()
    ));
    all_counted &= write_charts(&results, &out.root) == ExitCode::SUCCESS;
    Ok(all_counted)
}

/// The sanity checks, then every run; the runs, the session's facts, and whether every run
/// that should count did.
fn measure(
    s: &Settings,
    out: &OutDirs,
    relays: &Relays,
    db: &Target,
    ticks_per_second: u64,
) -> Result<(Results, Session, bool), Halt> {
    let client = |way: Way| Client::new(relays.target(way, db), SslMode::Disable);
    // One query through each target before measuring: a broken path fails here, clearly.
    for way in WAYS {
        let answer = client(way).query("SELECT count(*) FROM pgbench_branches");
        if answer.as_deref() != Ok(s.scale.to_string().as_str()) {
            return Err(Halt::Failed(format!(
                "sanity query through {} (port {}) failed: {answer:?}",
                way.name(),
                relays.target(way, db).port
            )));
        }
    }
    let mut runner = Runner::start(
        PROGRAM,
        &relays.processes(s),
        out.root.join("runs.tsv"),
        RUNS_HEADER,
        ticks_per_second,
    )?;
    let total_runs: usize = s
        .modes
        .iter()
        .flat_map(|m| WAYS.map(|w| (w, *m)))
        .filter(|(w, m)| !skipped(*w, *m, &s.modes, s.pgbouncer_prepares))
        .count()
        * s.rounds
        * s.clients.len();
    say(format!(
        "running {total_runs} pgbench runs of {}s each, {} rounds (load average before: {})",
        s.duration,
        s.rounds,
        runner.load_before()
    ));
    let mut runs = Vec::new();
    let mut all_counted = true;
    for round in 1..=s.rounds {
        let order = round_order(&WAYS, round, 1);
        for &mode in &s.modes {
            for &clients in &s.clients {
                let ways = order
                    .iter()
                    .filter(|w| !skipped(**w, mode, &s.modes, s.pgbouncer_prepares));
                for (i, &way) in ways.enumerate() {
                    let label = format!(
                        "[{}/{total_runs}] round {round}/{} {} c={clients} {}",
                        runs.len() + 1,
                        s.rounds,
                        mode.as_str(),
                        way.name()
                    );
                    let file = out.runs.join(format!(
                        "{}-c{clients}-{}-r{round}.txt",
                        mode.as_str(),
                        way.name()
                    ));
                    let slot = Slot { way, mode, clients };
                    let (outcome, counted) =
                        one_run(s, &runner, &client(way), slot, &file, &label)?;
                    all_counted &= counted;
                    let run = Run {
                        round,
                        position: i + 1,
                        mode,
                        clients,
                        way,
                        outcome,
                    };
                    runner.record(&run.tsv_line())?;
                    runs.push(run);
                }
            }
        }
    }
    let finished = runner.finish(&out.logs);
    all_counted &= finished.servers_alive;
    let results = Results {
        rounds: s.rounds,
        modes: s.modes.clone(),
        clients: s.clients.clone(),
        runs,
    };
    let session = Session {
        finished,
        total_runs,
        ticks_per_second,
    };
    Ok((results, session, all_counted))
}

/// Which run: a target, a mode and a client count.
#[derive(Clone, Copy)]
struct Slot {
    way: Way,
    mode: Mode,
    clients: u32,
}

/// One pgbench run, its output saved to `file`, said on stderr as `label`; its outcome, and
/// whether it counts as it should (a known limitation does not fail the benchmark).
fn one_run(
    s: &Settings,
    runner: &Runner,
    client: &Client,
    Slot { way, mode, clients }: Slot,
    file: &Path,
    label: &str,
) -> Result<(Outcome, bool), Halt> {
    let args = [
        "-n".to_owned(),
        "-S".into(),
        "-M".into(),
        mode.as_str().into(),
        "-T".into(),
        s.duration.to_string(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        clients.min(2).to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = RELAYS.contains(&way).then(|| way.name());
    let timed = runner.pgbench(client, &args, s.duration, server, file)?;
    let summary = &timed.pgbench.summary;
    let Some(failure) = timed.pgbench.failure(&[]) else {
        let tps = summary.tps.expect("a run that counts has a TPS");
        let (note, cpu_read) = timed.cpu_note("txn");
        say(format!("{label}: {tps} tps{note}"));
        let outcome = Outcome::Measured {
            tps,
            transactions: summary.processed,
            cpu: timed.cpu,
        };
        return Ok((outcome, cpu_read));
    };
    let mut why = failure.why();
    // A known limitation is reported like any failure but does not fail the benchmark: the
    // other targets' figures are what it is for.
    let expected = expected_failure(way, mode, s.pgbouncer_prepares);
    if expected {
        why.push_str("; expected");
    }
    // Its TPS, if pgbench printed one, is shown but counts nowhere.
    if let Some(tps) = summary.tps {
        let _ = write!(why, "; pgbench's tps {tps:.1}, not counted");
    }
    say(format!("{label}: FAILED ({why}), see {}", file.display()));
    say(format!("    {}", failure.error_line()));
    if let Some(abort) = &failure.first_abort {
        say(format!("    {abort}"));
    }
    let outcome = Outcome::Failed {
        transactions: Some(summary.processed).filter(|t| *t > 0),
        why,
        error: failure.error_line().to_owned(),
        abort: failure.first_abort,
    };
    Ok((outcome, expected))
}

// ---- the report ---------------------------------------------------------------------------------

fn report(s: &Settings, results: &Results, session: &Session) -> String {
    let mut r = String::new();
    let (bytes, _) = facts::file_digest(&s.pgwarm_bin).unwrap_or((0, "?".into()));
    let postgres = first_line_of(&cluster().bindir.join("postgres"), "--version");
    let modes: Vec<&str> = s.modes.iter().map(|m| m.as_str()).collect();
    let first_order: Vec<&str> = round_order(&WAYS, 1, 1).iter().map(|w| w.name()).collect();
    let _ = writeln!(r, "pgwarm benchmark, {}", facts::utc_now());
    let _ = writeln!(
        r,
        "commit: {}   nproc: {}   pgwarm binary: {bytes} bytes ({:.1} MiB)",
        facts::commit(),
        facts::nproc(),
        bytes as f64 / 1_048_576.0
    );
    let _ = writeln!(
        r,
        "pgbench -n -S -M MODE -T {} -c C -j min(C,2), scale {}; modes: {}",
        s.duration,
        s.scale,
        modes.join(" ")
    );
    let _ = writeln!(
        r,
        "{postgres}; {}; {}, one thread, mode tcp",
        s.pgbouncer_version,
        Haproxy::version()
    );
    let _ = writeln!(
        r,
        "pool size {POOL_SIZE} (pgwarm and PgBouncer, transaction mode); pgwarm extra env: {}",
        show_env(&s.passthrough)
    );
    let _ = writeln!(
        r,
        "{} rounds; in each, per mode and client count, the targets back to back in an order",
        s.rounds
    );
    let _ = writeln!(
        r,
        "rotating each round ({} first); {} runs took {}s",
        first_order.join(","),
        session.total_runs,
        session.finished.seconds
    );
    let _ = writeln!(
        r,
        "load average before: {}   after: {}",
        session.finished.load_before, session.finished.load_after
    );
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "TPS: median over the {} rounds. Ratios: of those medians, (min-max of the per-round ratios).",
        s.rounds
    );
    let _ = writeln!(
        r,
        "us/txn: the process's CPU time per transaction in µs (utime+stime from /proc/PID/stat around"
    );
    let _ = writeln!(
        r,
        "each run, CLK_TCK {}, / transactions processed), median over the rounds. CPU ratios below 1:",
        session.ticks_per_second
    );
    let _ = writeln!(
        r,
        "pgwarm spends less. HAProxy only copies bytes (no pooling): the floor for a relay's CPU."
    );
    let _ = writeln!(
        r,
        "FAILED k/N: k of the N runs failed; ratios then show -. Each failed run is listed below its"
    );
    let _ = writeln!(
        r,
        "table with pgbench's first error line (and its first client abort line, if another)."
    );
    for &mode in &s.modes {
        let _ = writeln!(r);
        let note = match skipped(Way::Pgbouncer, mode, &s.modes, s.pgbouncer_prepares) {
            true => " (PgBouncer: its -M extended figures; before 1.21 it cannot run prepared statements in transaction mode)",
            false => "",
        };
        let _ = writeln!(r, "-M {}{note}", mode.as_str());
        let _ = writeln!(
            r,
            "{:>7} {:>10} {:>10} {:>10} {:>10}  {:<17} {:<17} {:<17}",
            "clients",
            "direct",
            "pgwarm",
            "pgbouncer",
            "haproxy",
            "pgwarm/direct",
            "pgwarm/pgbouncer",
            "pgwarm/haproxy"
        );
        for &c in &s.clients {
            let tps = |way| results.per_round(Run::tps, mode, c, way);
            let show = |way| Cell::of(&tps(way)).show(0);
            let _ = writeln!(
                r,
                "{c:>7} {:>10} {:>10} {:>10} {:>10}  {:<17} {:<17} {:<17}",
                show(Way::Direct),
                show(Way::Pgwarm),
                show(Way::Pgbouncer),
                show(Way::Haproxy),
                ratio_cell(&tps(Way::Pgwarm), &tps(Way::Direct)),
                ratio_cell(&tps(Way::Pgwarm), &tps(Way::Pgbouncer)),
                ratio_cell(&tps(Way::Pgwarm), &tps(Way::Haproxy)),
            );
        }
        let _ = writeln!(
            r,
            "{:>7} {:>10} {:>10} {:>10}  {:<21} {:<21}",
            "us/txn",
            "pgwarm",
            "pgbouncer",
            "haproxy",
            "CPU pgwarm/pgbouncer",
            "CPU pgwarm/haproxy"
        );
        for &c in &s.clients {
            let cpu = |way| results.per_round(Run::cpu_us, mode, c, way);
            let show = |way| Cell::of(&cpu(way)).show(2);
            let _ = writeln!(
                r,
                "{:>7} {:>10} {:>10} {:>10}  {:<21} {:<21}",
                format!("c={c}"),
                show(Way::Pgwarm),
                show(Way::Pgbouncer),
                show(Way::Haproxy),
                ratio_cell(&cpu(Way::Pgwarm), &cpu(Way::Pgbouncer)),
                ratio_cell(&cpu(Way::Pgwarm), &cpu(Way::Haproxy)),
            );
        }
        // The failed runs of this mode, each with why and pgbench's first error line.
        for &c in &s.clients {
            for way in WAYS {
                for run in results
                    .runs
                    .iter()
                    .filter(|r| (r.mode, r.clients, r.way) == (mode, c, way))
                {
                    if let Outcome::Failed {
                        why, error, abort, ..
                    } = &run.outcome
                    {
                        let _ = writeln!(
                            r,
                            "  FAILED c={c} {} round {}: {why}",
                            way.name(),
                            run.round
                        );
                        let _ = writeln!(r, "      {error}");
                        if let Some(abort) = abort {
                            let _ = writeln!(r, "      {abort}");
                        }
                    }
                }
            }
        }
    }
    let expected = results
        .runs
        .iter()
        .filter(|r| {
            matches!(r.outcome, Outcome::Failed { .. })
                && expected_failure(r.way, r.mode, s.pgbouncer_prepares)
        })
        .count();
    if expected > 0 {
        let _ = writeln!(r);
        let _ = writeln!(
            r,
            "{expected} runs failed as expected: PgBouncer before 1.21 (max_prepared_statements) cannot"
        );
        let _ = writeln!(
            r,
            "run -M prepared in transaction mode (a client's PREPARE fails with \"already exists\" where"
        );
        let _ = writeln!(
            r,
            "another client's statement of that name sits on the server connection, or its EXECUTE with"
        );
        let _ = writeln!(r, "\"does not exist\" where none does).");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runs.tsv where PgBouncer's prepared runs were skipped, HAProxy's extended run failed and
    /// its prepared CPU time could not be read, and what charts.tsv makes of it.
    #[test]
    fn charts_follow_the_report_for_pgbouncers_prepared_cells() {
        let tsv = format!(
            "{RUNS_HEADER}\n\
             1\t1\textended\t1\tdirect\t6000.0\t30000\t\t\t\n\
             1\t2\textended\t1\tpgwarm\t4800.0\t24000\t120\t50.0000\t\n\
             1\t3\textended\t1\tpgbouncer\t4000.0\t20000\t110\t55.0000\t\n\
             1\t4\textended\t1\thaproxy\tFAILED\t29\t\t\texit status 2: pgbench: error: x\n\
             1\t1\tprepared\t1\tdirect\t8000.0\t40000\t\t\t\n\
             1\t2\tprepared\t1\tpgwarm\t6000.0\t30000\t130\t43.3333\t\n\
             1\t3\tprepared\t1\thaproxy\t5000.0\t25000\t100\tFAILED\t\n"
        );
        let results = Results::parse(&tsv).expect("a runs.tsv");
        assert_eq!(results.modes, [Mode::Extended, Mode::Prepared]);
        assert_eq!(
            results.charts_tsv(),
            "cell\tpgwarm_tps_share\tpgbouncer_tps_share\thaproxy_tps_share\t\
             pgwarm_cpu_us\tpgbouncer_cpu_us\thaproxy_cpu_us\n\
             extended c=1\t0.8000\t0.6667\tNaN\t50.0000\t55.0000\tNaN\n\
             prepared c=1\t0.7500\t0.5000\t0.6250\t43.3333\t55.0000\tNaN\n"
        );
    }

    /// A PgBouncer that ran -M prepared (1.21 and later) is charted with its own prepared runs.
    #[test]
    fn a_pgbouncer_that_ran_prepared_is_charted_with_those_runs() {
        let tsv = format!(
            "{RUNS_HEADER}\n\
             1\t1\textended\t1\tpgbouncer\t4000.0\t20000\t110\t55.0000\t\n\
             1\t1\tprepared\t1\tdirect\t8000.0\t40000\t\t\t\n\
             1\t2\tprepared\t1\tpgbouncer\t6400.0\t32000\t100\t31.2500\t\n"
        );
        let results = Results::parse(&tsv).expect("a runs.tsv");
        assert_eq!(
            figure_mode(Way::Pgbouncer, Mode::Prepared, &results.runs),
            Mode::Prepared
        );
        assert!(results
            .charts_tsv()
            .contains("prepared c=1\tNaN\t0.8000\tNaN\tNaN\t31.2500\tNaN"));
    }

    #[test]
    fn a_run_writes_and_reads_back_as_one_row_of_runs_tsv() {
        let header: Vec<&str> = RUNS_HEADER.split('\t').collect();
        let measured = Run {
            round: 2,
            position: 3,
            mode: Mode::Simple,
            clients: 16,
            way: Way::Pgbouncer,
            outcome: Outcome::Measured {
                tps: 19239.114,
                transactions: 96195,
                cpu: RunCpu::Measured {
                    ticks: 233,
                    us_per_item: 24.2216,
                },
            },
        };
        let line = measured.tsv_line();
        assert_eq!(
            line,
            "2\t3\tsimple\t16\tpgbouncer\t19239.114\t96195\t233\t24.2216\t"
        );
        let back = Run::from_tsv(&header, &line).expect("its own row");
        assert_eq!(back.tsv_line(), line);
        let failed = Run {
            outcome: Outcome::Failed {
                transactions: Some(29),
                why: "exit status 2, aborted".into(),
                error: "pgbench: error: ERROR:  x\ty".into(),
                abort: Some("client 1 aborted in command 1".into()),
            },
            ..measured
        };
        assert_eq!(
            failed.tsv_line(),
            "2\t3\tsimple\t16\tpgbouncer\tFAILED\t29\t\t\texit status 2, aborted: \
             pgbench: error: ERROR:  x y | client 1 aborted in command 1"
        );
        assert_eq!(
            Run::from_tsv(&header, &failed.tsv_line()).unwrap().tps(),
            None
        );
    }
}
