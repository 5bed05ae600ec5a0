//! The demo, the `demo` binary behind `scripts/demo.sh` (`src/bin/demo.rs`, whose doc lists its
//! steps): a real PostgreSQL, lambda-simulator playing Lambda, pgwarm as the extension and
//! `handler-example` as the function, then the fleet; a report a person reads in a minute.
//!
//! Here the steps in order, their report and exit status; each step is a module: pgwarm's
//! start-up (`startup.rs`), the handler through pgwarm with the thaw check and SHUTDOWN
//! (`through_pgwarm.rs`), the handler straight to PostgreSQL (`direct.rs`), the fleet (`fleet.rs`),
//! and the environment `--keep` leaves up (`keep.rs`). What they read and write: `settings.rs`,
//! `report.rs`, `times.rs`.

mod direct;
mod fleet;
mod keep;
mod report;
mod settings;
mod startup;
mod through_pgwarm;
mod times;

use std::process::ExitCode;
use std::time::Instant;

use crate::drivers::children::{end_on_signal, supervise};
use crate::drivers::facts::utc_now;
use crate::drivers::pgwarm_env::{pgwarm_passthrough, show_env};
use crate::harness::{cluster, free_port, Lambda, Moto, Pgwarm, Target};
use keep::Kept;
use report::Report;
use settings::DemoSettings;

const POOL_SIZE: usize = 2;
const SECRET_ID: &str = "demo/app-db";

/// The `demo` binary: the demo and its report, then what `--keep` leaves up.
pub fn main() -> ExitCode {
    supervise();
    let settings = match DemoSettings::read() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let on_signal = end_on_signal(runtime.handle(), "demo");
    let began = Instant::now();
    let (report, kept) = runtime.block_on(demo(&settings));
    println!("\n{}", report.text);
    let status = match report.failed.as_slice() {
        [] => {
            eprintln!(
                "demo: all checks passed in {:.1} s",
                began.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        failed => {
            eprintln!(
                "demo: {} check(s) FAILED: {}",
                failed.len(),
                failed.join("; ")
            );
            ExitCode::FAILURE
        }
    };
    if let Some(kept) = kept {
        // keep's own handlers first, so that no signal falls between the two.
        let signals = {
            use tokio::signal::unix::{signal, SignalKind};
            let _entered = runtime.enter();
            (
                signal(SignalKind::interrupt()).expect("a SIGINT handler"),
                signal(SignalKind::terminate()).expect("a SIGTERM handler"),
            )
        };
        on_signal.abort();
        runtime.block_on(keep::run(kept, signals));
    }
    status
}

/// The cluster, moto_server and pgwarm's settings, then every step with its part of the report;
/// and, with `--keep`, the environment left up.
async fn demo(s: &DemoSettings) -> (Report, Option<Kept>) {
    let mut r = Report::default();
    eprintln!("demo: starting PostgreSQL (a throwaway cluster) and moto_server");
    let db = cluster().create_target("app");
    let moto = Moto::start();
    moto.create_secret(SECRET_ID, &Moto::rds_secret_json(&db));
    let pgwarm_port = free_port();
    let (listen, pool_size) = (format!("127.0.0.1:{pgwarm_port}"), POOL_SIZE.to_string());
    // What the demo fixes for pgwarm; every other `PGWARM_*` of the caller reaches it.
    let settings = [
        ("PGWARM_LISTEN", listen.as_str()),
        ("PGWARM_SECRET_ID", SECRET_ID),
        // The secret's host is this machine, whose cluster has no certificate.
        ("PGWARM_SSLMODE", "prefer"),
        ("PGWARM_POOL_SIZE", pool_size.as_str()),
        // Client logins are logged at debug level: they are what the report counts.
        ("PGWARM_LOG_LEVEL", "info,pgwarm::client::handshake=debug"),
    ];
    let fixed: Vec<&str> = settings.iter().map(|(k, _)| *k).collect();
    let passthrough = pgwarm_passthrough(std::env::vars(), &fixed);
    let pgwarm = Pgwarm::builder_for(&s.pgwarm)
        .envs(moto.aws_env())
        .envs(passthrough.iter().cloned())
        .envs(settings)
        .env_default("PGWARM_LOG_FORMAT", "text");
    let superuser = cluster().superuser().connect().await;

    r.line(format!("pgwarm demo, {}", utc_now()));
    r.line(format!(
        "PostgreSQL {} on 127.0.0.1:{} (throwaway cluster)",
        cluster().version,
        cluster().port
    ));
    r.line(match s.freeze {
        true => "lambda-simulator 0.2 plays Lambda, freezing the environment between invocations (SIGSTOP, then SIGCONT with the next event)",
        false => "lambda-simulator 0.2 plays Lambda, without freezing (DEMO_FREEZE=off)",
    });
    r.line(format!(
        "pgwarm as the extension on 127.0.0.1:{pgwarm_port}, PGWARM_POOL_SIZE={POOL_SIZE}; other settings from the environment: {}",
        show_env(&passthrough)
    ));
    r.line(format!(
        "its login: the secret {SECRET_ID}, read from moto_server (Secrets Manager emulator) on 127.0.0.1:{}",
        moto.port
    ));

    if s.startup_runs > 0 {
        eprintln!("demo: starting pgwarm {} times as an extension, timing exec to listening and to registered", s.startup_runs);
        startup::run(&mut r, pgwarm.clone(), s.startup_runs).await;
    }

    eprintln!(
        "demo: pgwarm as the extension, handler-example as the function, {} invocations",
        s.invocations
    );
    let pooled_url = format!("postgres://app@127.0.0.1:{pgwarm_port}/app");
    let pooled = through_pgwarm::run(&mut r, s, pgwarm.clone(), &pooled_url, &superuser).await;

    eprintln!(
        "demo: handler-example alone, straight to PostgreSQL, {} invocations",
        s.direct_invocations
    );
    let direct_url = format!("postgres://app:{}@127.0.0.1:{}/app", db.password, db.port);
    direct::run(&mut r, s, &direct_url, &pooled).await;
    let visits = Target {
        dbname: "app".into(),
        ..cluster().superuser()
    }
    .connect()
    .await
    .query_one("SELECT count(*) FROM visits", &[])
    .await
    .map_or(-1, |row| row.get::<_, i64>(0));
    let expected = pooled.clients + s.direct_invocations as i64;
    r.check(
        "visits in the table (both runs)",
        format!("{visits} (expected {expected})"),
        visits == expected,
    );

    eprintln!(
        "demo: fleet: {} environments, {} connection slots; direct, through pgwarm, through pgwarm + PgBouncer",
        s.fleet.environments, s.fleet.db_slots
    );
    fleet::run(&mut r, s).await;

    let kept = match s.keep {
        false => None,
        true => {
            let mut lambda = Lambda::start_with(Some(pgwarm), false).await;
            lambda.start_handler_bin(&s.handler, &pooled_url);
            Some(Kept {
                lambda,
                app: Target {
                    port: pgwarm_port,
                    password: String::new(),
                    ..db
                },
                _moto: moto,
            })
        }
    };
    (r, kept)
}
