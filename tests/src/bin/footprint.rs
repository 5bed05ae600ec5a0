//! `footprint`: what pgwarm costs a Lambda function, in one command: the layer's zip and binary
//! per architecture (from `target/layer`, which `scripts/build-layer.sh` makes), the start-up
//! as an extension (exec to listening and to registered, under lambda-simulator, with
//! [`pgwarm_tests::drivers::lifecycle::startup`]), and pgwarm's resident memory at idle and with
//! 1,000 idle clients.
//!
//! ```text
//! footprint [--starts N] [--idle-clients N]
//! ```
//! pgwarm is `$PGWARM_BIN` or the workspace's debug build. Prints a Markdown table on stdout.
//! Times and memory are this machine's only: arm64 runs here under qemu, so for it the table has
//! sizes alone. Exit status 0, 1 when a step
//! failed, 2 for bad usage.

use pgwarm_tests::drivers::figures::median;
use pgwarm_tests::drivers::lifecycle;
use pgwarm_tests::{cluster, pgwarm_bin, Pgwarm};
use std::process::ExitCode;

fn main() -> ExitCode {
    let (mut starts, mut idle_clients) = (10usize, 1000usize);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair
            .get(1)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0);
        match (pair[0].as_str(), value) {
            ("--starts", Some(n)) => starts = n,
            ("--idle-clients", Some(n)) => idle_clients = n,
            _ => {
                eprintln!("footprint: bad option {:?}", pair);
                return ExitCode::from(2);
            }
        }
    }
    let bin = pgwarm_bin();
    let mut rows = Vec::new();
    for arch in ["x86_64", "arm64"] {
        let zip = file_mib(&format!("target/layer/pgwarm-{arch}.zip"));
        let exe = file_mib(&format!("target/layer/{arch}/extensions/pgwarm"));
        rows.push((format!("layer zip, {arch}"), zip));
        rows.push((format!("`extensions/pgwarm`, {arch}"), exe));
    }

    let mut ok = true;
    match start_up(starts) {
        Ok((listening, registered)) => {
            rows.push((
                format!("exec to listening, median of {starts}"),
                format!("{listening:.1} ms"),
            ));
            rows.push((
                format!("exec to registered, median of {starts}"),
                format!("{registered:.1} ms"),
            ));
        }
        Err(e) => {
            eprintln!("footprint: start-up: {e}");
            ok = false;
        }
    }

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (idle, with_clients) = runtime.block_on(memory(idle_clients));
    rows.push(("RSS at idle, one server connection open".into(), mib(idle)));
    rows.push((
        format!("RSS with {idle_clients} idle clients"),
        format!(
            "{} ({:.1} KiB per client)",
            mib(with_clients),
            with_clients.saturating_sub(idle) as f64 / idle_clients as f64
        ),
    ));

    println!("pgwarm: {}\n", bin.display());
    println!("| figure | value |\n|---|---|");
    for (figure, value) in rows {
        println!("| {figure} | {value} |");
    }
    match ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// A file's size in MiB, or what to run when it is missing.
fn file_mib(path: &str) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{:.2} MiB", m.len() as f64 / 1_048_576.0),
        Err(_) => "not built (scripts/build-layer.sh all)".into(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Medians of exec to listening and to registered, in ms, over `starts` starts of pgwarm as an
/// extension, each under a fresh simulator.
fn start_up(starts: usize) -> Result<(f64, f64), String> {
    // pgwarm needs a database to be configured for, not to reach: it logs in at the first client.
    let db = cluster().fresh_target();
    // pgwarm's own default log level, as in a function.
    let pgwarm = Pgwarm::builder(&db)
        .env_remove("PGWARM_LOG_LEVEL")
        .env_remove("PGWARM_LOG_FORMAT");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mut listening, mut registered) = (Vec::new(), Vec::new());
    for _ in 0..starts {
        let one = runtime.block_on(lifecycle::startup(pgwarm.clone()))?;
        listening.push(one.listening_ms);
        registered.push(one.registered_ms);
    }
    let of = |v: &[f64]| median(v).ok_or("no start timed".to_owned());
    Ok((of(&listening)?, of(&registered)?))
}

/// pgwarm's RSS in KiB at idle (after one query), then with `clients` idle clients logged in.
async fn memory(clients: usize) -> (u64, u64) {
    let db = cluster().fresh_target();
    let limit = (clients + 10).to_string();
    let pgwarm = Pgwarm::start(
        &db,
        &[
            ("PGWARM_MAX_CLIENT_CONN", limit.as_str()),
            ("PGWARM_LOG_LEVEL", "warn"),
            ("PGWARM_METRICS", "off"),
        ],
    );
    pgwarm.warm_up().await;
    let idle = pgwarm.settled_rss_kib().await;
    let logged_in = pgwarm.idle_clients(clients).await;
    let with_clients = pgwarm.settled_rss_kib().await;
    drop(logged_in);
    (idle, with_clients)
}
