//! pgbench against a target, its summary read back, and the rule that says whether a run counts.
//!
//! A run counts only if pgbench exits 0, prints no "aborted", reports "number of failed
//! transactions: 0", prints no "pgbench: error:" line, and reports a TPS and a non-zero
//! transaction count, plus whatever other figure the caller needs. The error lines matter for
//! `-M prepared`: pgbench 15 logs a failed PREPARE ("prepared statement \"P_0\" already
//! exists") and carries on, exiting 0 with no failed transaction, its statements then running
//! only because every client prepares the same SQL under the same name. And pgbench reports 0
//! failed transactions even when it aborted clients, hence the other checks.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use super::cpu::children_cpu;
use crate::harness::Target;
use crate::harness::{output_noting_timeout, pgbench_command, pgbench_processed};

/// libpq's `sslmode` for a benchmark's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Require,
}

impl SslMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
        }
    }
}

/// How a benchmark's libpq tools (psql, pgbench) reach one target: its login, and libpq's
/// `sslmode` (GSSAPI encryption is always off: no Kerberos probe before a login).
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pub(crate) target: Target,
    pub(crate) sslmode: SslMode,
}

impl Client {
    pub(crate) fn new(target: Target, sslmode: SslMode) -> Client {
        Client { target, sslmode }
    }

    fn libpq_env(&self, cmd: &mut Command) {
        cmd.env("PGSSLMODE", self.sslmode.as_str())
            .env("PGGSSENCMODE", "disable");
    }

    /// `psql -c sql` through this client: its output, trimmed, or why it failed.
    pub(crate) fn query(&self, sql: &str) -> Result<String, String> {
        let mut cmd = self.target.psql_command();
        self.libpq_env(&mut cmd);
        cmd.arg("-c").arg(sql);
        let (out, _) = output_noting_timeout(&mut cmd, None, Duration::from_secs(60));
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match out.status.success() {
            true => Ok(stdout),
            false => Err(format!(
                "psql ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout
            )),
        }
    }

    /// Whether the tables of `pgbench -i -s scale` answer through this client, before any run
    /// is measured: a broken path fails there, clearly. When they do not, the answer, to show.
    pub(crate) fn check_branches(&self, scale: u32) -> Result<(), String> {
        let answer = self.query("SELECT count(*) FROM pgbench_branches");
        match answer.as_deref() == Ok(scale.to_string().as_str()) {
            true => Ok(()),
            false => Err(format!("{answer:?}")),
        }
    }

    /// Runs pgbench with `args`, killed after `timeout`, and reads its summary.
    pub(crate) fn pgbench(&self, args: &[&str], timeout: Duration) -> PgbenchRun {
        let mut cmd = pgbench_command(&self.target, args);
        self.libpq_env(&mut cmd);
        // Nothing else is reaped while pgbench runs, so the children's CPU time grows by
        // pgbench's own.
        let cpu_before = children_cpu();
        let (out, timed_out) = output_noting_timeout(&mut cmd, None, timeout);
        let cpu = children_cpu().saturating_sub(cpu_before);
        let exit = match (timed_out, out.status.code()) {
            (true, _) => Exit::TimedOut(timeout),
            (false, Some(code)) => Exit::Code(code),
            (false, None) => {
                use std::os::unix::process::ExitStatusExt;
                Exit::Signal(out.status.signal().unwrap_or(0))
            }
        };
        PgbenchRun::new(
            exit,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            cpu,
        )
    }
}

/// How pgbench ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed by the caller's timeout: the target hung.
    TimedOut(Duration),
}

/// One pgbench run: how it ended, what it printed, and the CPU time it used.
#[derive(Clone, Debug)]
pub(crate) struct PgbenchRun {
    pub(crate) exit: Exit,
    /// The summary (and the version line).
    pub(crate) stdout: String,
    /// Errors, as they came during the run.
    pub(crate) stderr: String,
    /// pgbench's own CPU time, user + system: how much this process's reaped children's
    /// (getrusage RUSAGE_CHILDREN) grew while pgbench ran.
    pub(crate) cpu: Duration,
    pub(crate) summary: Summary,
}

impl PgbenchRun {
    pub(crate) fn new(exit: Exit, stdout: String, stderr: String, cpu: Duration) -> PgbenchRun {
        let summary = Summary::parse(&stdout);
        PgbenchRun {
            exit,
            stdout,
            stderr,
            cpu,
            summary,
        }
    }

    /// Everything pgbench printed, for the run's file: stdout, then stderr.
    pub(crate) fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Why the run does not count, or `None` when it does; see [`judge`].
    pub(crate) fn failure(&self, needs: &[Figure]) -> Option<Failure> {
        judge(self, needs).err()
    }
}

/// The figures of pgbench's summary; `None` for one it did not print.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Summary {
    /// The first `tps = ` line: without the initial connection time, or with `-C` including
    /// the reconnections.
    pub(crate) tps: Option<f64>,
    /// "latency average", ms.
    pub(crate) latency_ms: Option<f64>,
    /// "average connection time" (with `-C`), ms.
    pub(crate) connection_ms: Option<f64>,
    /// "number of transactions actually processed", 0 when missing.
    pub(crate) processed: u64,
    /// "number of failed transactions".
    pub(crate) failed: Option<u64>,
}

