//! The throughput benchmark's runs: which run (a mode, a client count, a target), its row of
//! runs.tsv written as it goes and read back by `--summarize`, and every run of a benchmark with
//! the figures per round that the report and the charts are made of.

use super::mode::{figure_mode, Mode};
use crate::drivers::bench::cpu::RunCpu;
use crate::drivers::bench::run::{self, Failed, Measured, Outcome};
use crate::drivers::bench::way::Way;

/// Which run: a mode, a client count and a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) mode: Mode,
    pub(super) clients: u32,
    pub(super) way: Way,
}

/// One pgbench run: a row of runs.tsv. A run has no figures beyond those of every run.
pub(super) type Run = run::Run<Slot, ()>;

pub(super) const RUNS_HEADER: &str = "round\tposition\tmode\tclients\ttarget\ttps\ttransactions\tpooler_cpu_ticks\tpooler_cpu_us_per_txn\tfailure";

/// `run`'s row of runs.tsv.
pub(super) fn tsv_line(run: &Run) -> String {
    let head = format!(
        "{}\t{}\t{}\t{}\t{}",
        run.round,
        run.position,
        run.slot.mode.as_str(),
        run.slot.clients,
        run.slot.way.name()
    );
    match &run.outcome {
        Outcome::Measured(m) => {
            let (ticks, us) = m.cpu.columns();
            format!("{head}\t{}\t{}\t{ticks}\t{us}\t", m.tps, m.transactions)
        }
        Outcome::Failed(failed) => {
            let (transactions, failure) = failed.columns();
            format!("{head}\tFAILED\t{transactions}\t\t\t{failure}")
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
        "FAILED" => Outcome::Failed(Failed {
            transactions,
            why: col("failure")?.to_owned(),
            error: String::new(),
            abort: None,
        }),
        tps => Outcome::Measured(Measured {
            tps: tps.parse().map_err(|_| format!("tps {tps:?}"))?,
            transactions: transactions.ok_or("no transactions")?,
            cpu: RunCpu::from_columns(col("pooler_cpu_ticks")?, col("pooler_cpu_us_per_txn")?)?,
            more: (),
        }),
    };
    Ok(Run {
        round: number("round")? as usize,
        position: number("position")? as usize,
        slot: Slot {
            mode: Mode::parse(col("mode")?).ok_or("an unknown mode")?,
            clients: number("clients")? as u32,
            way,
        },
        outcome,
    })
}

/// Every run, and what the report and the charts read from them.
pub(super) struct Results {
    pub(super) rounds: usize,
    pub(super) modes: Vec<Mode>,
    pub(super) clients: Vec<u32>,
    pub(super) runs: Vec<Run>,
}

/// A figure of a run that counts: its TPS, or the relay's CPU µs per transaction.
pub(super) type Figure = fn(&Measured<()>) -> Option<f64>;

pub(super) fn tps(m: &Measured<()>) -> Option<f64> {
    Some(m.tps)
}

pub(super) fn cpu_us(m: &Measured<()>) -> Option<f64> {
    m.cpu.us()
}

impl Results {
    /// `figure` of `way` in `mode`'s table with `clients` clients, per round (None: failed).
    pub(super) fn per_round(
        &self,
        figure: Figure,
        mode: Mode,
        clients: u32,
        way: Way,
    ) -> Vec<Option<f64>> {
        let slot = Slot {
            mode: figure_mode(way, mode, &self.runs),
            clients,
            way,
        };
        run::per_round(&self.runs, self.rounds, |s| *s == slot, figure)
    }

    /// The runs of a runs.tsv: modes and client counts in the order they first appear.
    pub(super) fn parse(text: &str) -> Result<Results, String> {
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines.next().ok_or("it is empty")?.1.split('\t').collect();
        let mut results = Results {
            rounds: 0,
            modes: Vec::new(),
            clients: Vec::new(),
            runs: Vec::new(),
        };
        for (i, line) in lines.filter(|(_, l)| !l.is_empty()) {
            let run = from_tsv(&header, line).map_err(|e| format!("line {}: {e}", i + 1))?;
            results.rounds = results.rounds.max(run.round);
            if !results.modes.contains(&run.slot.mode) {
                results.modes.push(run.slot.mode);
            }
            if !results.clients.contains(&run.slot.clients) {
                results.clients.push(run.slot.clients);
            }
            results.runs.push(run);
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_writes_and_reads_back_as_one_row_of_runs_tsv() {
        let header: Vec<&str> = RUNS_HEADER.split('\t').collect();
        let measured = Run {
            round: 2,
            position: 3,
            slot: Slot {
                mode: Mode::Simple,
                clients: 16,
                way: Way::Pgbouncer,
            },
            outcome: Outcome::Measured(Measured {
                tps: 19239.114,
                transactions: 96195,
                cpu: RunCpu::Measured {
                    ticks: 233,
                    us_per_item: 24.2216,
                },
                more: (),
            }),
        };
        let line = tsv_line(&measured);
        assert_eq!(
            line,
            "2\t3\tsimple\t16\tpgbouncer\t19239.114\t96195\t233\t24.2216\t"
        );
        let back = from_tsv(&header, &line).expect("its own row");
        assert_eq!(tsv_line(&back), line);
        let failed = Run {
            outcome: Outcome::Failed(Failed {
                transactions: Some(29),
                why: "exit status 2, aborted".into(),
                error: "pgbench: error: ERROR:  x\ty".into(),
                abort: Some("client 1 aborted in command 1".into()),
            }),
            ..measured
        };
        assert_eq!(
            tsv_line(&failed),
            "2\t3\tsimple\t16\tpgbouncer\tFAILED\t29\t\t\texit status 2, aborted: \
             pgbench: error: ERROR:  x y | client 1 aborted in command 1"
        );
        let back = from_tsv(&header, &tsv_line(&failed)).expect("its own row");
        assert!(back.measured().is_none());
    }
}
