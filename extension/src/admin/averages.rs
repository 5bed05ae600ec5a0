//! `SHOW STATS`' `avg_*` columns, as PgBouncer computes them: rates and mean times over the
//! last complete period (`PGWARM_STATS_PERIOD`, PgBouncer's `stats_period`), from two snapshots
//! of the totals. Until one period has passed they are zero, as in PgBouncer.

use crate::client::traffic::Traffic;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The totals at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    pub xacts: u64,
    pub queries: u64,
    pub received: u64,
    pub sent: u64,
    pub xact_us: u64,
    pub query_us: u64,
    pub wait_us: u64,
    pub waits: u64,
}

impl Totals {
    pub(super) fn of(t: &Traffic) -> Totals {
        Totals {
            xacts: t.xacts.get(),
            queries: t.queries.get(),
            received: t.received.get(),
            sent: t.sent.get(),
            xact_us: t.xact_us.get(),
            query_us: t.query_us.get(),
            wait_us: t.wait_us.get(),
            waits: t.waits.get(),
        }
    }
}

/// Per second for counts and bytes; microseconds per transaction, query or wait for times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Rates {
    pub xact_count: u64,
    pub query_count: u64,
    pub recv: u64,
    pub sent: u64,
    pub xact_time: u64,
    pub query_time: u64,
    pub wait_time: u64,
}

impl Rates {
    fn between(old: &Totals, new: &Totals, period: Duration) -> Rates {
        let secs = period.as_secs_f64().max(0.001);
        let per_sec = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
        let mean = |time: (u64, u64), count: (u64, u64)| {
            let n = count.1.saturating_sub(count.0);
            match n {
                0 => 0,
                n => time.1.saturating_sub(time.0) / n,
            }
        };
        Rates {
            xact_count: per_sec(old.xacts, new.xacts),
            query_count: per_sec(old.queries, new.queries),
            recv: per_sec(old.received, new.received),
            sent: per_sec(old.sent, new.sent),
            xact_time: mean((old.xact_us, new.xact_us), (old.xacts, new.xacts)),
            query_time: mean((old.query_us, new.query_us), (old.queries, new.queries)),
            wait_time: mean((old.wait_us, new.wait_us), (old.waits, new.waits)),
        }
    }
}

/// The snapshot at the start of the current period, and the rates of the last complete one.
#[derive(Debug)]
pub(super) struct Averages {
    period: Duration,
    state: Mutex<(Instant, Totals, Rates)>,
}

impl Averages {
    pub(super) fn new(period: Duration, now: Totals) -> Averages {
        Averages {
            period,
            state: Mutex::new((Instant::now(), now, Rates::default())),
        }
    }

    pub(super) fn period(&self) -> Duration {
        self.period
    }

    /// Closes the current period with `now`'s totals.
    pub(super) fn tick(&self, now: Totals) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (began, old, _) = *state;
        *state = (
            Instant::now(),
            now,
            Rates::between(&old, &now, began.elapsed()),
        );
    }

    pub(super) fn last(&self) -> Rates {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_times_per_event() {
        let old = Totals::default();
        let new = Totals {
            xacts: 30,
            queries: 60,
            received: 3000,
            sent: 6000,
            xact_us: 30_000,
            query_us: 12_000,
            wait_us: 500,
            waits: 5,
        };
        let r = Rates::between(&old, &new, Duration::from_secs(2));
        assert_eq!(
            r,
            Rates {
                xact_count: 15,
                query_count: 30,
                recv: 1500,
                sent: 3000,
                xact_time: 1000,
                query_time: 200,
                wait_time: 100,
            }
        );
        assert_eq!(
            Rates::between(&new, &new, Duration::from_secs(2)),
            Rates::default()
        );
    }
}
