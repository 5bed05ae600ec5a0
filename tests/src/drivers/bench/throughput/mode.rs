//! pgbench's `-M` query modes, and what PgBouncer before 1.21 makes of the prepared one: its runs
//! are expected to fail, are skipped when its extended runs can stand in, and then its extended
//! figures are the ones its prepared cells show.

use super::runs::Run;
use crate::drivers::bench::way::Way;

/// A pgbench `-M` query mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Simple,
    Extended,
    Prepared,
}

impl Mode {
    pub(super) fn parse(word: &str) -> Option<Mode> {
        match word {
            "simple" => Some(Mode::Simple),
            "extended" => Some(Mode::Extended),
            "prepared" => Some(Mode::Prepared),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Extended => "extended",
            Mode::Prepared => "prepared",
        }
    }
}

/// Whether `way` failing in `mode` is a known limitation rather than a fault. PgBouncer 1.18
/// predates max_prepared_statements: in transaction mode it passes pgbench's named statements
/// (P_0, ...) through to whichever server connection the transaction gets, so a client soon runs
/// one on a connection that never prepared it ("does not exist"), or prepares one that an earlier
/// client left there ("already exists"). 1.21 and later keep them (`max_prepared_statements`).
pub(super) fn expected_failure(way: Way, mode: Mode, pgbouncer_prepares: bool) -> bool {
    way == Way::Pgbouncer && mode == Mode::Prepared && !pgbouncer_prepares
}

/// PgBouncer's -M prepared runs are skipped when they can only fail and its -M extended runs
/// too: the prepared table then compares pgwarm with its extended figures.
pub(super) fn skipped(way: Way, mode: Mode, modes: &[Mode], pgbouncer_prepares: bool) -> bool {
    expected_failure(way, mode, pgbouncer_prepares) && modes.contains(&Mode::Extended)
}

/// The mode whose runs give `way`'s figures in `mode`'s table and chart: PgBouncer's extended
/// ones in the prepared table when it has no prepared runs (they were skipped).
pub(super) fn figure_mode(way: Way, mode: Mode, runs: &[Run]) -> Mode {
    let ran = |m: Mode| runs.iter().any(|r| r.slot.way == way && r.slot.mode == m);
    match way == Way::Pgbouncer && mode == Mode::Prepared && !ran(mode) && ran(Mode::Extended) {
        true => Mode::Extended,
        false => mode,
    }
}
