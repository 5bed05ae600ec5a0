//! charts.tsv, what `scripts/bench-charts.sh` draws tps.svg and cpu.svg from: per mode and client
//! count, each relay's median TPS as a share of direct's and its median CPU µs per transaction.
//! The benchmark writes it after its report; `bench --summarize` writes it again from a runs.tsv,
//! so that committed runs redraw the same charts.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use super::runs::{cpu_us, tps, Results};
use super::say;
use crate::drivers::bench::way::Way;
use crate::drivers::figures::Cell;

/// The targets whose process's CPU time is measured, in the charts' order.
const RELAYS: [Way; 3] = [Way::Pgwarm, Way::Pgbouncer, Way::Haproxy];

/// charts.tsv: per mode and client count (ascending), the relays' median TPS as a share of
/// direct's and their median CPU µs per transaction; NaN for a cell with a failed run.
fn charts_tsv(results: &Results) -> String {
    let mut clients = results.clients.clone();
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
    for &mode in &results.modes {
        for &c in &clients {
            let median = |figure, way| Cell::of(&results.per_round(figure, mode, c, way)).value();
            let direct = median(tps, Way::Direct).filter(|d| *d > 0.0);
            let _ = write!(t, "{} c={c}", mode.as_str());
            for way in RELAYS {
                let share = median(tps, way).zip(direct).map(|(w, d)| w / d);
                let _ = write!(t, "\t{}", cell(share));
            }
            for way in RELAYS {
                let _ = write!(t, "\t{}", cell(median(cpu_us, way)));
            }
            t.push('\n');
        }
    }
    t
}

/// `--summarize`: charts.tsv from a runs.tsv, into `out` (default: the runs.tsv's folder).
pub(super) fn summarize(runs_tsv: &Path, out: Option<&Path>) -> ExitCode {
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
    write(&results, &out)
}

/// Writes `out`/charts.tsv; said on stderr.
pub(super) fn write(results: &Results, out: &Path) -> ExitCode {
    let path = out.join("charts.tsv");
    match fs::create_dir_all(out).and_then(|()| fs::write(&path, charts_tsv(results))) {
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

#[cfg(test)]
mod tests {
    use super::super::mode::{figure_mode, Mode};
    use super::super::runs::RUNS_HEADER;
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
            charts_tsv(&results),
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
        assert!(charts_tsv(&results).contains("prepared c=1\tNaN\t0.8000\tNaN\tNaN\t31.2500\tNaN"));
    }
}
