//! The machinery of a benchmark's runs, the same for both benchmarks: the servers' CPU clocks,
//! the per-run table written line by line as the runs go (a stopped benchmark leaves what it
//! measured), one timed pgbench run (the server's CPU read around it, its output saved, the
//! signal checked), and at the end whether every server is still running.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cpu::{clock_ticks_per_second, RunCpu, ServerClocks};
use super::pgbench::{Client, PgbenchRun};
use super::setup;
use super::stop::{self, Halt};
use crate::drivers::facts;

/// A benchmark's runs under way.
pub(crate) struct Runner {
    program: &'static str,
    clocks: ServerClocks,
    /// (name, pid) of every server measured.
    servers: Vec<(&'static str, u32)>,
    ticks_per_second: u64,
    table: File,
    table_path: PathBuf,
    started: Instant,
    load_before: String,
    /// Every run recorded so far counted as it should.
    all_counted: bool,
}

/// One pgbench run, and the CPU its server (if any) spent on it.
pub(crate) struct Timed {
    pub(crate) pgbench: PgbenchRun,
    pub(crate) cpu: RunCpu,
    /// The server measured: (name, pid).
    server: Option<(&'static str, u32)>,
}

/// What the report says of the runs as a whole.
pub(crate) struct Finished {
    pub(crate) seconds: u64,
    /// The clock ticks per second of the CPU times: the report says it.
    pub(crate) ticks_per_second: u64,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    /// Every run counted as it should, and every server was still running at the end.
    pub(crate) all_counted: bool,
}

impl Runner {
    /// Clocks for `servers`, given as (name, executable, pid), and the per-run table at
    /// `table_path` with its `header` line.
    pub(crate) fn start(
        program: &'static str,
        servers: &[(&'static str, PathBuf, u32)],
        table_path: PathBuf,
        header: &str,
    ) -> Result<Runner, Halt> {
        let ticks_per_second = clock_ticks_per_second()?;
        let listed: Vec<(&'static str, &Path, u32)> = servers
            .iter()
            .map(|(name, exe, pid)| (*name, exe.as_path(), *pid))
            .collect();
        let clocks = ServerClocks::new(&listed)?;
        eprintln!(
            "{program}: measuring CPU of {} (CLK_TCK {ticks_per_second})",
            clocks.describe()
        );
        let mut table =
            File::create(&table_path).map_err(|e| format!("{}: {e}", table_path.display()))?;
        writeln!(table, "{header}").map_err(|e| format!("{}: {e}", table_path.display()))?;
        Ok(Runner {
            program,
            clocks,
            servers: servers.iter().map(|(n, _, pid)| (*n, *pid)).collect(),
            ticks_per_second,
            table,
            table_path,
            started: Instant::now(),
            load_before: facts::load_average(),
            all_counted: true,
        })
    }

    pub(crate) fn load_before(&self) -> &str {
        &self.load_before
    }

    /// pgbench through `client` with `args` (`-T duration` among them), the CPU of the server
    /// named `server` (none for a direct connection) read just before and just after, its
    /// output saved to `file`. A run the signal ended counts nowhere: then `Err`.
    pub(crate) fn pgbench(
        &self,
        client: &Client,
        args: &[&str],
        duration: u32,
        server: Option<&'static str>,
        file: &Path,
    ) -> Result<Timed, Halt> {
        let clock = server.and_then(|name| self.clocks.get(name));
        let before = clock.map(|c| c.ticks());
        // -T bounds the load; the timeout only guards against a hung target.
        let timeout = Duration::from_secs(u64::from(duration) + 60);
        let pgbench = client.pgbench(args, timeout);
        let after = clock.map(|c| c.ticks());
        fs::write(file, pgbench.output()).map_err(|e| format!("{}: {e}", file.display()))?;
        stop::check()?;
        let count = pgbench.summary.processed;
        let cpu = RunCpu::new(before, after, count, self.ticks_per_second);
        let server = server.zip(clock.map(|c| c.pid()));
        Ok(Timed {
            pgbench,
            cpu,
            server,
        })
    }

    /// A run that ended: its `line` of the per-run table, and whether it `counted` as it should
    /// (a run that failed for a known limitation does).
    pub(crate) fn record(&mut self, line: &str, counted: bool) -> Result<(), Halt> {
        self.all_counted &= counted;
        writeln!(self.table, "{line}")
            .map_err(|e| Halt::Failed(format!("{}: {e}", self.table_path.display())))
    }

    /// The runs are over: how long they took, the load, and whether a server died meanwhile
    /// (said on stderr: its log in `logs` tells why).
    pub(crate) fn finish(self, logs: &Path) -> Finished {
        let gone = setup::gone(&self.servers);
        for name in &gone {
            eprintln!(
                "{}: {name} is no longer running at the end of the runs (log in {})",
                self.program,
                logs.display()
            );
        }
        Finished {
            seconds: self.started.elapsed().as_secs(),
            ticks_per_second: self.ticks_per_second,
            load_before: self.load_before,
            load_after: facts::load_average(),
            all_counted: self.all_counted && gone.is_empty(),
        }
    }
}

impl Finished {
    /// The report's line on the machine's load around the runs.
    pub(crate) fn load_line(&self) -> String {
        format!(
            "load average before: {}   after: {}",
            self.load_before, self.load_after
        )
    }
}

impl Timed {
    /// The progress line's note on the server's CPU per `unit` (txn, conn), and whether it could
    /// be read: a server whose CPU could not be read makes the benchmark fail.
    pub(crate) fn cpu_note(&self, unit: &str) -> (String, bool) {
        match (self.cpu, self.server) {
            (RunCpu::Measured { ticks, us_per_item }, Some((name, _))) => (
                format!(", {name} CPU {us_per_item:.4} us/{unit} ({ticks} ticks)"),
                true,
            ),
            (RunCpu::Unreadable, Some((name, pid))) => (
                format!(", {name} CPU FAILED (cannot read /proc/{pid}/stat as {name}'s)"),
                false,
            ),
            _ => (String::new(), true),
        }
    }
}
