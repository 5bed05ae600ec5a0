//! The guard a server connection is lent in. Whatever way a client's task ends, the guard's drop
//! closes the connection and frees its slot unless it was released clean, so no failure path
//! can leak a slot.

use super::Pool;
use crate::server::ServerConn;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tracing::debug;

/// A server connection lent to one client. [`Checkout::release`] returns it clean; dropping it
/// any other way closes the connection and frees its slot.
pub(crate) struct Checkout {
    /// `None` only while a slot is being filled, or after `release`.
    pub(super) conn: Option<Box<ServerConn>>,
    pub(super) pool: Arc<Pool>,
    released: bool,
}

impl Checkout {
    /// A slot counted in the pool's open connections, not filled yet.
    pub(super) fn empty(pool: &Arc<Pool>) -> Checkout {
        Checkout {
            conn: None,
            pool: Arc::clone(pool),
            released: false,
        }
    }

    /// Returns a connection that is idle (ReadyForQuery 'I', nothing in flight) to the pool.
    pub(crate) fn release(mut self) {
        self.released = true;
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(conn);
        }
    }
}

impl Deref for Checkout {
    type Target = ServerConn;
    #[allow(
        clippy::expect_used,
        reason = "a Checkout is handed out only once it holds one"
    )]
    fn deref(&self) -> &ServerConn {
        self.conn
            .as_ref()
            .expect("a Checkout handed to a client holds its connection")
    }
}

impl DerefMut for Checkout {
    #[allow(
        clippy::expect_used,
        reason = "a Checkout is handed out only once it holds one"
    )]
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.conn
            .as_mut()
            .expect("a Checkout handed to a client holds its connection")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let id = self.conn.take().map(|conn| {
            debug!(server = conn.id(), "closing server connection");
            let id = conn.id();
            conn.close();
            id
        });
        self.pool.release_slot(id);
    }
}