impl Summary {
    pub(crate) fn parse(stdout: &str) -> Summary {
        let number = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        };
        Summary {
            tps: number("tps = "),
            latency_ms: number("latency average = "),
            connection_ms: number("average connection time = "),
            processed: pgbench_processed(stdout),
            failed: number("number of failed transactions: ").map(|n| n as u64),
        }
    }
}

/// A figure of the summary that a caller needs besides the TPS and the transaction count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Figure {
    LatencyAverage,
    ConnectionTime,
}

/// Why a run does not count: every reason, and pgbench's first error line (and its first client
/// abort line when that is another one: pgbench logs a failed PREPARE and goes on, so a run can
/// start with "already exists" and abort on "does not exist").
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) reasons: Vec<String>,
    pub(crate) first_error: Option<String>,
    pub(crate) first_abort: Option<String>,
}

impl Failure {
    /// The reasons, comma-separated.
    pub(crate) fn why(&self) -> String {
        self.reasons.join(", ")
    }

    /// The first error line, or "-" when pgbench printed none.
    pub(crate) fn error_line(&self) -> &str {
        self.first_error.as_deref().unwrap_or("-")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.why())
    }
}

/// The failure rule (see the module's doc): `Ok` when the run counts, else every reason it does
/// not. `needs`: the figures the caller reads besides the TPS and the transaction count.
pub(crate) fn judge(run: &PgbenchRun, needs: &[Figure]) -> Result<(), Failure> {
    let s = &run.summary;
    let mut reasons = Vec::new();
    match run.exit {
        Exit::Code(0) => {}
        Exit::Code(code) => reasons.push(format!("exit status {code}")),
        Exit::Signal(signal) => reasons.push(format!("killed by signal {signal}")),
        Exit::TimedOut(after) => reasons.push(format!("timed out after {}s", after.as_secs())),
    }
    // Errors come first on stderr: search it before the summary.
    let lines = || run.stderr.lines().chain(run.stdout.lines());
    if lines().any(|l| l.to_lowercase().contains("aborted")) {
        reasons.push("aborted".into());
    }
    let errors = lines().filter(|l| l.starts_with("pgbench: error:")).count();
    if errors > 0 {
        reasons.push(format!("'pgbench: error:' x {errors}"));
    }
    match s.failed {
        None => reasons.push("no failed-transaction count".into()),
        Some(0) => {}
        Some(n) => reasons.push(format!("{n} failed transactions")),
    }
    if s.tps.is_none() {
        reasons.push("no TPS".into());
    }
    for need in needs {
        match need {
            Figure::LatencyAverage if s.latency_ms.is_none() => {
                reasons.push("no latency average".into())
            }
            Figure::ConnectionTime if s.connection_ms.is_none() => {
                reasons.push("no average connection time".into())
            }
            _ => {}
        }
    }
    if s.processed == 0 {
        reasons.push("no transactions".into());
    }
    if reasons.is_empty() {
        return Ok(());
    }
    let first_error = lines()
        .find(|l| {
            let l = l.to_lowercase();
            l.contains("error") || l.contains("fatal") || l.contains("abort")
        })
        .map(str::to_owned);
    let first_abort = lines()
        .find(|l| l.contains("aborted in command"))
        .map(str::to_owned)
        .filter(|abort| Some(abort) != first_error.as_ref());
    Err(Failure {
        reasons,
        first_error,
        first_abort,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgbench 15 -S against pgwarm, 2 clients for 1 s: a clean run.
    const CLEAN: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 2
number of threads: 2
maximum number of tries: 1
duration: 1 s
number of transactions actually processed: 7526
number of failed transactions: 0 (0.000%)
latency average = 0.266 ms
initial connection time = 0.710 ms
tps = 7528.860967 (without initial connection time)
";

    /// pgbench 15 -C -S -c 1 through pgwarm with TLS: the connect benchmark's figures.
    const RECONNECTING: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 1
number of threads: 1
maximum number of tries: 1
duration: 1 s
number of transactions actually processed: 437
number of failed transactions: 0 (0.000%)
latency average = 2.291 ms
average connection time = 1.911 ms
tps = 436.543812 (including reconnection times)
";

    /// pgbench 15 -M prepared through PgBouncer 1.18 in transaction mode: clients abort, yet
    /// it reports 0 failed transactions and a TPS.
    const PREPARED_THROUGH_PGBOUNCER_OUT: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 29
number of failed transactions: 0 (0.000%)
latency average = 0.601 ms
initial connection time = 14.158 ms
tps = 3325.688073 (without initial connection time)
";
    const PREPARED_THROUGH_PGBOUNCER_ERR: &str = "pgbench: error: ERROR:  prepared statement \"P_0\" already exists
pgbench: error: client 1 script 0 aborted in command 1 query 0: ERROR:  prepared statement \"P_0\" does not exist
pgbench: error: client 0 script 0 aborted in command 1 query 0: ERROR:  prepared statement \"P_0\" does not exist
pgbench: error: Run was aborted; the above results are incomplete.
";

    /// pgbench 15 -n -S -T 1 against a port nothing listens on (stdout is empty).
    const REFUSED_ERR: &str =
        "pgbench: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?
pgbench: error: could not create connection for setup
";

    fn run(exit: Exit, stdout: &str, stderr: &str) -> PgbenchRun {
        PgbenchRun::new(exit, stdout.into(), stderr.into(), Duration::ZERO)
    }

    #[test]
    fn the_summary_of_a_clean_run_reads_back() {
        let s = Summary::parse(CLEAN);
        assert_eq!(s.tps, Some(7528.860967));
        assert_eq!(s.latency_ms, Some(0.266));
        assert_eq!(
            s.connection_ms, None,
            "without -C there is only the initial one"
        );
        assert_eq!(s.processed, 7526);
        assert_eq!(s.failed, Some(0));
        assert_eq!(judge(&run(Exit::Code(0), CLEAN, ""), &[]), Ok(()));
    }

    #[test]
    fn a_reconnecting_run_has_its_connection_time() {
        let s = Summary::parse(RECONNECTING);
        assert_eq!(s.tps, Some(436.543812));
        assert_eq!(s.connection_ms, Some(1.911));
        assert_eq!(s.latency_ms, Some(2.291));
        let needs = [Figure::LatencyAverage, Figure::ConnectionTime];
        assert_eq!(judge(&run(Exit::Code(0), RECONNECTING, ""), &needs), Ok(()));
    }

    #[test]
    fn a_figure_the_caller_needs_must_be_there() {
        let failure = judge(&run(Exit::Code(0), CLEAN, ""), &[Figure::ConnectionTime])
            .expect_err("no average connection time without -C");
        assert_eq!(failure.why(), "no average connection time");
        assert_eq!(failure.error_line(), "-");
    }

    #[test]
    fn aborted_clients_fail_the_run_whatever_the_failed_count_says() {
        let failure = judge(
            &run(
                Exit::Code(2),
                PREPARED_THROUGH_PGBOUNCER_OUT,
                PREPARED_THROUGH_PGBOUNCER_ERR,
            ),
            &[],
        )
        .expect_err("clients aborted");
        assert_eq!(
            failure.why(),
            "exit status 2, aborted, 'pgbench: error:' x 4"
        );
        assert_eq!(
            failure.error_line(),
            "pgbench: error: ERROR:  prepared statement \"P_0\" already exists"
        );
        assert_eq!(
            failure.first_abort.as_deref(),
            Some(
                "pgbench: error: client 1 script 0 aborted in command 1 query 0: ERROR:  \
                 prepared statement \"P_0\" does not exist"
            )
        );
    }

    #[test]
    fn an_error_line_alone_fails_a_run_that_exited_0() {
        let stderr = "pgbench: error: ERROR:  prepared statement \"P_0\" already exists\n";
        let failure = judge(&run(Exit::Code(0), CLEAN, stderr), &[]).expect_err("an error line");
        assert_eq!(failure.why(), "'pgbench: error:' x 1");
        assert_eq!(failure.first_abort, None);
    }

    #[test]
    fn failed_transactions_fail_the_run() {
        let out = CLEAN.replace(
            "number of failed transactions: 0 (0.000%)",
            "number of failed transactions: 3 (0.040%)",
        );
        let failure = judge(&run(Exit::Code(0), &out, ""), &[]).expect_err("3 failed");
        assert_eq!(failure.why(), "3 failed transactions");
    }

    #[test]
    fn a_run_that_never_connected_has_every_reason() {
        let failure = judge(
            &run(Exit::Code(1), "", REFUSED_ERR),
            &[Figure::LatencyAverage],
        )
        .expect_err("refused");
        assert_eq!(
            failure.reasons,
            [
                "exit status 1",
                "'pgbench: error:' x 2",
                "no failed-transaction count",
                "no TPS",
                "no latency average",
                "no transactions"
            ]
        );
        assert!(failure.error_line().contains("Connection refused"));
    }

    #[test]
    fn a_hang_and_a_signal_say_so() {
        let hung = judge(
            &run(Exit::TimedOut(Duration::from_secs(61)), CLEAN, ""),
            &[],
        );
        assert_eq!(hung.unwrap_err().why(), "timed out after 61s");
        let killed = judge(&run(Exit::Signal(15), CLEAN, ""), &[]);
        assert_eq!(killed.unwrap_err().why(), "killed by signal 15");
    }

    #[test]
    fn zero_transactions_do_not_count() {
        let out = CLEAN.replace("actually processed: 7526", "actually processed: 0");
        let failure = judge(&run(Exit::Code(0), &out, ""), &[]).expect_err("nothing ran");
        assert_eq!(failure.why(), "no transactions");
    }
}
