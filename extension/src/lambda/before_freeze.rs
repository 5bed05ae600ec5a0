//! Between the end of an invocation and the freeze, when what pgwarm holds is wanted elsewhere.
//!
//! With room in the database, pgwarm asks for its next event as soon as INVOKE arrives, and the
//! environment is frozen with its connections warm: nothing is added to the invocation. When the
//! database is tight (`pool::headroom`), a connection kept through a freeze is one an invocation
//! elsewhere waits for; so pgwarm holds its next-event request until the runtime has finished
//! (the Telemetry API's `platform.runtimeDone`), ends the transactions the invocation left open,
//! closes its idle server connections, and only then asks. Behind a shared pooler
//! (`PGWARM_UPSTREAM_POOLER=on`) its connections cost the pooler little, but a transaction a
//! handler leaves open holds one of the pooler's few server connections for the whole fleet
//! while the environment sleeps: there pgwarm always waits for the runtime's end, to end such
//! transactions before the freeze, and keeps its idle connections. Holding costs nothing while
//! the runtime works; after it, the function is billed for the wait (Lambda's
//! `PostRuntimeExtensionsDuration`): the telemetry buffering, at most 25 ms, and the closing.
//!
//! Until a login has read the connection use, pgwarm cannot know whether the database is tight:
//! it also waits after an environment's first invocation when that reading is still to come
//! (its handler normally makes the first login), and gives its connections back if that login
//! found the database tight.
//!
//! The hold ends at the latest a little before the invocation's deadline. An invocation that
//! ends in its last moments may see its runtimeDone come after that; two in a row that do not
//! come are taken as telemetry that does not work here: pgwarm stops holding for the
//! environment's life and relies on the short `idle_session_timeout` its logins ask for while
//! the database is tight. In session mode there is nothing to wait for: a client holds its
//! connection as long as it is connected.

use super::telemetry::RuntimeDone;
use crate::admin::Lifecycle;
use crate::client::SessionContext;
use crate::config::{PoolMode, Upstream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The hold ends at the latest this long before the invocation's deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// How long the transactions an invocation left open get to be rolled back before the idle
/// connections are closed; a connection whose rollback takes longer stays open through the
/// freeze, and the database's idle timeout closes it.
const ROLLBACK_WAIT: Duration = Duration::from_millis(100);

/// runtimeDone events missing in a row before pgwarm stops waiting for them.
const MISSES_TO_GIVE_UP: u32 = 2;

pub(crate) struct BeforeFreeze {
    runtime_done: RuntimeDone,
    /// runtimeDone events that did not come in time, in a row.
    missed: AtomicU32,
}

impl BeforeFreeze {
    pub(crate) fn new(runtime_done: RuntimeDone) -> BeforeFreeze {
        BeforeFreeze {
            runtime_done,
            missed: AtomicU32::new(0),
        }
    }

    /// Returns when pgwarm may ask for its next event after INVOKE `request_id`: at once with
    /// room in the database; when it is tight, once the runtime has finished and the
    /// connections are given back.
    pub(crate) async fn wait(
        &self,
        request_id: &str,
        deadline: Instant,
        shared: &SessionContext,
        lifecycle: &Lifecycle,
    ) {
        // Until a login has read the connection use, the database may be tight: an
        // environment's first invocation, whose handler normally makes that login, is waited
        // for too. Not later ones: a function that does not use the database would pay it every
        // time, for nothing to give back.
        let first = lifecycle.invocations.get() <= 1;
        let any_tight = shared.pools().any(|pool| pool.is_tight());
        let may_be_tight = any_tight || (first && shared.pool.headroom_unknown());
        let shared_pooler = shared.settings.upstream == Upstream::Pooler;
        let given_up = self.missed.load(Ordering::Relaxed) >= MISSES_TO_GIVE_UP;
        if !(may_be_tight || shared_pooler)
            || given_up
            || shared.settings.pool_mode == PoolMode::Session
        {
            return;
        }
        let mut done = self.runtime_done.clone();
        let until = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
        let heard = tokio::time::timeout_at(until, async {
            done.wait_for(|id| id.as_deref() == Some(request_id))
                .await
                .is_ok()
        })
        .await
        .unwrap_or(false);
        // Heard or not, pgwarm asks for its next event soon: the next INVOKE may reach the
        // handler before pgwarm reads it, and that handler's waits must not be bounded by this
        // invocation's deadline (a margin away when runtimeDone was missed: a login would be
        // refused at once).
        shared.invocation_deadline_over();
        if !heard {
            lifecycle.runtime_done_missed.add(1);
            let missed = self.missed.fetch_add(1, Ordering::Relaxed) + 1;
            match missed >= MISSES_TO_GIVE_UP {
                true => warn!(
                    missed,
                    "no platform.runtimeDone before the invocation's deadline, again: pgwarm no \
                     longer waits for it, and relies on the database closing idle connections"
                ),
                false => warn!("no platform.runtimeDone before the invocation's deadline"),
            }
            return;
        }
        self.missed.store(0, Ordering::Relaxed);
        let heard_at = Instant::now();
        shared.invocation_ends.ended(heard_at);
        let reader_back = async {
            if let Some(reader) = &shared.reader {
                reader.lent_back(ROLLBACK_WAIT).await;
            }
        };
        tokio::join!(shared.pool.lent_back(ROLLBACK_WAIT), reader_back);
        // Each pool's database (the writer's, the replicas') is tight or not on its own.
        let tight_pools: Vec<_> = shared.pools().filter(|pool| pool.is_tight()).collect();
        let tight = !tight_pools.is_empty();
        let closed: usize = tight_pools.iter().map(|pool| pool.close_idle()).sum();
        let took = heard_at.elapsed();
        lifecycle.holds.add(1);
        lifecycle
            .held_us
            .add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        lifecycle.given_back.add(closed as u64);
        match tight {
            true => info!(
                closed,
                took_us = took.as_micros() as u64,
                "the database is tight: gave its connections back before the freeze"
            ),
            false => debug!(
                took_us = took.as_micros() as u64,
                "ended what the invocation left open before the freeze"
            ),
        }
    }
}
