//! `bench-lambda`: a Lambda execution environment's CPU, made on this machine, and what a naive
//! handler pays per invocation in it. Lambda gives a function CPU in proportion to its memory,
//! and at 128 MB a TLS handshake or a SCRAM login that takes a millisecond on a whole core takes
//! tens: the figures of `bench-connect` and `connect-rtt`, on whole cores, do not say what a
//! small function sees. Here the handler (Python with psycopg, Node.js with node-postgres) and
//! pgwarm run in one cgroup with the share of 128, 512 or 1,769 MB ([`cgroup`]); the handler
//! connects, runs `SELECT 1` and closes per invocation ([`handler`]), directly or through pgwarm
//! ([`settings::Way`]), with the database at a round trip ([`crate::harness::DelayRelay`]); per
//! cell ([`cell`]) the invocation's p50 and p99 and the CPU of both processes per invocation;
//! and cold starts ([`cold`]). The binary's doc says how to run it; [`report`] writes it up.

mod cell;
mod cgroup;
mod cold;
mod handler;
mod report;
mod settings;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::drivers::bench::cpu::{comm_of, CpuClock};
use crate::drivers::bench::out_dirs::OutDirs;
use crate::drivers::bench::settings::passthrough;
use crate::drivers::children::{end_on_signal, supervise};
use crate::drivers::facts;
use crate::drivers::pgwarm_env::show_env;
use crate::harness::{cluster, pgwarm_bin, DelayRelay, Pgwarm, PgwarmBuilder, Target, TestCerts};
use cell::{Cell, Place};
use cgroup::CpuGroup;
use report::ColdCell;
use settings::Settings;

const PROGRAM: &str = "bench-lambda";

/// The pgwarm settings the benchmark fixes, besides the connection's (the caller's other
/// `PGWARM_*` pass through).
const FIXED: [(&str, &str); 2] = [("PGWARM_SSLMODE", "require"), ("PGWARM_LOG_LEVEL", "warn")];

