//! The fleet's report: the table a person reads in ten seconds, and the files beside it (the
//! table, the database's connections over time per way, and their chart drawn by gnuplot).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Outcome, Shape, POOLS_EVERY};

/// The table a person reads in ten seconds.
pub fn table(shape: &Shape, outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} environments, bursts of {} at once ({} bursts), a database role limited to {} connections,",
        shape.environments, shape.burst_size, shape.bursts, shape.db_slots
    );
    let _ = writeln!(
        t,
        "a {} s function timeout, pgwarm's defaults. The handler connects, queries inside a transaction,",
        shape.function_timeout.as_secs_f64()
    );
    let _ = writeln!(
        t,
        "commits and closes on every invocation; every {}th leaks its connection inside the transaction.\n",
        shape.leak_every
    );
    let _ = writeln!(
        t,
        "{:<20} {:>11} {:>7} {:>10}  {:<24} {:>8} {:>8} {:>8} {:>16}",
        "way",
        "invocations",
        "failed",
        "timed out",
        "errors by SQLSTATE",
        "db peak",
        "p50 ms",
        "p99 ms",
        "added p50/p99 ms"
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
        let added = match o.post_runtime_ms.is_empty() {
            true => "-".to_owned(),
            false => format!("{:.1} / {:.1}", o.post_runtime(0.5), o.post_runtime(0.99)),
        };
        let _ = writeln!(
            t,
            "{:<20} {:>11} {:>7} {:>10}  {:<24} {:>8} {:>8.1} {:>8.1} {:>16}",
            o.way.name(),
            o.invocations,
            o.failed(),
            o.timed_out,
            failures,
            o.peak_connections,
            o.latency_ms(0.5),
            o.latency_ms(0.99),
            added
        );
    }
    let _ = writeln!(
        t,
        "\nfailed: an error, or past the function's timeout. 53300: too many connections for role (what RDS\n\
         answers at max_connections: 53300 too). added: how long pgwarm kept each invocation going after the\n\
         handler was done (billed as PostRuntimeExtensionsDuration)."
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
    let gnuplot = crate::harness::try_tool("gnuplot").ok_or(format!(
        "no gnuplot to draw {}: install the {}",
        chart.display(),
        crate::harness::package_hint("gnuplot")
    ))?;
    let mut gnuplot = std::process::Command::new(gnuplot);
    let done = crate::harness::output_with_timeout(
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
