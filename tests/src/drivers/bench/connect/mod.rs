//! The connect benchmark, the `bench-connect` binary (`src/bin/bench-connect.rs`, whose doc says
//! what it measures and how): what connect + one query + close costs directly, through pgwarm
//! and through PgBouncer, each with and without TLS from the client, `pgbench -C` over rotating
//! rounds.
//!
//! Its own parts: the settings (`settings.rs`), the six cases (`cases.rs`), its runs table
//! (`runs.rs`), the checks before measuring (`checks.rs`), the runs themselves (`measure.rs`) and
//! the report (`report.rs`).

mod cases;
mod checks;
mod measure;
mod report;
mod runs;
mod settings;

use std::process::ExitCode;

use super::out_dirs::OutDirs;
use super::setup;
use super::stop::Halt;
use crate::harness::{cluster, TestCerts};
use settings::{ConnectSettings, Secret};

const PROGRAM: &str = "bench-connect";
/// pgwarm's and PgBouncer's pool.
const POOL_SIZE: &str = "2";
const SCALE: u32 = 1;
/// The settings pgwarm gets from the benchmark, whatever the caller's environment says (and its
/// connection to the database, which the harness sets).
const PGWARM_SETTINGS: [(&str, &str); 4] = [
    ("PGWARM_POOL_SIZE", POOL_SIZE),
    ("PGWARM_SSLMODE", "require"),
    ("PGWARM_CLIENT_TLS", "on"),
    ("PGWARM_LOG_LEVEL", "warn"),
];

fn say(text: impl AsRef<str>) {
    super::say(PROGRAM, text);
}

/// The `bench-connect` binary: the benchmark, its settings from the environment.
pub fn main() -> ExitCode {
    if std::env::args().len() > 1 {
        eprintln!("usage: bench-connect (settings in BENCH_* variables)");
        return ExitCode::from(2);
    }
    let settings = match ConnectSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            say(e);
            return ExitCode::from(2);
        }
    };
    setup::run(
        PROGRAM,
        "connect-",
        "some runs FAILED or a measurement is missing",
        |out| on_database(&settings, out),
    )
}

/// TLS on the cluster, the database, the relays, the runs, then the report; whether every run
/// counted.
fn on_database(s: &ConnectSettings, out: &OutDirs) -> Result<bool, Halt> {
    let pg = cluster();
    // enable_ssl copies the certificate and key into the data directory.
    pg.enable_ssl(&TestCerts::new(&["localhost", "127.0.0.1"]));
    let db = setup::database(PROGRAM, SCALE)?;
    let pgbouncer_secret = match s.secret {
        Secret::Plain => setup::PASSWORD.to_owned(),
        Secret::Verifier => {
            let secret = pg.psql_super("SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'");
            if !secret.starts_with("SCRAM-SHA-256$") {
                return Err(Halt::Failed(
                    "the role bench has no SCRAM secret in pg_authid".into(),
                ));
            }
            secret
        }
    };
    let relays = measure::start_relays(s, &db, &pgbouncer_secret)?;
    let (runs, tls, finished) =
        relays.measure(out, |relays| measure::measure(s, out, relays, &db))?;
    out.publish(PROGRAM, &report::report(s, &runs, &tls, &finished))?;
    Ok(finished.all_counted)
}
