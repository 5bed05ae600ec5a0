//! The accept loop: one task per client, the `PGWARM_MAX_CLIENT_CONN` count, and the stop
//! signal.

use crate::client::{self, Shared};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Counts live client connections; decrements when a client task ends, however it ends.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts clients until `stop` completes.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, stop: impl Future<Output = ()>) {
    let clients = Arc::new(AtomicUsize::new(0));
    let max = shared.settings.max_client_conn;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
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
                tokio::spawn(async move {
                    let _slot = slot;
                    client::serve(shared, stream, peer, active > max).await;
                });
            }
            () = &mut stop => {
                info!("stopping: no new clients are accepted");
                return;
            }
        }
    }
}
