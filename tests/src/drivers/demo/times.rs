//! The invocation times the demo compares between the run through pgwarm and the one straight
//! to PostgreSQL: those of invocations 2 and later, whose connection setup is the steady cost.

use super::report::{median_p95, Report};
use crate::drivers::lifecycle::Invocation;

/// The times of invocations 2 and later (the first pays for the empty pool or the first login).
pub(super) struct Times {
    pub(super) db_ms: Vec<f64>,
    pub(super) wall_ms: Vec<f64>,
}

impl Times {
    /// Their medians and p95s in the report.
    pub(super) fn rows(&self, r: &mut Report, invocations: usize) {
        r.row(
            &format!("db_ms, invocations 2..{invocations}"),
            median_p95(&self.db_ms),
        );
        r.row(
            &format!("invocation wall time, 2..{invocations}"),
            median_p95(&self.wall_ms),
        );
    }

    pub(super) fn of(invocations: &[Invocation]) -> Times {
        let later = || {
            invocations
                .iter()
                .skip(1)
                .filter_map(|i| Some((i.answer()?, i.wall_ms)))
        };
        Times {
            db_ms: later().map(|(a, _)| a.db_ms).collect(),
            wall_ms: later().map(|(_, wall)| wall).collect(),
        }
    }
}
