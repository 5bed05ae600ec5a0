//! One cell of the table, warm: a fresh handler of one driver, moved into the CPU group at one
//! share, invoked `warmup` times unmeasured and then `invocations` times, each after a pause (the
//! environment idle between invocations, so every invocation starts with the period's quota
//! whole). Per invocation the handler's own wall time; around the measured ones, the CPU time of
//! the handler and of pgwarm (utime + stime from /proc/PID/stat, all threads) and the periods
//! the group was throttled in.

use std::time::Duration;

use super::cgroup::CpuGroup;
use super::handler::{Driver, Handler, Timed};
use super::settings::{Settings, Way};
use crate::drivers::bench::cpu::{clock_ticks_per_second, CpuClock};
use crate::harness::Target;

/// Where a cell runs: its driver, way, memory size and round trip.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub driver: Driver,
    pub way: Way,
    pub memory_mb: u32,
    pub rtt_ms: f64,
}

/// A cell's figures.
#[derive(Clone, Debug)]
pub struct Cell {
    pub place: Place,
    /// The measured invocations that succeeded, as the handler timed them.
    pub timed: Vec<Timed>,
    /// Invocations that failed (warm-up ones included), and the first error.
    pub failed: u32,
    pub first_error: Option<String>,
    /// CPU per measured invocation in ms, from /proc; `None` when unreadable (or, for pgwarm,
    /// a direct way).
    pub handler_cpu_ms: Option<f64>,
    pub pgwarm_cpu_ms: Option<f64>,
    /// Throttled periods per measured invocation.
    pub throttled: Option<f64>,
    /// The driver's and runtime's versions, as the handler said them.
    pub versions: String,
}

impl Cell {
    /// The measured invocations' wall times, in ms.
    pub fn walls(&self) -> Vec<f64> {
        self.timed.iter().map(|t| t.wall_ms).collect()
    }

    /// Their CPU times by the handler's own clock, in ms.
    pub fn own_cpus(&self) -> Vec<f64> {
        self.timed.iter().map(|t| t.cpu_ms).collect()
    }
}

/// Runs one cell: the handler connects to `target` (the database or pgwarm); `pgwarm` is the
/// clock of the pgwarm process the way goes through, if it does.
pub fn run(
    place: Place,
    settings: &Settings,
    group: &CpuGroup,
    target: &Target,
    pgwarm: Option<&CpuClock>,
) -> Cell {
    let mut cell = Cell {
        place,
        timed: Vec::new(),
        failed: 0,
        first_error: None,
        handler_cpu_ms: None,
        pgwarm_cpu_ms: None,
        throttled: None,
        versions: String::new(),
    };
    let started = Handler::start(place.driver, target, place.way.ssl())
        .and_then(|h| group.add(h.pid()).map(|()| h));
    let mut handler = match started {
        Ok(h) => h,
        Err(e) => {
            cell.failed = settings.warmup + settings.invocations;
            cell.first_error = Some(e);
            return cell;
        }
    };
    cell.versions = handler.versions.clone();
    for _ in 0..settings.warmup {
        invoke(&mut handler, settings.gap, &mut cell);
    }
    cell.timed.clear();
    let clock = CpuClock::new(handler.comm, handler.pid()).ok();
    let handler_before = clock.as_ref().and_then(CpuClock::ticks);
    let pgwarm_before = pgwarm.and_then(CpuClock::ticks);
    let throttled_before = group.throttled();
    for _ in 0..settings.invocations {
        invoke(&mut handler, settings.gap, &mut cell);
    }
    let per_invocation = |before: Option<u64>, after: Option<u64>| {
        let ticks = after?.checked_sub(before?)?;
        let per_second = clock_ticks_per_second().ok()?;
        Some(ticks as f64 * 1000.0 / per_second as f64 / f64::from(settings.invocations))
    };
    cell.handler_cpu_ms = per_invocation(handler_before, clock.as_ref().and_then(CpuClock::ticks));
    if let Some(pgwarm) = pgwarm {
        cell.pgwarm_cpu_ms = per_invocation(pgwarm_before, pgwarm.ticks());
    }
    cell.throttled = throttled_before
        .zip(group.throttled())
        .and_then(|(b, a)| a.checked_sub(b))
        .map(|t| t as f64 / f64::from(settings.invocations));
    cell
}

fn invoke(handler: &mut Handler, gap: Duration, cell: &mut Cell) {
    std::thread::sleep(gap);
    match handler.invoke() {
        Ok(timed) => cell.timed.push(timed),
        Err(e) => {
            cell.failed += 1;
            cell.first_error.get_or_insert(e);
        }
    }
}
