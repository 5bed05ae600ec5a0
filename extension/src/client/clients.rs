//! Every logged-in client, as the admin console sees it (`SHOW CLIENTS`, `SHOW POOLS`' `cl_*`
//! columns and `maxwait`) and reaches it (`KILL_CLIENT`).
//!
//! A session owns its entry through a [`ClientHandle`], whose drop removes it. The session
//! writes its state with relaxed atomic stores when it starts waiting for a server connection
//! and when it links and unlinks one, reading no clock of its own (the wait's start is the one
//! it measures the wait with); readers take a consistent-enough snapshot.

use super::Port;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// What a client is doing, in PgBouncer's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientState {
    /// Idle between transactions (`cl_active` in PgBouncer counts these too).
    Idle = 0,
    /// Linked to a server connection.
    Active = 1,
    /// Has sent a query and waits for a server connection (`cl_waiting`).
    Waiting = 2,
}

impl ClientState {
    fn from_u8(v: u8) -> ClientState {
        match v {
            1 => ClientState::Active,
            2 => ClientState::Waiting,
            _ => ClientState::Idle,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Active => "active",
            ClientState::Waiting => "waiting",
        }
    }
}

/// Who a client is; fixed at login.
#[derive(Debug, Clone)]
pub(crate) struct ClientIdentity {
    /// The pid the client was told (its `BackendKeyData`), the id `KILL_CLIENT` takes.
    pub(crate) id: i32,
    pub(crate) user: String,
    pub(crate) database: String,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) application_name: String,
    /// The port it came in on, whose pool lends its server connections.
    pub(crate) port: Port,
}

#[derive(Debug)]
struct Entry {
    who: ClientIdentity,
    connected: SystemTime,
    state: AtomicU8,
    /// Microseconds after the list's epoch of the latest request for a server connection (the
    /// login, until there is one).
    since_us: AtomicU64,
    /// The linked server connection's id; 0 when none.
    server: AtomicU64,
    kill: CancellationToken,
    /// Why it keeps its server connection between transactions, when it does.
    pinned: Mutex<Option<String>>,
}

/// One client at one moment.
#[derive(Debug, Clone)]
pub(crate) struct ClientRow {
    pub(crate) who: ClientIdentity,
    pub(crate) state: ClientState,
    pub(crate) connected: SystemTime,
    /// The latest request for a server connection (PgBouncer's `request_time`).
    pub(crate) since: SystemTime,
    /// How long it has waited, when waiting.
    pub(crate) waited: Duration,
    pub(crate) server: Option<u64>,
    /// The session state that pins it to its server connection.
    pub(crate) pinned: Option<String>,
}

#[derive(Debug)]
pub(crate) struct ClientList {
    epoch: Instant,
    entries: Mutex<HashMap<i32, Arc<Entry>>>,
}

impl Default for ClientList {
    fn default() -> ClientList {
        ClientList {
            epoch: Instant::now(),
            entries: Mutex::default(),
        }
    }
}

impl ClientList {
    /// Adds a client; it stays listed until the handle is dropped. Its kill token is a child of
    /// `stop` (pgwarm's shutdown), so a session watches one token for both.
    pub(crate) fn register(
        self: &Arc<ClientList>,
        who: ClientIdentity,
        stop: &CancellationToken,
    ) -> ClientHandle {
        let entry = Arc::new(Entry {
            who,
            connected: SystemTime::now(),
            state: AtomicU8::new(ClientState::Idle as u8),
            since_us: AtomicU64::new(self.now_us()),
            server: AtomicU64::new(0),
            kill: stop.child_token(),
            pinned: Mutex::new(None),
        });
        self.lock().insert(entry.who.id, Arc::clone(&entry));
        ClientHandle {
            list: Arc::clone(self),
            entry,
        }
    }

    pub(crate) fn rows(&self) -> Vec<ClientRow> {
        let now_us = self.now_us();
        let now = SystemTime::now();
        let mut rows: Vec<ClientRow> = self
            .lock()
            .values()
            .map(|e| {
                let state = ClientState::from_u8(e.state.load(Ordering::Relaxed));
                let ago = Duration::from_micros(
                    now_us.saturating_sub(e.since_us.load(Ordering::Relaxed)),
                );
                ClientRow {
                    who: e.who.clone(),
                    state,
                    connected: e.connected,
                    since: now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH),
                    waited: match state {
                        ClientState::Waiting => ago,
                        _ => Duration::ZERO,
                    },
                    server: Some(e.server.load(Ordering::Relaxed)).filter(|s| *s != 0),
                    pinned: e.pinned.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.who.id);
        rows
    }

    /// Ends a client's session (it gets FATAL 57P01). Returns whether it was there.
    pub(crate) fn kill(&self, id: i32) -> bool {
        match self.lock().get(&id) {
            Some(entry) => {
                entry.kill.cancel();
                true
            }
            None => false,
        }
    }

    /// Ends every client's session; returns how many there were.
    pub(crate) fn kill_all(&self) -> usize {
        let entries = self.lock();
        for entry in entries.values() {
            entry.kill.cancel();
        }
        entries.len()
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A session's entry in the list.
#[derive(Debug)]
pub(crate) struct ClientHandle {
    list: Arc<ClientList>,
    entry: Arc<Entry>,
}

impl ClientHandle {
    /// The client asked for a server connection at `since` and waits for one.
    pub(crate) fn waiting(&self, since: Instant) {
        let us = since.saturating_duration_since(self.list.epoch).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX);
        self.entry.since_us.store(us, Ordering::Relaxed);
        self.set(ClientState::Waiting, 0);
    }

    /// The client holds server connection `server`.
    pub(crate) fn linked(&self, server: u64) {
        self.set(ClientState::Active, server);
    }

    /// The client keeps its server connection between transactions for `why` (or no longer).
    pub(crate) fn pinned(&self, why: Option<&str>) {
        *self.entry.pinned.lock().unwrap_or_else(|p| p.into_inner()) = why.map(str::to_owned);
    }

    /// The client holds no server connection and waits for none.
    pub(crate) fn idle(&self) {
        self.set(ClientState::Idle, 0);
    }

    fn set(&self, state: ClientState, server: u64) {
        self.entry.state.store(state as u8, Ordering::Relaxed);
        self.entry.server.store(server, Ordering::Relaxed);
    }

    /// Cancelled by `KILL_CLIENT`, `KILL` of its database, or pgwarm's shutdown.
    pub(crate) fn killed(&self) -> CancellationToken {
        self.entry.kill.clone()
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.list.lock().remove(&self.entry.who.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: i32) -> ClientIdentity {
        ClientIdentity {
            port: Port::Writer,
            id,
            user: "app".into(),
            database: "db".into(),
            addr: "127.0.0.1:4000".parse().unwrap(),
            tls: false,
            application_name: String::new(),
        }
    }

    #[test]
    fn a_client_is_listed_while_its_handle_lives() {
        let list = Arc::new(ClientList::default());
        let stop = CancellationToken::new();
        let a = list.register(who(7), &stop);
        let b = list.register(who(9), &stop);
        b.waiting(Instant::now());
        a.linked(3);
        let rows = list.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].state, rows[0].server),
            (ClientState::Active, Some(3))
        );
        assert_eq!(rows[1].state, ClientState::Waiting);
        assert!(list.kill(9));
        assert!(b.killed().is_cancelled());
        assert!(!a.killed().is_cancelled());
        drop(b);
        assert_eq!(list.rows().len(), 1);
        assert!(!list.kill(9));
        stop.cancel();
        assert!(a.killed().is_cancelled(), "a shutdown ends every client");
    }
}
