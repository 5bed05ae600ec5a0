//! The naive handler as a process: a long-running Python (psycopg) or Node.js (node-postgres)
//! interpreter that, per line on its stdin, connects, runs `SELECT 1`, closes and answers one
//! line with its wall and CPU time. A process per cell, started outside the CPU quota (its
//! interpreter's start-up is not what is measured) and moved into it before it is invoked. Every
//! wait on it is bounded; a handler that does not answer is a failed invocation, then killed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::harness::Target;

/// How long the interpreter may take to import its driver, and one invocation to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(20);

/// The handler's language and driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// psycopg 3 (`psycopg[binary]`, its own libpq).
    Psycopg,
    /// node-postgres (`pg`), found through `NODE_PATH`.
    NodePostgres,
}

impl Driver {
    pub const ALL: [Driver; 2] = [Driver::Psycopg, Driver::NodePostgres];

    /// As `BENCH_LAMBDA_DRIVERS` names it.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Psycopg => "python",
            Driver::NodePostgres => "node",
        }
    }

    pub fn from_name(name: &str) -> Option<Driver> {
        Driver::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The interpreter and its script; the process's `comm`.
    fn command(self) -> (Command, &'static str) {
        match self {
            Driver::Psycopg => {
                let mut cmd = Command::new("python3");
                cmd.args(["-u", "-c", include_str!("handler.py")]);
                (cmd, "python3")
            }
            Driver::NodePostgres => {
                let mut cmd = Command::new("node");
                cmd.args(["-e", include_str!("handler.js")]);
                (cmd, "node")
            }
        }
    }
}

/// What the handler asks of TLS: `Default` says nothing (the driver's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ssl {
    Default,
    Disable,
    Require,
}

impl Ssl {
    fn env(self) -> &'static str {
        match self {
            Ssl::Default => "default",
            Ssl::Disable => "disable",
            Ssl::Require => "require",
        }
    }
}

/// One invocation as the handler timed it, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub wall_ms: f64,
    pub cpu_ms: f64,
}

/// A running handler, killed on drop.
pub struct Handler {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// `comm`, for a CPU clock that checks it reads this process.
    pub comm: &'static str,
    /// What it printed when ready: the driver's and the runtime's versions.
    pub versions: String,
}

impl Handler {
    /// Starts `driver`'s handler for `target` (libpq's variables, which node-postgres reads
    /// too; no other `PG*` variable of ours) with `ssl`, and waits until its driver is imported.
    pub fn start(driver: Driver, target: &Target, ssl: Ssl) -> Result<Handler, String> {
        let (mut cmd, comm) = driver.command();
        target.apply_libpq_env(&mut cmd);
        cmd.env("BENCH_SSL", ssl.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {} handler: {e}", driver.name()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut handler = Handler {
            child,
            stdin,
            lines,
            comm,
            versions: String::new(),
        };
        let ready = handler.next_line(READY_TIMEOUT)?;
        match ready.strip_prefix("ready ") {
            Some(versions) => handler.versions = versions.to_owned(),
            None => return Err(format!("the {} handler said {ready:?}", driver.name())),
        }
        Ok(handler)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One invocation: connect, `SELECT 1`, close. Err with the driver's message when it failed
    /// or the handler did not answer in time.
    pub fn invoke(&mut self) -> Result<Timed, String> {
        self.stdin
            .write_all(b"go\n")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("cannot invoke the handler: {e}"))?;
        let line = self.next_line(INVOKE_TIMEOUT)?;
        let mut words = line.split_whitespace();
        let mut number = || words.next()?.parse::<f64>().ok();
        match line.strip_prefix("ok ") {
            Some(_) => {
                let (_, wall_ms, cpu_ms) = (number(), number(), number());
                match (wall_ms, cpu_ms) {
                    (Some(wall_ms), Some(cpu_ms)) => Ok(Timed { wall_ms, cpu_ms }),
                    _ => Err(format!("the handler answered {line:?}")),
                }
            }
            None => Err(line),
        }
    }

    fn next_line(&mut self, timeout: Duration) -> Result<String, String> {
        let began = Instant::now();
        self.lines.recv_timeout(timeout).map_err(|_| {
            let status = self.child.try_wait().ok().flatten();
            format!(
                "the handler (pid {}) did not answer within {:?} (exit status: {status:?})",
                self.child.id(),
                began.elapsed()
            )
        })
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
