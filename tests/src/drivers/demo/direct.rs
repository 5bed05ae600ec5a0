//! Step 6 of the demo: the same handler without pgwarm, straight to PostgreSQL (a SCRAM login
//! each time), and how its times compare with the run through pgwarm.

use super::report::Report;
use super::settings::DemoSettings;
use super::through_pgwarm::Pooled;
use super::times::Times;
use crate::drivers::figures::median_ratio;
use crate::drivers::lifecycle::invoke;
use crate::harness::Lambda;

/// Step 6: the same handler, straight to PostgreSQL.
pub(super) async fn run(r: &mut Report, s: &DemoSettings, url: &str, pooled: &Pooled) {
    let mut lambda = Lambda::start_with(None, s.freeze).await;
    lambda.start_handler_bin(&s.handler, url);
    let mut invocations = Vec::new();
    for _ in 0..s.direct_invocations {
        invocations.push(invoke(&lambda, "demo").await);
    }
    if let Some(e) = invocations.iter().find_map(|i| i.outcome.as_ref().err()) {
        eprintln!(
            "demo: an invocation straight to PostgreSQL failed: {e}\n--- handler log ---\n{}",
            lambda.handler_log()
        );
    }
    lambda.shutdown().await;
    let ok = invocations.iter().filter(|i| i.outcome.is_ok()).count();
    let times = Times::of(&invocations);
    r.line("");
    r.line(format!(
        "The same handler straight to PostgreSQL ({} invocations, a SCRAM login each)",
        s.direct_invocations
    ));
    r.check(
        "invocations succeeded",
        format!("{ok} of {}", s.direct_invocations),
        ok == s.direct_invocations,
    );
    times.rows(r, s.direct_invocations);
    r.row(
        "direct / pgwarm, medians",
        format!(
            "db_ms {}, wall {}",
            median_ratio(&times.db_ms, &pooled.times.db_ms, 1),
            median_ratio(&times.wall_ms, &pooled.times.wall_ms, 1)
        ),
    );
}
