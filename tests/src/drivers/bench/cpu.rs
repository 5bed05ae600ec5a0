//! CPU time, two ways. A server that keeps running (pgwarm, PgBouncer, HAProxy): utime + stime
//! of the whole process (all its threads) from /proc/PID/stat, in clock ticks, read before and
//! after a run, from a process checked to still be the one named. pgbench, which exits at the
//! end of each run: its rusage, as this process's children's CPU time (getrusage
//! `RUSAGE_CHILDREN`, microseconds) grows by it once it is reaped.

use std::path::Path;
use std::time::Duration;

use crate::harness::proc_stat;

/// Clock ticks per second of /proc's CPU times (`sysconf(_SC_CLK_TCK)`, what `getconf CLK_TCK`
/// prints; 100 on Linux).
pub(crate) fn clock_ticks_per_second() -> Result<u64, String> {
    // SAFETY: sysconf reads a constant of the C library; it has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("sysconf(_SC_CLK_TCK) gave {ticks}"))
}

/// The CPU time (user + system) of this process's children that have exited and been waited
/// for, their own reaped children included.
pub(crate) fn children_cpu() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed value we own, and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The name /proc gives (`comm`) a process started from `executable`: its file name, cut to the
/// kernel's 15 bytes.
pub(crate) fn comm_of(executable: &Path) -> String {
    let name = executable
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// One running process whose CPU time a benchmark reads around each run.
#[derive(Clone, Debug)]
pub(crate) struct CpuClock {
    name: String,
    pid: u32,
}

impl CpuClock {
    /// The process `pid`, which must be running as `name` (its `comm`): a wrapper that forked
    /// rather than exec'ed would be measured instead of the server, and must be refused.
    pub(crate) fn new(name: &str, pid: u32) -> Result<CpuClock, String> {
        let clock = CpuClock {
            name: name.to_owned(),
            pid,
        };
        match proc_stat(pid) {
            Some(_) if clock.ticks().is_some() => Ok(clock),
            Some(stat) => Err(format!(
                "pid {pid} is {:?} (state {}), not a running {name}",
                stat.comm, stat.state
            )),
            None => Err(format!("there is no process {pid} (expected {name})")),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// utime + stime so far, in clock ticks; `None` when the process has exited or the pid is
    /// no longer `name`'s (a recycled pid is never measured by mistake).
    pub(crate) fn ticks(&self) -> Option<u64> {
        proc_stat(self.pid)
            .filter(|s| s.comm == self.name && s.state != 'Z')
            .map(|s| s.cpu_ticks)
    }
}

/// The CPU clocks of a benchmark's servers, by their names in its report.
#[derive(Clone, Debug)]
pub(crate) struct ServerClocks(Vec<(&'static str, CpuClock)>);

impl ServerClocks {
    /// A clock per server, given as (name, executable, pid): the process must be running
    /// under the executable's name.
    pub(crate) fn new(servers: &[(&'static str, &Path, u32)]) -> Result<ServerClocks, String> {
        let mut clocks = Vec::new();
        for &(name, executable, pid) in servers {
            let clock = CpuClock::new(&comm_of(executable), pid)
                .map_err(|e| format!("cannot find the {name} process: {e}"))?;
            clocks.push((name, clock));
        }
        Ok(ServerClocks(clocks))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&CpuClock> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, c)| c)
    }

    /// "pgwarm pid 12, pgbouncer pid 34".
    pub(crate) fn describe(&self) -> String {
        let which: Vec<String> = self
            .0
            .iter()
            .map(|(name, clock)| format!("{name} pid {}", clock.pid()))
            .collect();
        which.join(", ")
    }
}

/// Microseconds per item of `ticks` clock ticks spread over `count` items.
pub(crate) fn us_per(ticks: u64, ticks_per_second: u64, count: u64) -> f64 {
    ticks as f64 * 1e6 / ticks_per_second as f64 / count as f64
}

/// A server's CPU time over one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RunCpu {
    /// No server in the way (a direct connection): nothing to measure.
    NotMeasured,
    Measured {
        ticks: u64,
        us_per_item: f64,
    },
    /// The server's /proc/PID/stat could not be read as its own, before or after the run.
    Unreadable,
}

impl RunCpu {
    /// From a clock's readings around a run of `count` items (transactions, connections):
    /// `None` when there is no clock, `Some(None)` for a reading that failed.
    pub(crate) fn new(
        before: Option<Option<u64>>,
        after: Option<Option<u64>>,
        count: u64,
        ticks_per_second: u64,
    ) -> RunCpu {
        match (before, after) {
            (None, _) | (_, None) => RunCpu::NotMeasured,
            (Some(Some(b)), Some(Some(a))) if a >= b && count > 0 => RunCpu::Measured {
                ticks: a - b,
                us_per_item: us_per(a - b, ticks_per_second, count),
            },
            _ => RunCpu::Unreadable,
        }
    }

    pub(crate) fn us(self) -> Option<f64> {
        match self {
            RunCpu::Measured { us_per_item, .. } => Some(us_per_item),
            _ => None,
        }
    }

    /// The two columns of a runs table: ticks, and µs per item to 4 decimals ("FAILED" when
    /// unreadable, both empty when not measured).
    pub(crate) fn columns(self) -> (String, String) {
        match self {
            RunCpu::NotMeasured => (String::new(), String::new()),
            RunCpu::Measured { ticks, us_per_item } => {
                (ticks.to_string(), format!("{us_per_item:.4}"))
            }
            RunCpu::Unreadable => (String::new(), "FAILED".into()),
        }
    }

    /// Back from [`RunCpu::columns`].
    pub(crate) fn from_columns(ticks: &str, us: &str) -> Result<RunCpu, String> {
        match us {
            "" => Ok(RunCpu::NotMeasured),
            "FAILED" => Ok(RunCpu::Unreadable),
            us => Ok(RunCpu::Measured {
                ticks: ticks.parse().map_err(|_| format!("CPU ticks {ticks:?}"))?,
                us_per_item: us.parse().map_err(|_| format!("CPU µs {us:?}"))?,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_is_the_file_name_cut_to_15_bytes() {
        assert_eq!(comm_of(Path::new("/usr/sbin/pgbouncer")), "pgbouncer");
        assert_eq!(
            comm_of(Path::new("target/release/pgwarm-with-a-long-name")),
            "pgwarm-with-a-l"
        );
    }

    #[test]
    fn this_process_is_its_own_clock_and_not_another_name() {
        let me = std::process::id();
        let comm = proc_stat(me).expect("/proc/self/stat").comm;
        let clock = CpuClock::new(&comm, me).expect("this process, by its own name");
        // Burn some CPU so the clock moves by at least a tick (10 ms at 100 Hz).
        let before = clock.ticks().expect("readable");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while clock.ticks().expect("readable") == before && start.elapsed().as_secs() < 10 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(clock.ticks().expect("readable") > before, "{x}");
        let wrong = CpuClock::new("not-this-name", me).expect_err("the name must match");
        assert!(wrong.contains("not a running not-this-name"), "{wrong}");
    }

    #[test]
    fn a_reaped_child_adds_its_cpu_time() {
        let before = children_cpu();
        // A shell that spins for about 50 ms of CPU.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh");
        assert!(status.success());
        let used = children_cpu() - before;
        assert!(used > Duration::ZERO, "{used:?}");
    }

    #[test]
    fn a_runs_cpu_from_the_readings_around_it() {
        let measured = RunCpu::new(Some(Some(1000)), Some(Some(1139)), 27_769, 100);
        assert_eq!(measured.columns(), ("139".into(), "50.0558".into()));
        assert_eq!(
            RunCpu::from_columns("139", "50.0558"),
            Ok(RunCpu::Measured {
                ticks: 139,
                us_per_item: 50.0558
            })
        );
        let gone = RunCpu::new(Some(Some(1000)), Some(None), 27_769, 100);
        assert_eq!(gone, RunCpu::Unreadable);
        assert_eq!(
            RunCpu::from_columns("", &gone.columns().1),
            Ok(RunCpu::Unreadable)
        );
        assert_eq!(RunCpu::new(None, None, 10, 100), RunCpu::NotMeasured);
        assert_eq!(
            RunCpu::NotMeasured.columns(),
            (String::new(), String::new())
        );
        assert_eq!(RunCpu::NotMeasured.us(), None);
    }

    #[test]
    fn microseconds_per_transaction() {
        // 139 ticks at 100 Hz over 27,769 transactions: 50.06 µs each.
        assert!((us_per(139, 100, 27_769) - 50.0558).abs() < 1e-4);
        assert_eq!(clock_ticks_per_second(), Ok(100));
    }
}
