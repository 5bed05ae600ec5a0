//! One run's load and fault: `tests/py/failover.py` (psycopg clients, the same for every way)
//! against the way's connection string, and, once every client has had an operation succeed
//! and a second more has passed, `pg_ctl stop -m fast` of the primary then `pg_ctl promote` of
//! the standby. The script is told when the promotion was asked for on CLOCK_MONOTONIC, the
//! clock Python's `time.monotonic_ns` reads, so it times what came back from that instant.
//! What the clients saw comes back as the script's last line, one JSON object, read here into
//! [`Seen`].

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::settings::FailoverSettings;
use super::ways::{Servers, TABLE};
use crate::harness::process_groups::own_group;
use crate::harness::{is_killed_mid_statement, python_script, tool, wait_timeout};

/// The load before the fault, once every client is going.
const WARMUP: Duration = Duration::from_secs(1);
/// The script's own bound for its clients' first operations is 30 s; this covers its start too.
const READY_LIMIT: Duration = Duration::from_secs(40);
/// After the window: the clients' 5 s to stop, the rows counted, the report written.
const AFTER_WINDOW: Duration = Duration::from_secs(30);

/// Why a run gave no figures.
#[derive(Debug)]
pub(super) enum Failed {
    /// The script ended, or took too long, before every client had an operation succeed.
    NotReady(String),
    /// The script did not end well, or its last line is not the report it promises.
    Report(String),
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failed::NotReady(why) => write!(f, "the load never got going: {why}"),
            Failed::Report(why) => write!(f, "no report from the load: {why}"),
        }
    }
}

/// How long the fault's two steps took, as pg_ctl returned (`-w`: it waits for each).
#[derive(Clone, Copy, Debug)]
pub(super) struct Fault {
    pub(super) stop_ms: f64,
    pub(super) promote_ms: f64,
}

/// One kind of error the clients saw, with how often.
#[derive(Clone, Debug)]
pub(super) struct ErrorKind {
    pub(super) in_transaction: bool,
    /// `connect`, `statement` (outside a transaction) or `transaction`.
    pub(super) place: String,
    pub(super) message: String,
    pub(super) count: u64,
}

/// The committed rows, counted on the new primary.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Rows {
    /// Ids whose COMMIT succeeded.
    pub(super) committed: u64,
    /// Ids whose COMMIT failed: committed or not, only the database knows.
    pub(super) in_doubt: u64,
    /// Committed ids not on the new primary.
    pub(super) lost: u64,
    /// Ids there more than once.
    pub(super) doubled: u64,
    /// Ids there that no client saw committed nor in doubt.
    pub(super) unexpected: u64,
}

/// What the clients saw in one run.
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) ops: u64,
    pub(super) ops_after: u64,
    pub(super) errors: Vec<ErrorKind>,
    /// Clients that saw at least one error outside a transaction.
    pub(super) clients_with_errors: u64,
    /// From the promotion's request to the first operation, and write, that succeeded after it.
    pub(super) first_op_ms: Option<f64>,
    pub(super) first_write_ms: Option<f64>,
    pub(super) last_error_ms: Option<f64>,
    /// Clients still inside an operation when the load was over (and 5 s more).
    pub(super) unfinished: u64,
    /// Answers that were not what the query asked for: how many, and the first few.
    pub(super) wrong_count: u64,
    pub(super) wrong: Vec<String>,
    pub(super) rows: Rows,
    /// psycopg's and libpq's versions.
    pub(super) client: String,
}

impl Seen {
    fn count(&self, pick: impl Fn(&ErrorKind) -> bool) -> u64 {
        self.errors
            .iter()
            .filter(|e| pick(e))
            .map(|e| e.count)
            .sum()
    }

    pub(super) fn errors_outside(&self) -> u64 {
        self.count(|e| !e.in_transaction)
    }

    /// Of those outside a transaction: failed connects.
    pub(super) fn connect_errors(&self) -> u64 {
        self.count(|e| e.place == "connect")
    }

    /// Of those outside a transaction: statements the database killed while they ran, as the
    /// harness's fault tests tell them.
    pub(super) fn killed(&self) -> u64 {
        self.count(|e| e.place == "statement" && is_killed_mid_statement(&e.message))
    }

