//! `lambda-run`, the driver people run by hand, run as they would: pgwarm as the extension of
//! the real `handler-example`, its invocations, the thaw check and SHUTDOWN, each a line on
//! stdout; and its start-up timing. (The demo, the benchmarks and `layer-run` run in
//! `scripts/test.sh`'s smoke runs.)

use pgwarm_tests::*;
use std::process::{Command, Output};
use std::time::Duration;

/// `lambda-run ARGS` with pgwarm set up for `db` on `port`, and `extra` variables.
fn lambda_run(db: &Target, port: u16, args: &[&str], extra: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lambda-run"));
    cmd.args(args)
        .env("PGWARM_DB_HOST", &db.host)
        .env("PGWARM_DB_PORT", db.port.to_string())
        .env("PGWARM_DB_USER", &db.user)
        .env("PGWARM_DB_PASSWORD", &db.password)
        .env("PGWARM_DB_NAME", &db.dbname)
        .env("PGWARM_LISTEN", format!("127.0.0.1:{port}"))
        .env("PGWARM_POOL_SIZE", "1")
        .envs(extra.iter().map(|(k, v)| (k, v)));
    output_with_timeout(&mut cmd, None, Duration::from_secs(120))
}

/// The tab-separated lines of stdout whose first field is `kind`.
fn lines(out: &Output, kind: &str) -> Vec<Vec<String>> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f.first().is_some_and(|k| k == kind))
        .collect()
}

#[test]
fn lambda_run_invokes_checks_the_thaw_and_shuts_down() {
    let db = cluster().fresh_target();
    let port = free_port();
    let (pgwarm, handler) = (pgwarm_bin(), workspace_bin("handler-example"));
    let out = lambda_run(
        &db,
        port,
        &[
            "--handler",
            &handler.to_string_lossy(),
            "--pgwarm",
            &pgwarm.to_string_lossy(),
            "--invocations",
            "3",
            "--thaw-check",
        ],
        &[
            (
                "DATABASE_URL",
                format!("postgres://{}@127.0.0.1:{port}/{}", db.user, db.dbname),
            ),
            ("SUPERUSER_URL", cluster().superuser().conn_string()),
            ("THAW_ROLE", db.user.clone()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    let invocations = lines(&out, "invocation");
    assert_eq!(invocations.len(), 3, "{invocations:?}");
    for (i, fields) in invocations.iter().enumerate() {
        assert_eq!(fields[2], "ok", "{fields:?}");
        assert_eq!(fields[5], (i + 1).to_string(), "visits: {fields:?}");
    }
    let thaw = lines(&out, "thaw_check");
    assert_eq!(thaw.len(), 1, "{stderr}");
    assert_eq!(thaw[0][1], "1", "one pooled backend terminated: {thaw:?}");
    assert_eq!(thaw[0][2], "ok", "{thaw:?}");
    assert_eq!(thaw[0][5], "4", "the invocation after the thaw: {thaw:?}");
    let shutdown = lines(&out, "shutdown");
    assert_eq!(shutdown.len(), 1, "{stderr}");
    assert_eq!(
        shutdown[0][2], "0",
        "pgwarm exited with status 0: {shutdown:?}"
    );
    assert!(
        shutdown[0][1].parse::<f64>().is_ok_and(|ms| ms < 2000.0),
        "within Lambda's 2 s: {shutdown:?}"
    );
    assert_eq!(
        cluster().wait_for_backends(&db.user, 0, Duration::from_secs(5)),
        0
    );
}

#[test]
fn lambda_run_times_start_up_and_refuses_what_it_cannot_do() {
    let db = cluster().fresh_target();
    let pgwarm = pgwarm_bin();
    let out = lambda_run(
        &db,
        free_port(),
        &["--startup-runs", "2", "--pgwarm", &pgwarm.to_string_lossy()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let starts = lines(&out, "startup");
    assert_eq!(starts.len(), 2, "{starts:?}");
    for fields in &starts {
        let listening: f64 = fields[2].parse().expect("ms to listening");
        let registered: f64 = fields[3].parse().expect("ms to registered");
        assert!(listening > 0.0 && registered > 0.0, "{fields:?}");
    }

    let bad = lambda_run(&db, free_port(), &["--startup-runs", "2"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--startup-runs needs --pgwarm"));
}
