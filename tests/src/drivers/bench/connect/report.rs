//! The connect benchmark's report: what was measured with what (commit, versions, each target's
//! TLS and authentication, load), how to read it, a row per case, the ratios that compare pgwarm
//! with the others, and the runs that failed with pgbench's own lines.

use std::fmt::Write as _;

use super::cases::{Case, CASES};
use super::checks::Tls;
use super::runs::{ms_per_connection, Connection, Run};
use super::settings::{ConnectSettings, Secret};
use super::{POOL_SIZE, SCALE};
use crate::drivers::bench::run::{per_round, Failed, Measured, Outcome};
use crate::drivers::bench::runner::Finished;
use crate::drivers::bench::way::Way;
use crate::drivers::facts;
use crate::drivers::figures::{range, ratio_cell, round_order, Cell};
use crate::drivers::pgwarm_env::show_env;
use crate::harness::{cluster, first_line_of, Pgbouncer};

/// A figure of a run that counts.
type Figure = fn(&Measured<Connection>) -> Option<f64>;

/// The report: the facts of the run and the TLS seen, how to read it, a row per case, the
/// ratios, and the runs that failed.
pub(super) fn report(s: &ConnectSettings, runs: &[Run], tls: &Tls, finished: &Finished) -> String {
    let mut r = String::new();
    let (bytes, digest) = facts::file_digest(&s.common.pgwarm_bin).unwrap_or((0, "?".into()));
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
            s.common.duration
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
            show_env(&s.common.passthrough)
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
    for (way, seen) in &tls.client {
        let _ = writeln!(r, "  {:<10} {seen}", way.name());
    }
    let _ = writeln!(r, "the poolers' server connections: TLS ({})", tls.server);
    let _ = writeln!(
        r,
        "{} rounds of {} runs back to back, the order rotating by one target each round",
        s.common.rounds,
        CASES.len()
    );
    let _ = writeln!(
        r,
        "({} first); {} runs took {}s",
        first_order.join(","),
        runs.len(),
        finished.seconds
    );
    let _ = writeln!(r, "{}", finished.load_line());
    let _ = writeln!(r);
    let explanation = [
        "ms/conn: time per connect + query + close, 1000 / TPS (pgbench -C's TPS includes the".to_owned(),
        "  connections; with one client it equals pgbench's \"latency average\"), median over the rounds".into(),
        "  and min-max. connect ms: pgbench's \"average connection time\" (TCP, TLS, startup, auth, up to".into(),
        "  ReadyForQuery), median. conn/s: TPS, median. pooler CPU: the pooler process's utime+stime".into(),
        format!(
            "  (/proc/PID/stat, CLK_TCK {}) per connection in µs, median. pgbench CPU: the same for the",
            finished.ticks_per_second
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
    let rounds = s.common.rounds;
    let of_case = |case: Case, figure: Figure| per_round(runs, rounds, |c| *c == case, figure);
    let ms = |case| of_case(case, |m| Some(ms_per_connection(m)));
    for case in CASES {
        let cell = |figure: Figure| Cell::of(&of_case(case, figure));
        let pooler = match case.way {
            Way::Direct => "-".to_owned(),
            _ => cell(|m| m.cpu.us()).show(1),
        };
        let _ = writeln!(
            r,
            "{:<16} {:<8} {:>8} {:<15} {:>10} {:>8} {:>15} {:>16}",
            case.name(),
            case.sslmode.as_str(),
            cell(|m| Some(ms_per_connection(m))).show(3),
            format!("({})", range(&ms(case), 3)),
            cell(|m| Some(m.more.connection_ms)).show(3),
            cell(|m| Some(m.tps)).show(0),
            pooler,
            cell(|m| Some(m.more.pgbench_cpu_us)).show(1),
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
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(r);
        for case in CASES {
            for run in failed.iter().filter(|r| r.slot == case) {
                if let Outcome::Failed(Failed {
                    why, error, abort, ..
                }) = &run.outcome
                {
                    let _ = writeln!(r, "FAILED {} round {}: {why}", case.name(), run.round);
                    let _ = writeln!(r, "    {error}");
                    if let Some(abort) = abort {
                        let _ = writeln!(r, "    {abort}");
                    }
                }
            }
        }
    }
    r
}
