//! `PAUSE` and `RESUME` from the admin console: new transactions queue even when a
//! connection is idle, those under way finish, and `RESUME` serves the queue in order.

use super::slots::Grant;
use super::Pool;

impl Pool {
    /// `PAUSE`: new transactions wait for `resume` (within their `PGWARM_QUERY_WAIT_TIMEOUT`);
    /// returns once those under way have given their connections back.
    pub(crate) async fn pause(&self) {
        self.lock().paused = true;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let state = self.lock();
                if state.lent.is_empty() || !state.paused {
                    return;
                }
            }
            drained.await;
        }
    }

    /// `RESUME`: the clients that queued meanwhile get connections, in order.
    pub(crate) fn resume(&self) {
        let mut state = self.lock();
        state.paused = false;
        self.drained.notify_waiters();
        while !state.waiters.is_empty() {
            let grant = match state.idle.pop() {
                Some(conn) => Grant::Conn(conn),
                None if state.open < self.settings.size => {
                    state.open += 1;
                    Grant::Slot
                }
                None => break,
            };
            // Nobody took it: nobody left who can use it.
            match state.waiters.hand(grant) {
                Some(Grant::Conn(conn)) => state.idle.push(conn),
                Some(Grant::Slot) => state.open -= 1,
                None => continue,
            }
            break;
        }
    }
}
