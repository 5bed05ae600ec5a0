//! The demo's report, as a person reads it: lines, rows of a label and a value, and checks that
//! say ok or FAILED (the failed ones also listed, for the exit status and the last line); and
//! how it shows a set of times.

use std::fmt::Write as _;

use crate::drivers::figures::{median, min_max, quantile};

/// The report: lines, and the checks that failed.
#[derive(Default)]
pub(super) struct Report {
    pub(super) text: String,
    pub(super) failed: Vec<String>,
}

impl Report {
    pub(super) fn line(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.text, "{}", text.as_ref());
    }

    pub(super) fn row(&mut self, label: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.text, "  {label:<46} {}", value.as_ref());
    }

    pub(super) fn check(&mut self, label: &str, value: impl AsRef<str>, passed: bool) {
        let mark = if passed { "ok" } else { "FAILED" };
        let _ = writeln!(self.text, "  {label:<46} {:<40} {mark}", value.as_ref());
        if !passed {
            self.failed.push(label.to_owned());
        }
    }
}

/// "median M ms (min A, max B)" of `v`, or "-".
pub(super) fn spread(v: &[f64]) -> String {
    match (median(v), min_max(v)) {
        (Some(m), Some((lo, hi))) => format!("median {m:.1} ms (min {lo:.1}, max {hi:.1})"),
        _ => "-".into(),
    }
}

/// "median M ms, p95 P ms" of `v`, or "-".
pub(super) fn median_p95(v: &[f64]) -> String {
    match (median(v), quantile(v, 0.95)) {
        (Some(m), Some(p)) => format!("median {m:.2} ms, p95 {p:.2} ms"),
        _ => "-".into(),
    }
}
