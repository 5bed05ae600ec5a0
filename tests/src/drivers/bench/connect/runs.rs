//! The connect benchmark's runs: a run of a case, the figures a run of `pgbench -C` adds to those
//! of every run, and its row of connect-runs.tsv.

use super::cases::Case;
use crate::drivers::bench::run::{self, Measured, Outcome};

/// What a `pgbench -C` run gives besides its TPS (connections per second, each with its query),
/// its transactions and the relay's CPU.
#[derive(Clone, Copy, Debug)]
pub(super) struct Connection {
    /// pgbench's "latency average".
    pub(super) latency_ms: f64,
    /// pgbench's "average connection time": connect only, up to ReadyForQuery.
    pub(super) connection_ms: f64,
    /// pgbench's own CPU time per connection, the client's side of the cost.
    pub(super) pgbench_cpu_us: f64,
}

/// One pgbench run: a row of connect-runs.tsv.
pub(super) type Run = run::Run<Case, Connection>;

pub(super) const RUNS_HEADER: &str = "round\tposition\tcase\ttarget\tsslmode\ttps\tms_per_connection\tlatency_average_ms\tconnection_time_ms\ttransactions\tpgbench_cpu_us_per_connection\tpooler_cpu_ticks\tpooler_cpu_us_per_connection\tfailure";

/// The time per connect + query + close in ms: 1000 / TPS.
pub(super) fn ms_per_connection(m: &Measured<Connection>) -> f64 {
    1000.0 / m.tps
}

/// `run`'s row of connect-runs.tsv.
pub(super) fn tsv_line(run: &Run) -> String {
    let head = format!(
        "{}\t{}\t{}\t{}\t{}",
        run.round,
        run.position,
        run.slot.name(),
        run.slot.way.name(),
        run.slot.sslmode.as_str()
    );
    match &run.outcome {
        Outcome::Measured(m) => {
            let (ticks, us) = m.cpu.columns();
            format!(
                "{head}\t{}\t{:.6}\t{}\t{}\t{}\t{:.4}\t{ticks}\t{us}\t",
                m.tps,
                ms_per_connection(m),
                m.more.latency_ms,
                m.more.connection_ms,
                m.transactions,
                m.more.pgbench_cpu_us
            )
        }
        Outcome::Failed(failed) => {
            let (transactions, failure) = failed.columns();
            format!("{head}\tFAILED\t\t\t\t{transactions}\t\t\t\t{failure}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::bench::cpu::RunCpu;
    use crate::drivers::bench::run::Failed;

    #[test]
    fn a_run_is_one_row_of_connect_runs_tsv() {
        let run = Run {
            round: 1,
            position: 3,
            slot: Case::named("pgwarm-tls"),
            outcome: Outcome::Measured(Measured {
                tps: 436.543812,
                transactions: 437,
                cpu: RunCpu::Measured {
                    ticks: 61,
                    us_per_item: 1395.881,
                },
                more: Connection {
                    latency_ms: 2.291,
                    connection_ms: 1.911,
                    pgbench_cpu_us: 1022.9,
                },
            }),
        };
        assert_eq!(
            tsv_line(&run),
            "1\t3\tpgwarm-tls\tpgwarm\trequire\t436.543812\t2.290721\t2.291\t1.911\t437\t\
             1022.9000\t61\t1395.8810\t"
        );
        assert_eq!(
            RUNS_HEADER.split('\t').count(),
            tsv_line(&run).split('\t').count()
        );
        let failed = Run {
            outcome: Outcome::Failed(Failed {
                transactions: None,
                why: "exit status 1".into(),
                error: "pgbench: error: connection refused".into(),
                abort: None,
            }),
            ..run
        };
        assert_eq!(
            tsv_line(&failed),
            "1\t3\tpgwarm-tls\tpgwarm\trequire\tFAILED\t\t\t\t\t\t\t\texit status 1: \
             pgbench: error: connection refused"
        );
        assert_eq!(
            RUNS_HEADER.split('\t').count(),
            tsv_line(&failed).split('\t').count()
        );
    }
}
