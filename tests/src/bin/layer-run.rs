//! `layer-run`: a layer's pgwarm, run. Each binary starts in front of the tests' throwaway
//! PostgreSQL with a SCRAM login, and one query goes through it over TLS (`sslmode=require`): the
//! binary starts, makes its certificate, logs in and relays, which exercises ring's code for its
//! architecture. `scripts/check-layer.sh --run` calls it, with `--emulator qemu-aarch64` for an
//! arm64 layer on an x86_64 machine (and the reverse).
//!
//! ```text
//! layer-run [--emulator PROGRAM] PGWARM...
//! ```
//! Exit status 0 when every binary answered, 1 when one did not, 2 for bad usage.

use pgwarm_tests::{cluster, tls_without_checks, Pgwarm, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut emulator = None;
    let mut binaries = Vec::new();
    let mut args = std::env::args().skip(1);
    let mut usage_ok = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--emulator" => match args.next() {
                Some(program) if !program.is_empty() => emulator = Some(program),
                _ => usage_ok = false,
            },
            _ => binaries.push(PathBuf::from(arg)),
        }
    }
    if !usage_ok || binaries.is_empty() {
        eprintln!("usage: layer-run [--emulator PROGRAM] PGWARM...");
        return ExitCode::from(2);
    }
    let db = cluster().fresh_target();
    let scratch = TempDir::new("pgwarm-layer-run");
    let mut ok = true;
    for bin in &binaries {
        let bin = match std::path::absolute(bin) {
            Ok(bin) if bin.is_file() => bin,
            _ => {
                eprintln!("layer-run: {}: no such file", bin.display());
                return ExitCode::from(2);
            }
        };
        let runs = match &emulator {
            Some(program) => under(program, &bin, scratch.path()),
            None => bin.clone(),
        };
        let pgwarm = Pgwarm::builder(&db)
            .bin(&runs)
            .env("PGWARM_SSLMODE", "disable")
            .env("PGWARM_CLIENT_TLS", "on")
            .env("PGWARM_LOG_LEVEL", "info")
            .spawn();
        let answer = async {
            let client = pgwarm
                .target()
                .try_connect_tls("sslmode=require", tls_without_checks(false).0)
                .await?;
            let rows =
                pgwarm_tests::simple_rows(&client, "SELECT current_user || ' ' || 6 * 7").await;
            Ok::<_, tokio_postgres::Error>(rows)
        }
        .await;
        let how = emulator
            .as_deref()
            .map_or(String::new(), |e| format!(" under {e}"));
        match answer {
            Ok(rows) if rows == [[format!("{} 42", db.user)]] => println!(
                "{}{how}: tokio-postgres (sslmode=require) -> pgwarm -> PostgreSQL (SCRAM) answered {:?}",
                bin.display(),
                rows[0][0]
            ),
            other => {
                eprintln!(
                    "layer-run: {}{how}: the query through pgwarm failed: {other:?}\n--- pgwarm log ---\n{}",
                    bin.display(),
                    pgwarm.log()
                );
                ok = false;
            }
        }
    }
    match ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// A wrapper in `dir` that execs `bin` under `program`, so the pid the harness waits on is the
/// emulated pgwarm itself.
fn under(program: &str, bin: &Path, dir: &Path) -> PathBuf {
    let name = |p: &str| p.replace('/', "_");
    let wrapper = dir.join(format!(
        "under-{}{}",
        name(program),
        name(&bin.display().to_string())
    ));
    let script = format!(
        "#!/bin/sh\nexec {program} '{}' \"$@\"\n",
        bin.display().to_string().replace('\'', r"'\''")
    );
    std::fs::write(&wrapper, script).expect("write the emulator wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the emulator wrapper");
    wrapper
}
