//! `bench-lambda`'s tables: the warm cells (Markdown, for the report and BENCHMARKS.md, and a
//! TSV with every figure), each cell's invocations (a TSV per cell), and the cold starts.

use std::fmt::Write as _;

use super::cell::Cell;
use super::cgroup::quota_us;
use super::cold::ColdStart;
use super::handler::Driver;
use crate::drivers::figures::{median, min_max, quantile};

/// The cold starts of one driver at one memory size and round trip.
#[derive(Debug)]
pub struct ColdCell {
    pub driver: Driver,
    pub memory_mb: u32,
    pub rtt_ms: f64,
    pub starts: Vec<Result<ColdStart, String>>,
}

/// "128 (7.2 %)": a memory size and its CPU share.
fn memory(memory_mb: u32) -> String {
    format!(
        "{memory_mb} ({:.1} %)",
        quota_us(memory_mb) as f64 / super::cgroup::PERIOD_US as f64 * 100.0
    )
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The warm cells as a Markdown table, one row per cell.
pub fn warm_table(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| driver | way | the handler's TLS setting | memory MB (CPU) | rtt ms | p50 ms | p99 ms \
         | handler CPU ms/inv (its own clock, p50) | pgwarm CPU ms/inv | throttled periods/inv |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for cell in cells {
        let p = cell.place;
        let (walls, cpus) = (cell.walls(), cell.own_cpus());
        let failed = match cell.failed {
            0 => String::new(),
            n => format!(" ({n} FAILED)"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}{failed} | {} | {} ({}) | {} | {} |",
            p.driver.name(),
            p.way.name(),
            p.way.setting(p.driver),
            memory(p.memory_mb),
            p.rtt_ms,
            ms(quantile(&walls, 0.5)),
            ms(quantile(&walls, 0.99)),
            ms_2(cell.handler_cpu_ms),
            ms_2(median(&cpus)),
            ms_2(cell.pgwarm_cpu_ms),
            cell.throttled.map_or("-".into(), |t| format!("{t:.2}")),
        );
    }
    out
}

fn ms_2(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}"))
}

/// Every cell's figures, tab-separated, a header first.
pub fn warm_tsv(cells: &[Cell]) -> String {
    let mut out = String::from(
        "driver\tway\tsetting\tmemory_mb\tquota_us\trtt_ms\tinvocations_ok\tfailed\tp50_ms\tp99_ms\
         \tmax_ms\thandler_cpu_ms_per_inv\tpgwarm_cpu_ms_per_inv\thandler_self_cpu_ms_p50\
         \tthrottled_per_inv\tversions\tfirst_error\n",
    );
    for cell in cells {
        let p = cell.place;
        let (walls, cpus) = (cell.walls(), cell.own_cpus());
        let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            p.driver.name(),
            p.way.name(),
            p.way.setting(p.driver),
            p.memory_mb,
            quota_us(p.memory_mb),
            p.rtt_ms,
            cell.timed.len(),
            cell.failed,
            num(quantile(&walls, 0.5)),
            num(quantile(&walls, 0.99)),
            num(quantile(&walls, 1.0)),
            num(cell.handler_cpu_ms),
            num(cell.pgwarm_cpu_ms),
            num(median(&cpus)),
            num(cell.throttled),
            cell.versions,
            cell.first_error.as_deref().unwrap_or("").replace('\t', " "),
        );
    }
    out
}

/// One cell's invocations: the handler's wall and CPU time of each, in ms.
pub fn invocations_tsv(cell: &Cell) -> String {
    let mut out = String::from("wall_ms\tcpu_ms\n");
    for t in &cell.timed {
        let _ = writeln!(out, "{:.3}\t{:.3}", t.wall_ms, t.cpu_ms);
    }
    out
}

/// The cell's file name in the runs folder.
pub fn cell_file(cell: &Cell) -> String {
    let p = cell.place;
    format!(
        "{}-{}-{}mb-{}ms.tsv",
        p.driver.name(),
        p.way.name(),
        p.memory_mb,
        p.rtt_ms
    )
}

/// "12.3 (10.1-15.0)": the median and the range, or "-".
fn median_range(values: &[f64]) -> String {
    match (median(values), min_max(values)) {
        (Some(m), Some((lo, hi))) => format!("{m:.1} ({lo:.1}-{hi:.1})"),
        _ => "-".into(),
    }
}

/// The cold starts as a Markdown table, one row per driver, memory size and round trip.
pub fn cold_table(cells: &[ColdCell]) -> String {
    let mut out = String::from(
        "| driver (first query, its default TLS) | memory MB (CPU) | rtt ms | starts \
         | exec to registered ms, median (min-max) | first query ms, median (min-max) |\n\
         |---|---|---|---|---|---|\n",
    );
    for cell in cells {
        let ok: Vec<ColdStart> = cell.starts.iter().filter_map(|s| s.clone().ok()).collect();
        let failed = cell.starts.len() - ok.len();
        let starts = match failed {
            0 => ok.len().to_string(),
            n => format!("{} ({n} FAILED)", cell.starts.len()),
        };
        let registered: Vec<f64> = ok.iter().map(|s| s.registered_ms).collect();
        let first: Vec<f64> = ok.iter().map(|s| s.first_query_ms).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {starts} | {} | {} |",
            cell.driver.name(),
            memory(cell.memory_mb),
            cell.rtt_ms,
            median_range(&registered),
            median_range(&first),
        );
    }
    out
}

/// The failed cold starts' messages, one line each.
pub fn cold_errors(cells: &[ColdCell]) -> Vec<String> {
    cells
        .iter()
        .flat_map(|c| {
            c.starts.iter().filter_map(move |s| {
                s.as_ref().err().map(|e| {
                    format!(
                        "cold start {} {} MB {} ms: {e}",
                        c.driver.name(),
                        c.memory_mb,
                        c.rtt_ms
                    )
                })
            })
        })
        .collect()
}
