//! Steps 3 to 5 of the demo: the handler's invocations through pgwarm, the thaw check after the
//! database ended every backend while the environment was frozen, and SHUTDOWN, with what
//! pgwarm's log says it did (server connections opened and replaced, logins, secret reads).

use std::time::{Duration, Instant};

use super::report::Report;
use super::settings::DemoSettings;
use super::times::Times;
use super::POOL_SIZE;
use crate::drivers::lifecycle::{self, invoke, thaw_check, Invocation, SHUTDOWN_BUDGET};
use crate::harness::{cluster, Lambda, PgwarmBuilder};

/// What the run through pgwarm leaves for the comparison with the direct one.
pub(super) struct Pooled {
    /// Client connections pgwarm saw: one per invocation, the thaw check's included.
    pub(super) clients: i64,
    pub(super) times: Times,
}

/// Steps 3 to 5: invocations through pgwarm, the thaw check, SHUTDOWN, each with its part of
/// the report.
pub(super) async fn run(
    r: &mut Report,
    s: &DemoSettings,
    pgwarm: PgwarmBuilder,
    url: &str,
    superuser: &tokio_postgres::Client,
) -> Pooled {
    let began = Instant::now();
    let mut lambda = Lambda::start_with(Some(pgwarm), s.freeze).await;
    lambda.start_handler_bin(&s.handler, url);
    let mut invocations = Vec::new();
    for _ in 0..s.invocations {
        invocations.push(invoke(&lambda, "demo").await);
    }
    let thaw = match s.freeze {
        true => Some(thaw_check(&lambda, superuser, "app").await),
        false => None,
    };
    let took = began.elapsed();
    let failed: Vec<&Invocation> = invocations.iter().filter(|i| i.outcome.is_err()).collect();
    if !failed.is_empty() {
        eprintln!(
            "demo: invocations through pgwarm failed, e.g. {:?}\n--- handler log ---\n{}",
            failed[0].outcome,
            lambda.handler_log()
        );
    }
    let shutdown = lifecycle::shutdown(lambda).await;
    // pgwarm sent Terminate on its server connections before exiting; the backends go just after.
    let gone = Instant::now();
    let backends_after = cluster().wait_for_backends("app", 0, Duration::from_secs(2));
    let gone_ms = gone.elapsed().as_millis();

    let log = shutdown.pgwarm.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let (opened, replaced) = (
        count("opened server connection"),
        count("closed by the database; replacing it"),
    );
    let (logins, secret_reads) = (count("client logged in"), count("read the secret"));
    let clients = (s.invocations + usize::from(thaw.is_some())) as i64;

    let ok: Vec<_> = invocations.iter().filter_map(Invocation::answer).collect();
    let last_visits = ok.last().map(|a| a.visits);
    let times = Times::of(&invocations);
    r.line("");
    r.line(format!(
        "The example handler through pgwarm ({} invocations, a fresh connection each; {} ms in all)",
        s.invocations,
        took.as_millis()
    ));
    r.check(
        "invocations succeeded",
        format!(
            "{} of {} ({} failed)",
            ok.len(),
            s.invocations,
            failed.len()
        ),
        failed.is_empty(),
    );
    r.check(
        "visits counted by the last invocation",
        last_visits.map_or("none".into(), |v| v.to_string()),
        last_visits == Some(s.invocations as i64),
    );
    let kept_open = opened.saturating_sub(replaced);
    r.check(
        "server connections pgwarm opened",
        format!("{opened} for {logins} client connections"),
        (1..=POOL_SIZE).contains(&kept_open) && logins as i64 == clients,
    );
    r.check(
        "reads of the secret (Secrets Manager)",
        format!("{secret_reads} for {logins} client connections"),
        secret_reads == 1,
    );
    let first = invocations.first();
    r.row(
        "first invocation (pool still empty)",
        format!(
            "db_ms {}, wall {} ms",
            first
                .and_then(Invocation::answer)
                .map_or("-".into(), |a| format!("{:.2}", a.db_ms)),
            first.map_or("-".into(), |i| format!("{:.2}", i.wall_ms))
        ),
    );
    times.rows(r, s.invocations);

    if let Some(thaw) = thaw {
        r.line("");
        r.line("Frozen, the database terminates every backend of app; then thaw and invoke");
        match thaw {
            Ok(check) => {
                r.check(
                    "backends terminated while frozen",
                    check.terminated.to_string(),
                    check.terminated >= 1,
                );
                let i = &check.invocation;
                r.check(
                    "the invocation after the thaw",
                    match i.answer() {
                        Some(a) => format!("ok, db_ms {:.2}, wall {:.2} ms", a.db_ms, i.wall_ms),
                        None => "failed".into(),
                    },
                    i.outcome.is_ok(),
                );
            }
            Err(e) => r.check("the thaw check", e, false),
        }
        r.row(
            "dead server connections pgwarm replaced",
            format!("{replaced} (among the {opened} it opened)"),
        );
    }

    r.line("");
    r.line("SHUTDOWN");
    r.check(
        &format!(
            "pgwarm exited, within Lambda's {} ms",
            SHUTDOWN_BUDGET.as_millis()
        ),
        format!(
            "status {} after {} ms",
            shutdown.status_text(),
            shutdown.exit_ms.map_or("-".into(), |t| format!("{t:.1}"))
        ),
        shutdown.clean(),
    );
    r.check(
        "backends of role app afterwards",
        format!("{backends_after} (seen within {gone_ms} ms)"),
        backends_after == 0,
    );
    Pooled { clients, times }
}
