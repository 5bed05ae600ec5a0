//! Step 2 of the demo: pgwarm's start-up as an extension, timed over several starts, each under
//! a fresh simulator.

use super::report::{spread, Report};
use crate::drivers::lifecycle;
use crate::harness::PgwarmBuilder;

/// Step 2: start-up as an extension.
pub(super) async fn run(r: &mut Report, pgwarm: PgwarmBuilder, runs: usize) {
    let (mut listening, mut registered) = (Vec::new(), Vec::new());
    let mut failure = None;
    for _ in 0..runs {
        match lifecycle::startup(pgwarm.clone()).await {
            Ok(one) => {
                listening.push(one.listening_ms);
                registered.push(one.registered_ms);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    r.line("");
    r.line(format!(
        "pgwarm start-up as an extension ({runs} starts, each under a fresh simulator)"
    ));
    if let Some(e) = &failure {
        eprintln!("demo: start-up: {e}");
    }
    r.check(
        "starts that listened, registered and exited",
        format!("{} of {runs}", listening.len()),
        failure.is_none(),
    );
    r.row("exec to listening", spread(&listening));
    r.row("exec to registered", spread(&registered));
}