    pub(super) fn errors_inside(&self) -> u64 {
        self.count(|e| e.in_transaction)
    }
}

/// One run: the fault, if the load got that far, and what the clients saw.
pub(super) struct Run {
    pub(super) fault: Option<Fault>,
    pub(super) seen: Result<Seen, Failed>,
}

/// Runs the load against `servers` with its fault; the script's stdout and stderr are saved
/// to `output` (`.out`, `.err`).
pub(super) fn run(servers: &Servers, s: &FailoverSettings, output: &Path) -> Run {
    let err_path = output.with_extension("err");
    let stderr = match fs::File::create(&err_path) {
        Ok(f) => f,
        Err(e) => return not_ready(format!("{}: {e}", err_path.display())),
    };
    let mut cmd = Command::new(tool("python3"));
    cmd.arg(python_script("failover.py"))
        .env("FAILOVER_DSN", &servers.dsn)
        .env("CHECK_DSN", servers.check.conn_string())
        .env("FAILOVER_TABLE", TABLE)
        .env("FAILOVER_CLIENTS", s.clients.to_string())
        .env("FAILOVER_WINDOW", s.window.as_secs_f64().to_string())
        .env("FAILOVER_BACKOFF_MS", s.backoff_ms.to_string())
        .env("PRIMARY_PORT", servers.primary.port.to_string())
        .env("STANDBY_PORT", servers.standby.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    own_group(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return not_ready(format!("python3: {e}")),
    };
    let lines = read_lines(&mut child);
    let mut out = Vec::new();
    let ready = collect(
        &lines,
        &mut out,
        Instant::now() + READY_LIMIT,
        Some("ready"),
    );
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        let why = format!("no `ready` line (see {})", err_path.display());
        save(output, &out);
        return not_ready(why);
    }
    std::thread::sleep(WARMUP);
    let (asked, fault) = fail_over(servers);
    let told = child
        .stdin
        .as_mut()
        .map(|stdin| writeln!(stdin, "promoted {asked}").and_then(|()| stdin.flush()));
    let deadline = Instant::now() + s.window + AFTER_WINDOW;
    let ended = collect(&lines, &mut out, deadline, None);
    let (status, killed) = wait_timeout(&mut child, Duration::from_secs(5));
    save(output, &out);
    let seen = match (told, ended, killed) {
        (Some(Err(e)), _, _) => Err(Failed::Report(format!("telling the script: {e}"))),
        (_, false, _) | (_, _, true) => Err(Failed::Report(format!(
            "still running {} s after the window; killed",
            AFTER_WINDOW.as_secs()
        ))),
        _ if !status.success() => Err(Failed::Report(format!(
            "failover.py exited with {status} (see {})",
            err_path.display()
        ))),
        _ => out
            .last()
            .ok_or_else(|| Failed::Report("no output".into()))
            .and_then(|last| parse(last).map_err(Failed::Report)),
    };
    Run {
        fault: Some(fault),
        seen,
    }
}

fn not_ready(why: String) -> Run {
    Run {
        fault: None,
        seen: Err(Failed::NotReady(why)),
    }
}

/// The child's stdout, line by line, on a channel that closes when it does.
fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
    }
    lines
}

/// Collects lines into `out` until the line `until` (`Some`) or the end of the output
/// (`None`): whether it came before `deadline`.
fn collect(
    lines: &mpsc::Receiver<String>,
    out: &mut Vec<String>,
    deadline: Instant,
    until: Option<&str>,
) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = Some(line.as_str()) == until;
                out.push(line);
                if found {
                    return true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return until.is_none(),
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
        }
    }
}

