//! Step 7 of the demo: the fleet scenario ([`crate::drivers::fleet`]) three ways, its table in
//! the report, its files and chart of the database's connections beside it.

use super::report::Report;
use super::settings::DemoSettings;
use crate::drivers::fleet::{self, Way};

/// Step 7: the fleet, three ways.
pub(super) async fn run(r: &mut Report, s: &DemoSettings) {
    let mut outcomes = Vec::new();
    for way in Way::ALL {
        eprintln!("demo: fleet, {}", way.name());
        outcomes.push(fleet::run(way, &s.fleet).await);
    }
    r.line("");
    r.line(format!(
        "The fleet: {} environments, each frozen between its invocations, against a role with {} connection slots",
        s.fleet.environments, s.fleet.db_slots
    ));
    for line in fleet::table(&s.fleet, &outcomes).lines() {
        r.line(match line.is_empty() {
            true => String::new(),
            false => format!("  {line}"),
        });
    }
    let failed = fleet::failed_through_pgwarm(&outcomes);
    r.check(
        "no invocation through pgwarm (its defaults) failed or timed out",
        format!("{failed} failed"),
        failed == 0,
    );
    match fleet::write_files(&s.out, &s.fleet, &outcomes) {
        Ok(chart) => r.row(
            "chart of the database's connections",
            chart.display().to_string(),
        ),
        Err(e) => r.check("chart of the database's connections", e, false),
    }
}
