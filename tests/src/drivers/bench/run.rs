//! One pgbench run as both benchmarks record it: which run it was (its slot: the throughput
//! benchmark's mode, client count and target, or the connect benchmark's case), where it stood in
//! its round, and what it gave: the figures every run has (TPS, transactions, the relay's CPU)
//! with the benchmark's own, or why it does not count. Each benchmark lays out its own row of
//! the runs table; the figures per round that its report's cells are made of come from here.

use std::path::Path;

use super::cpu::RunCpu;
use super::pgbench::{Failure, Summary};

/// One pgbench run: a row of a benchmark's runs table.
#[derive(Clone, Debug)]
pub(crate) struct Run<S, F> {
    pub(crate) round: usize,
    /// 1-based, in the order the runs of the round went.
    pub(crate) position: usize,
    pub(crate) slot: S,
    pub(crate) outcome: Outcome<F>,
}

#[derive(Clone, Debug)]
pub(crate) enum Outcome<F> {
    Measured(Measured<F>),
    Failed(Failed),
}

/// The figures of a run that counts: those of every run, and the benchmark's own (`more`).
#[derive(Clone, Debug)]
pub(crate) struct Measured<F> {
    pub(crate) tps: f64,
    /// pgbench's "number of transactions actually processed".
    pub(crate) transactions: u64,
    /// The CPU time the relay in the way spent on the run.
    pub(crate) cpu: RunCpu,
    pub(crate) more: F,
}

/// Why a run does not count.
#[derive(Clone, Debug)]
pub(crate) struct Failed {
    /// The transactions pgbench reports it processed, if any.
    pub(crate) transactions: Option<u64>,
    /// The reasons, with the benchmark's notes.
    pub(crate) why: String,
    /// pgbench's first error line, and its first client abort line if that is another one.
    pub(crate) error: String,
    pub(crate) abort: Option<String>,
}

impl<S, F> Run<S, F> {
    /// The figures, `None` for a run that failed.
    pub(crate) fn measured(&self) -> Option<&Measured<F>> {
        match &self.outcome {
            Outcome::Measured(m) => Some(m),
            Outcome::Failed(_) => None,
        }
    }
}

impl Failed {
    /// The run whose pgbench `summary` has `failure`; `why` is the failure's reasons with the
    /// benchmark's notes.
    pub(crate) fn new(failure: Failure, summary: &Summary, why: String) -> Failed {
        Failed {
            transactions: Some(summary.processed).filter(|t| *t > 0),
            why,
            error: failure.error_line().to_owned(),
            abort: failure.first_abort,
        }
    }

    /// Says on stderr, in `program`'s name, that the run shown as `label` failed, with pgbench's
    /// lines; its whole output is in `file`.
    pub(crate) fn say(&self, program: &str, label: &str, file: &Path) {
        let say = |text: String| super::say(program, text);
        say(format!(
            "{label}: FAILED ({}), see {}",
            self.why,
            file.display()
        ));
        say(format!("    {}", self.error));
        if let Some(abort) = &self.abort {
            say(format!("    {abort}"));
        }
    }

    /// A runs table's transactions column (empty for none) and failure column: why, then
    /// pgbench's lines, each tab a space.
    pub(crate) fn columns(&self) -> (String, String) {
        let transactions = self.transactions.map(|t| t.to_string()).unwrap_or_default();
        let abort = self
            .abort
            .as_ref()
            .map(|a| format!(" | {}", a.replace('\t', " ")))
            .unwrap_or_default();
        let error = self.error.replace('\t', " ");
        (transactions, format!("{}: {error}{abort}", self.why))
    }
}

/// `figure` of the run in the slot that `slot` picks, per round from 1 to `rounds` (`None`: it
/// failed, or there is none): what a report's cell is made of.
pub(crate) fn per_round<S, F>(
    runs: &[Run<S, F>],
    rounds: usize,
    slot: impl Fn(&S) -> bool,
    figure: impl Fn(&Measured<F>) -> Option<f64>,
) -> Vec<Option<f64>> {
    (1..=rounds)
        .map(|round| {
            runs.iter()
                .find(|r| r.round == round && slot(&r.slot))
                .and_then(Run::measured)
                .and_then(&figure)
        })
        .collect()
}
