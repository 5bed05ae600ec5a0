//! A network with a round-trip time, made in user space: a TCP relay on 127.0.0.1 that holds
//! every chunk it reads for half the round trip before passing it on, in each direction, and
//! waits one whole round trip before it connects upstream (the TCP handshake a real network
//! would add). This machine's kernel has no `netem` queueing discipline, so `tc` cannot do it.
//!
//! Threads and `std::thread::sleep` rather than tokio, whose timers round up to the millisecond:
//! a 1 ms round trip would come out as 2. Chunks keep their order; bandwidth is not limited.
//! Good enough for what the benchmarks ask: how many round trips a login and a query cost at a
//! given distance to the database. Meant for a few connections at a time (four threads each).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// The relay; it stops accepting when dropped (connections already made run to their end).
pub struct DelayRelay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayRelay {
    /// Listens on a free port of 127.0.0.1 and relays to `upstream` with `rtt` between them.
    pub fn start(upstream: SocketAddr, rtt: Duration) -> DelayRelay {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        DelayRelay::start_at(listen, upstream, rtt).expect("bind the delay relay")
    }

    /// Listens on `listen` (another loopback address, say, standing for another machine with
    /// the same port) and relays to `upstream` with `rtt` between them.
    pub fn start_at(
        listen: SocketAddr,
        upstream: SocketAddr,
        rtt: Duration,
    ) -> std::io::Result<DelayRelay> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr().expect("the relay's address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(client) = client {
                    thread::spawn(move || relay(client, upstream, rtt));
                }
            }
        });
        Ok(DelayRelay { addr, stop })
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn relay(client: TcpStream, upstream: SocketAddr, rtt: Duration) {
    thread::sleep(rtt);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_out), Ok(server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let one_way = rtt / 2;
    let up = thread::spawn(move || pipe(client, server_out, one_way));
    pipe(server, client_out, one_way);
    let _ = up.join();
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        for (due, chunk) in rx {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0
            || tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}
