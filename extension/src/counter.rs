//! A total that only grows, written by the tasks that count and read by the admin console and
//! the metrics: one relaxed atomic add per event, no lock. Gauges that go up and down stay plain
//! atomics where they are kept.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
