//! The accept loop: one task per client, the `PGWARM_MAX_CLIENT_CONN` count, and the stop:
//! no new clients, every session told to end, and a bounded wait for them to close their
//! server connections.

use crate::admin::{self, Console};
use crate::client::{self, Port, SessionContext};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Counts live client connections; decrements when a client task ends, however it ends.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sockets clients connect to: `PGWARM_LISTEN`, and `PGWARM_READER_LISTEN` when set.
pub(crate) struct Listeners {
    pub(crate) writer: TcpListener,
    pub(crate) reader: Option<TcpListener>,
}

/// The next client of `listener`; never, when there is none.
async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts clients on both ports until `stop` completes; returns the client tasks, which keep
/// running.
pub(crate) async fn run(
    listeners: Listeners,
    shared: Arc<SessionContext>,
    console: Arc<Console>,
    stop: impl Future<Output = ()>,
) -> TaskTracker {
    let clients = Arc::clone(&shared.connections);
    let tasks = TaskTracker::new();
    let max = shared.settings.max_client_conn;
    tokio::pin!(stop);
    loop {
        let (accepted, port) = tokio::select! {
            accepted = listeners.writer.accept() => (accepted, Port::Writer),
            accepted = accept(listeners.reader.as_ref()) => (accepted, Port::Reader),
            () = &mut stop => {
                info!("stopping: no new clients are accepted");
                return tasks;
            }
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let active = clients.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = ClientSlot(Arc::clone(&clients));
        let shared = Arc::clone(&shared);
        let console = Arc::clone(&console);
        tasks.spawn(async move {
            let _slot = slot;
            if let Some(admin) = client::serve(shared, stream, peer, active > max, port).await {
                admin::serve(console, admin).await;
            }
        });
    }
}

/// Ends every session (clients get FATAL 57P01, their server connections Terminate), waits up to
/// `budget` for them, then closes the idle server connections. Returns whether every session
/// ended in time; those that did not are cut off when the process exits.
pub(crate) async fn stop(shared: &SessionContext, sessions: TaskTracker, budget: Duration) -> bool {
    shared.shutdown.cancel();
    sessions.close();
    let open = sessions.len();
    let in_time = tokio::time::timeout(budget, sessions.wait()).await.is_ok();
    for pool in shared.pools() {
        pool.close();
    }
    if in_time {
        info!(sessions = open, "every client session ended");
    } else {
        warn!(
            sessions = sessions.len(),
            "client sessions still open at the shutdown deadline"
        );
    }
    in_time
}
