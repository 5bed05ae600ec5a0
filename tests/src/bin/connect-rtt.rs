//! `connect-rtt`: the naive handler's unit of work (connect, one query, close) with the database
//! at a round-trip distance: directly, a SCRAM login each time, and through a warm pgwarm, whose
//! server connection is already there. Same-AZ RDS is about 0.3 to 1 ms away. The distance is a
//! [`DelayRelay`] in front of the tests' throwaway cluster (this machine has no `netem`).
//!
//! ```text
//! connect-rtt [--rtt-ms "0 1 5"] [--seconds N] [--rounds N] [--tls]
//! ```
//! Per round trip, the two ways run in turn for `--seconds` each (default 2), `--rounds` times
//! (default 3), one unit of work after the other. Prints one row per round trip: the round trip
//! a query measured through the relay, then each way's median and p99 in ms, and direct /
//! pgwarm. `--tls`: the cluster turns TLS on, and every connection uses it with
//! `sslmode=require`: the handler's to the database or to pgwarm (`PGWARM_CLIENT_TLS=on`), and
//! pgwarm's to the database (`PGWARM_SSLMODE=require`). Exit status 0 when every unit of work succeeded, 1 otherwise, 2 for
//! bad usage. pgwarm is `$PGWARM_BIN` or the workspace's debug build.

use pgwarm_tests::drivers::figures;
use pgwarm_tests::{cluster, tls_without_checks, DelayRelay, Pgwarm, Target, TestCerts};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_postgres_rustls::MakeRustlsConnect;

fn main() -> ExitCode {
    let mut rtts = vec![0.0, 1.0, 5.0];
    let mut seconds = 2.0;
    let mut rounds = 3;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let tls = args.iter().any(|a| a == "--tls");
    args.retain(|a| a != "--tls");
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        let ok = match pair[0].as_str() {
            "--rtt-ms" => value
                .split_whitespace()
                .map(str::parse::<f64>)
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|v| !v.is_empty() && v.iter().all(|x| *x >= 0.0))
                .map(|v| rtts = v),
            "--seconds" => value.parse().ok().filter(|s| *s > 0.0).map(|s| seconds = s),
            "--rounds" => value.parse().ok().filter(|r| *r > 0).map(|r| rounds = r),
            _ => None,
        };
        if ok.is_none() {
            eprintln!("connect-rtt: bad option {} {value:?}", pair[0]);
            return ExitCode::from(2);
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let db = cluster().fresh_target();
    // One connector for every connection: the handler's TLS set-up is not what is measured.
    let tls = tls.then(|| {
        cluster().enable_ssl(&TestCerts::new(&["localhost", "127.0.0.1"]));
        tls_without_checks(false).0
    });
    println!(
        "{:>8} {:>12}  {:>17} {:>17}  {:>14}",
        "rtt ms", "query rtt ms", "direct p50 / p99", "pgwarm p50 / p99", "direct/pgwarm"
    );
    let mut failed = 0;
    for rtt in rtts {
        let relay = (rtt > 0.0).then(|| {
            let upstream = format!("127.0.0.1:{}", db.port)
                .parse()
                .expect("an address");
            DelayRelay::start(upstream, Duration::from_secs_f64(rtt / 1000.0))
        });
        let far = match &relay {
            Some(r) => Target {
                port: r.addr.port(),
                ..db.clone()
            },
            None => db.clone(),
        };
        // TLS on both of pgwarm's legs, or on neither.
        let (sslmode, client_tls) = match tls {
            Some(_) => ("require", "on"),
            None => ("disable", "off"),
        };
        let pgwarm = Pgwarm::start(
            &far,
            &[
                ("PGWARM_POOL_SIZE", "2"),
                ("PGWARM_LOG_LEVEL", "warn"),
                ("PGWARM_METRICS", "off"),
                ("PGWARM_SSLMODE", sslmode),
                ("PGWARM_CLIENT_TLS", client_tls),
            ],
        );
        let near = pgwarm.target();
        let (direct, through, query_rtt) = runtime.block_on(async {
            // pgwarm's server connection is made before the clock starts, as in a warm
            // environment.
            let _ = unit(&near, tls.as_ref()).await;
            let query_rtt = query_round_trip(&far).await;
            let (mut direct, mut through) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                failed += run_for(&far, tls.as_ref(), seconds, &mut direct).await;
                failed += run_for(&near, tls.as_ref(), seconds, &mut through).await;
            }
            (direct, through, query_rtt)
        });
        let (d50, d99) = (quantile(&direct, 0.5), quantile(&direct, 0.99));
        let (p50, p99) = (quantile(&through, 0.5), quantile(&through, 0.99));
        println!(
            "{rtt:>8.1} {query_rtt:>12.2}  {:>17} {:>17}  {:>14.1}",
            format!("{d50:.2} / {d99:.2}"),
            format!("{p50:.2} / {p99:.2}"),
            d50 / p50
        );
    }
    match failed {
        0 => ExitCode::SUCCESS,
        n => {
            eprintln!("connect-rtt: {n} units of work failed");
            ExitCode::FAILURE
        }
    }
}

/// Connect (over TLS with `sslmode=require` when `tls` is given), one query, close; its time in
/// ms, or None if it failed.
async fn unit(target: &Target, tls: Option<&MakeRustlsConnect>) -> Option<f64> {
    let began = Instant::now();
    let client = match tls {
        Some(tls) => target.try_connect_tls("sslmode=require", tls.clone()).await,
        None => target.try_connect().await,
    }
    .ok()?;
    client.simple_query("SELECT 1").await.ok()?;
    drop(client);
    Some(began.elapsed().as_secs_f64() * 1000.0)
}

/// Units of work one after the other for `seconds`, their times pushed to `times`; returns how
/// many failed.
async fn run_for(
    target: &Target,
    tls: Option<&MakeRustlsConnect>,
    seconds: f64,
    times: &mut Vec<f64>,
) -> usize {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut failed = 0;
    while Instant::now() < end {
        match unit(target, tls).await {
            Some(ms) => times.push(ms),
            None => failed += 1,
        }
    }
    failed
}

/// The median time of a `SELECT 1` on an open connection to `target`: the round trip as a
/// query sees it.
async fn query_round_trip(target: &Target) -> f64 {
    let client = target.connect().await;
    let mut times = Vec::new();
    for _ in 0..21 {
        let began = Instant::now();
        client.simple_query("SELECT 1").await.expect("SELECT 1");
        times.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    quantile(&times, 0.5)
}

/// The `q` quantile of `values`, NaN (printed as such) when a way had no successful unit.
fn quantile(values: &[f64], q: f64) -> f64 {
    figures::quantile(values, q).unwrap_or(f64::NAN)
}
