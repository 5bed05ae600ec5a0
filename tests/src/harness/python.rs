//! Python drivers as real clients: the scripts under `tests/py`, run with `python3` against a
//! test's pgwarm and database. A missing driver is a test failure that says what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::harness::pg::Target;
use crate::harness::tools::{output_with_timeout, tool};

/// How long one script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `tests/py/<script> <case>` with `PGWARM_DSN` and `DIRECT_DSN` set, and panics with its
/// output unless it exits 0. Returns what it printed.
pub fn run_python_case(script: &str, case: &str, pgwarm: &Target, direct: &Target) -> String {
    require_psycopg();
    let mut cmd = Command::new(tool("python3"));
    cmd.arg(python_script(script))
        .arg(case)
        .env("PGWARM_DSN", pgwarm.conn_string())
        .env("DIRECT_DSN", direct.conn_string())
        .env("PGCONNECT_TIMEOUT", "10");
    let out: Output = output_with_timeout(&mut cmd, None, SCRIPT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {case}: {}\n--- stdout\n{stdout}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `tests/py/<script>`.
pub fn python_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script)
}

/// psycopg 3 with a libpq of its own (the `psycopg[binary]` wheel: libpq 17+, whose cancel API
/// speaks TLS), or a panic that says how to install it.
pub fn require_psycopg() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let out = Command::new(tool("python3"))
            .args(["-c", "import psycopg; print(psycopg.pq.version())"])
            .output()
            .map_err(|e| format!("running python3: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = found {
        panic!(
            "psycopg is not importable ({}): install the PyPI package `psycopg[binary]` \
             (scripts/test.sh installs everything the tests need)",
            e.trim()
        );
    }
}