/// Runs the benchmark as the settings in the environment say; the exit status: 0, 1 when an
/// invocation or a cold start failed (or a step did), 2 for a bad setting.
pub fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return ExitCode::from(2);
        }
    };
    supervise();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    end_on_signal(runtime.handle(), PROGRAM);
    let out = match OutDirs::create("lambda-") {
        Ok(out) => out,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return ExitCode::from(2);
        }
    };
    let group = match CpuGroup::create() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{PROGRAM}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("{PROGRAM}: CPU share through {}", group.describe());
    let load_before = facts::load_average();
    let began = Instant::now();

    let pg = cluster();
    let db = pg.fresh_target();
    pg.enable_ssl(&TestCerts::new(&["localhost", "127.0.0.1"]));
    let passthrough = passthrough(&FIXED);
    let builder = |far: &Target| {
        Pgwarm::builder(far)
            .envs(passthrough.iter().cloned())
            .envs(FIXED)
    };

    let mut cells = Vec::new();
    let mut failed = Vec::new();
    for &rtt_ms in &settings.rtts {
        let (_relay, far) = at_distance(&db, rtt_ms);
        // A pgwarm per way through it, as its settings differ: the defaults, and client TLS on.
        let mut pgwarms = Vec::new();
        for way in settings.ways.iter().filter(|w| w.through_pgwarm()) {
            let pgwarm = builder(&far)
                .envs(way.pgwarm_env().iter().copied())
                .env("PGWARM_METRICS", "off")
                .spawn();
            let clock = group
                .add(pgwarm.pid())
                .and_then(|()| CpuClock::new(&comm_of(&pgwarm_bin()), pgwarm.pid()));
            match clock {
                Ok(clock) => pgwarms.push((*way, pgwarm, clock)),
                Err(e) => {
                    eprintln!("{PROGRAM}: pgwarm: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        for &memory_mb in &settings.memories {
            if let Err(e) = group.set_memory(memory_mb) {
                eprintln!("{PROGRAM}: {e}");
                return ExitCode::FAILURE;
            }
            for &driver in &settings.drivers {
                for &way in &settings.ways {
                    let place = Place {
                        driver,
                        way,
                        memory_mb,
                        rtt_ms,
                    };
                    let through = pgwarms.iter().find(|(w, _, _)| *w == way);
                    let target = match through {
                        Some((_, pgwarm, _)) => pgwarm.target(),
                        None => far.clone(),
                    };
                    let clock = through.map(|(_, _, clock)| clock);
                    let cell = cell::run(place, &settings, &group, &target, clock);
                    say_cell(&cell);
                    out.save_run(&report::cell_file(&cell), &report::invocations_tsv(&cell));
                    if let Some(e) = &cell.first_error {
                        failed.push(format!("{}: {e}", report::cell_file(&cell)));
                    }
                    cells.push(cell);
                }
            }
        }
        for (way, pgwarm, _) in &pgwarms {
            let way = way.name();
            if pgwarm_gone(pgwarm) {
                failed.push(format!(
                    "pgwarm ({way}) exited during the cells at {rtt_ms} ms"
                ));
            }
            out.save_log(&format!("pgwarm-{way}-{rtt_ms}ms.log"), &pgwarm.log());
        }
    }
    let warm_seconds = began.elapsed().as_secs();

    let cold = cold_starts(&settings, &group, &db, &runtime, |far| {
        // pgwarm's own defaults, as in a function, but for its TLS to the database.
        builder(far)
            .env_remove("PGWARM_LOG_LEVEL")
            .env_remove("PGWARM_LOG_FORMAT")
    });
    failed.extend(report::cold_errors(&cold));

    let text = header(
        &settings,
        &group,
        &passthrough,
        &cells,
        &load_before,
        warm_seconds,
    ) + "\n"
        + &report::warm_table(&cells)
        + "\n"
        + &cold_header(&settings)
        + "\n"
        + &report::cold_table(&cold);
    out.save_log("postgres.log", &pg.log());
    let published = out
        .write_table(&report::warm_tsv(&cells))
        .and_then(|()| out.publish(PROGRAM, &text));
    if let Err(e) = published {
        failed.push(e);
    }
    drop(group);
    match failed.is_empty() {
        true => ExitCode::SUCCESS,
        false => {
            for f in &failed {
                eprintln!("{PROGRAM}: FAILED: {f}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The database as seen from `rtt_ms` away: a delay relay in front of it (none at 0).
fn at_distance(db: &Target, rtt_ms: f64) -> (Option<DelayRelay>, Target) {
    if rtt_ms <= 0.0 {
        return (None, db.clone());
    }
    let upstream = format!("127.0.0.1:{}", db.port)
        .parse()
        .expect("an address");
    let relay = DelayRelay::start(upstream, Duration::from_secs_f64(rtt_ms / 1000.0));
    let far = Target {
        port: relay.addr.port(),
        ..db.clone()
    };
    (Some(relay), far)
}

fn pgwarm_gone(pgwarm: &Pgwarm) -> bool {
    crate::harness::process_state(pgwarm.pid()).is_none_or(|s| s == 'Z')
}

/// The cold starts, per round trip, memory size and driver, `settings.cold_starts` each.
fn cold_starts(
    settings: &Settings,
    group: &CpuGroup,
    db: &Target,
    runtime: &tokio::runtime::Runtime,
    builder: impl Fn(&Target) -> PgwarmBuilder,
) -> Vec<ColdCell> {
    let wrapper = cold::Wrapper::new();
    let bin = pgwarm_bin();
    let mut cells = Vec::new();
    if settings.cold_starts == 0 {
        return cells;
    }
    for &rtt_ms in &settings.rtts {
        let (_relay, far) = at_distance(db, rtt_ms);
        for &memory_mb in &settings.cold_memories {
            if let Err(e) = group.set_memory(memory_mb) {
                eprintln!("{PROGRAM}: {e}");
                continue;
            }
            for &driver in &settings.drivers {
                let starts: Vec<_> = (0..settings.cold_starts)
                    .map(|_| {
                        let once = cold::once(group, &wrapper, builder(&far), &bin, &far, driver);
                        runtime.block_on(once)
                    })
                    .collect();
                let cell = ColdCell {
                    driver,
                    memory_mb,
                    rtt_ms,
                    starts,
                };
                eprintln!(
                    "{PROGRAM}: cold start, {} at {memory_mb} MB, {rtt_ms} ms: {} ok of {}",
                    driver.name(),
                    cell.starts.iter().filter(|s| s.is_ok()).count(),
                    cell.starts.len()
                );
                cells.push(cell);
            }
        }
    }
    cells
}

fn say_cell(cell: &Cell) {
    let p = cell.place;
    let p50 = crate::drivers::figures::median(&cell.walls()).unwrap_or(f64::NAN);
    eprintln!(
        "{PROGRAM}: {} {} at {} MB, {} ms: p50 {p50:.2} ms, handler CPU {} ms/inv, {} failed",
        p.driver.name(),
        p.way.name(),
        p.memory_mb,
        p.rtt_ms,
        cell.handler_cpu_ms
            .map_or("?".into(), |c| format!("{c:.2}")),
        cell.failed
    );
}

/// What the report starts with: when, what, where, and how the cells were measured.
fn header(
    settings: &Settings,
    group: &CpuGroup,
    passthrough: &[(String, String)],
    cells: &[Cell],
    load_before: &str,
    warm_seconds: u64,
) -> String {
    let bin = pgwarm_bin();
    let digest = facts::file_digest(&bin)
        .map_or_else(|e| e, |(bytes, sha)| format!("{bytes} bytes, sha256 {sha}"));
    let mut versions: Vec<String> = Vec::new();
    for cell in cells {
        if !cell.versions.is_empty() && !versions.contains(&cell.versions) {
            versions.push(cell.versions.clone());
        }
    }
    let server = cluster().psql_super("SHOW server_version");
    format!(
        "pgwarm Lambda-shaped benchmark (bench-lambda), {}\n\
         commit: {}   nproc: {}   pgwarm: {} ({digest})\n\
         load average before: {load_before}   after: {}\n\
         CPU share: {}, period {} µs, quota = period × memory / {} MB (at most the period);\n\
         \x20 the handler and pgwarm in the group, the database, the delay relay and this driver outside\n\
         database: PostgreSQL {server}, ssl = on (a throwaway CA's certificate), SCRAM; the round trip\n\
         \x20 made by a user-space delay relay in front of it (tests/src/harness/delay.rs)\n\
         pgwarm: PGWARM_SSLMODE=require (one warm TLS server connection, through the relay), no client\n\
         \x20 authentication; one pgwarm per way through it: pgwarm-plain with its defaults (client TLS off:\n\
         \x20 psycopg's sslmode=prefer is answered N), pgwarm-tls with PGWARM_CLIENT_TLS=on (its own\n\
         \x20 self-signed certificate) and the handler requiring TLS; extra env: {}\n\
         handlers: {}; per invocation connect + SELECT 1 (autocommit) + close, timed by the handler\n\
         per cell: a fresh handler, {} warm-up invocations, then {} measured, each {} ms after the\n\
         \x20 previous one ended; the cells took {warm_seconds} s\n\
         CPU ms/inv: utime + stime of the process (/proc/PID/stat, all threads, 10 ms ticks) over the\n\
         \x20 measured invocations / their number; pgwarm's only for the ways through it. In brackets\n\
         \x20 the median of the handler's own clock around each invocation (Python's process_time,\n\
         \x20 Node's process.cpuUsage): finer, and it leaves out what the process does between them.\n\
         \x20 throttled periods/inv: nr_throttled of the group's cpu.stat over the cell / invocations\n",
        facts::utc_now(),
        facts::commit(),
        facts::nproc(),
        bin.display(),
        facts::load_average(),
        group.describe(),
        cgroup::PERIOD_US,
        cgroup::ONE_VCPU_MB,
        show_env(passthrough),
        versions.join("; "),
        settings.warmup,
        settings.invocations,
        settings.gap.as_millis(),
    )
}

fn cold_header(settings: &Settings) -> String {
    format!(
        "cold starts, {} each: pgwarm exec'ed as an extension under lambda-simulator inside the group\n\
         (through a /bin/sh wrapper that enters the group and execs it), timed from the spawn to its\n\
         registration; then the first query: a handler already in the group, its driver imported,\n\
         connects to the new pgwarm with both defaults (plain), SELECT 1, close (pgwarm's own TLS + SCRAM\n\
         login to the database happens in it)\n",
        settings.cold_starts
    )
}
