//! CancelRequest mapping: each client is given a synthetic BackendKeyData, and a cancel that
//! names it is forwarded to whichever server connection that client holds at that moment.
//!
//! Real backend keys never reach clients: a client that kept one could cancel another client's
//! query after the connection changed hands.

use crate::server::{CancelInFlight, CancelTarget};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

/// The registry of live client sessions by synthetic process id.
pub(crate) struct CancelRegistry {
    sessions: Mutex<HashMap<i32, Arc<Handle>>>,
    next_pid: AtomicI32,
}

struct Handle {
    secret: i32,
    target: Mutex<Option<CancelTarget>>,
}

/// A session's entry; unregisters itself on drop.
pub(crate) struct CancelKey {
    pid: i32,
    handle: Arc<Handle>,
    registry: Arc<CancelRegistry>,
}

impl CancelRegistry {
    pub(crate) fn new() -> Arc<CancelRegistry> {
        Arc::new(CancelRegistry {
            sessions: Mutex::new(HashMap::new()),
            // Start somewhere unpredictable so keys differ across environments and restarts.
            next_pid: AtomicI32::new((rand::random::<i32>() & 0x3fff_ffff) | (1 << 22)),
        })
    }

    /// Registers a new session under `pid` (a real backend's, in session mode) when no other
    /// session has it, else under a synthetic one. Synthetic pids are at or above 2^22, Linux's
    /// highest `pid_max`, so they never collide with a real backend's.
    pub(crate) fn register_as(self: &Arc<CancelRegistry>, pid: Option<i32>) -> CancelKey {
        const SYNTHETIC_FLOOR: i32 = 1 << 22;
        let handle = Arc::new(Handle {
            secret: rand::random(),
            target: Mutex::new(None),
        });
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let pid = match pid {
            Some(pid) if pid > 0 && !sessions.contains_key(&pid) => pid,
            _ => loop {
                let pid = self.next_pid.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
                if pid >= SYNTHETIC_FLOOR && !sessions.contains_key(&pid) {
                    break pid;
                }
            },
        };
        sessions.insert(pid, Arc::clone(&handle));
        CancelKey {
            pid,
            handle,
            registry: Arc::clone(self),
        }
    }

    /// Where a cancel for (`pid`, `secret`) must go now, if that client holds a server
    /// connection. The cancel counts as in flight for that connection (under the same lock that
    /// unlinking takes, so a connection is never lent on while one is on its way) until the
    /// guard is dropped.
    pub(crate) fn lookup(&self, pid: i32, secret: i32) -> Option<(CancelTarget, CancelInFlight)> {
        let handle = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .cloned()?;
        if handle.secret != secret {
            return None;
        }
        let target = handle.target.lock().unwrap_or_else(|p| p.into_inner());
        target.as_ref().map(|t| (t.clone(), t.begin()))
    }
}

impl CancelKey {
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn secret(&self) -> i32 {
        self.handle.secret
    }

    /// Records the server connection the session is linked to (`None` when unlinked).
    pub(crate) fn set_target(&self, target: Option<CancelTarget>) {
        *self.handle.target.lock().unwrap_or_else(|p| p.into_inner()) = target;
    }
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pid: i32) -> CancelTarget {
        CancelTarget::new("127.0.0.1:5432".parse().unwrap(), pid, 1)
    }

    #[test]
    fn a_cancel_reaches_only_the_linked_server_with_the_right_secret() {
        let registry = CancelRegistry::new();
        let a = registry.register_as(None);
        let b = registry.register_as(None);
        assert_ne!(a.pid(), b.pid());
        let find = |pid, secret| registry.lookup(pid, secret).map(|(t, _)| t);
        assert_eq!(
            find(a.pid(), a.secret()),
            None,
            "unlinked: nothing to cancel"
        );
        let linked = target(100);
        a.set_target(Some(linked.clone()));
        assert_eq!(find(a.pid(), a.secret()), Some(target(100)));
        assert_eq!(find(a.pid(), a.secret().wrapping_add(1)), None);
        assert_eq!(find(b.pid(), b.secret()), None);

        let (_, in_flight) = registry.lookup(a.pid(), a.secret()).unwrap();
        assert_eq!(
            linked.in_flight_count(),
            1,
            "the connection knows a cancel is on its way"
        );
        drop(in_flight);
        assert_eq!(linked.in_flight_count(), 0);
        let pid = a.pid();
        let secret = a.secret();
        drop(a);
        assert!(registry.lookup(pid, secret).is_none());
    }

    #[test]
    fn a_real_pid_is_used_once_and_synthetic_ones_never_look_real() {
        let registry = CancelRegistry::new();
        let real = registry.register_as(Some(4242));
        assert_eq!(real.pid(), 4242);
        let again = registry.register_as(Some(4242));
        assert_ne!(again.pid(), 4242, "taken: a synthetic pid instead");
        for _ in 0..100 {
            assert!(registry.register_as(None).pid() >= 1 << 22);
        }
    }
}