/// `pg_ctl stop -m fast` of the primary, then `pg_ctl promote` of the standby: when the
/// promotion was asked for (CLOCK_MONOTONIC, ns), and how long each step took.
fn fail_over(servers: &Servers) -> (i64, Fault) {
    let began = Instant::now();
    servers.primary.stop_fast();
    let stopped = Instant::now();
    let asked = monotonic_ns();
    servers.standby.promote();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let fault = Fault {
        stop_ms: ms(stopped - began),
        promote_ms: ms(stopped.elapsed()),
    };
    (asked, fault)
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of Python's `time.monotonic_ns` on Linux.
fn monotonic_ns() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`, which is valid for it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

fn save(output: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if let Err(e) = fs::write(output, text) {
        eprintln!("cannot write {}: {e}", output.display());
    }
}

/// The script's report line.
fn parse(line: &str) -> Result<Seen, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("{e} in {line:?}"))?;
    let n = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no number `{key}` in {line:?}"))
    };
    let ms = |key: &str| v.get(key).and_then(Value::as_f64);
    if let Some(e) = v.get("check_error").and_then(Value::as_str) {
        return Err(format!("counting the rows on the new primary: {e}"));
    }
    let rows = v.get("rows").ok_or("no `rows`")?;
    let mut errors = Vec::new();
    for e in v
        .get("errors")
        .and_then(Value::as_array)
        .ok_or("no `errors`")?
    {
        let text = |key: &str| e.get(key).and_then(Value::as_str).unwrap_or_default();
        errors.push(ErrorKind {
            in_transaction: e.get("in_transaction").and_then(Value::as_bool) == Some(true),
            place: text("where").to_owned(),
            message: text("message").to_owned(),
            count: n(e, "count")?,
        });
    }
    let wrong = v.get("wrong").and_then(Value::as_array);
    Ok(Seen {
        ops: n(&v, "ops")?,
        ops_after: n(&v, "ops_after")?,
        errors,
        clients_with_errors: n(&v, "clients_with_errors")?,
        first_op_ms: ms("first_op_ms"),
        first_write_ms: ms("first_write_ms"),
        last_error_ms: ms("last_error_ms"),
        unfinished: n(&v, "unfinished")?,
        wrong: wrong
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect(),
        wrong_count: n(&v, "wrong_count")?,
        rows: Rows {
            committed: n(rows, "committed")?,
            in_doubt: n(rows, "in_doubt")?,
            lost: n(rows, "lost")?,
            doubled: n(rows, "doubled")?,
            unexpected: n(rows, "unexpected")?,
        },
        client: v
            .get("client")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report line as failover.py prints it (from a smoke run, shortened).
    const LINE: &str = r#"{"client": "psycopg 3.3.9, libpq 180006", "ops": 3131, "ops_after": 2065, "wrong": [], "wrong_count": 0, "errors": [{"in_transaction": false, "where": "statement", "message": "terminating connection due to administrator command", "count": 4}, {"in_transaction": false, "where": "connect", "message": "connection failed: the standby: session is read-only", "count": 8}, {"in_transaction": true, "where": "transaction", "message": "server closed the connection unexpectedly", "count": 2}], "clients_with_errors": 9, "first_op_ms": 70.7, "first_write_ms": null, "last_error_ms": 70.6, "unfinished": 0, "rows": {"committed": 734, "in_doubt": 1, "rows": 734, "lost": 0, "doubled": 0, "unexpected": 0}, "check_error": null}"#;

    #[test]
    fn the_scripts_report_line_is_read_and_its_errors_counted_by_place() {
        let seen = parse(LINE).expect("a report");
        assert_eq!((seen.ops, seen.ops_after), (3131, 2065));
        assert_eq!(seen.first_op_ms, Some(70.7));
        assert_eq!(seen.first_write_ms, None, "null: no write came back");
        assert_eq!(seen.errors_outside(), 12);
        assert_eq!(seen.connect_errors(), 8);
        assert_eq!(
            seen.killed(),
            4,
            "a killed statement, not a refused connect"
        );
        assert_eq!(seen.errors_inside(), 2);
        assert_eq!(seen.clients_with_errors, 9);
        assert_eq!((seen.rows.committed, seen.rows.in_doubt), (734, 1));
        assert_eq!(seen.client, "psycopg 3.3.9, libpq 180006");
    }

    #[test]
    fn a_report_without_its_figures_or_with_a_failed_count_is_an_error() {
        let failed = LINE.replace(
            r#""check_error": null"#,
            r#""check_error": "connection refused""#,
        );
        let e = parse(&failed).expect_err("the rows were not counted");
        assert!(
            e.contains("counting the rows") && e.contains("refused"),
            "{e}"
        );
        let e = parse(&LINE.replace(r#""ops": 3131, "#, "")).expect_err("no ops");
        assert!(e.contains("`ops`"), "{e}");
        assert!(parse("Traceback (most recent call last):").is_err());
    }
}
