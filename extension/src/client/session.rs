//! One logged-in client: the loop that reacts to the relay's events — borrow a server
//! connection when the client starts a transaction, give it back when the transaction ends,
//! replay a batch the server died before answering, enforce the idle-in-transaction timeout —
//! and, when the client leaves, what the server connection needs before it is lent again
//! (`server::Cleanup`: ROLLBACK, the session-mode reset query).

use super::cancel::CancelKey;
use super::clients::ClientHandle;
use super::invocation_end::{leaked_error, EndWatch};
use super::relay::{Event, Relay, Rules};
use super::statements::Resolution;
use super::stop::Stop;
use super::traffic::Traffic;
use super::SessionContext;
use crate::config::{PoolMode, Upstream};
use crate::pool::{Checkout, Pool};
use crate::protocol::backend::TxStatus;
use crate::protocol::{sqlstate, PgError};
use crate::server::{self, Cleanup, ServerError, SessionSettings};
use crate::stream::Stream;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Sleep;
use tracing::{debug, info, warn};

/// A batch is replayed at most this many times: enough for a pool full of connections that a
/// database restart killed, not so many that a batch which itself kills backends loops.
const MAX_REPLAYS: u32 = 3;

/// How long pgwarm tries to deliver a final error to a client that is being closed.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a session ended.
enum End {
    ClientGone,
    /// The server connection died and the client has the server's own FATAL queued: send it,
    /// then close.
    ServerEnded,
    /// Send this to the client, then close it.
    Error(PgError),
    /// pgwarm is stopping: tell the client, and close the server connection at once with
    /// Terminate (the database rolls back whatever was open) rather than clean it for reuse.
    Shutdown,
}

/// What becomes of the server connection at the end of a transaction.
enum AfterTransaction {
    /// Back to the pool.
    Share,
    /// The client keeps it for its session state.
    Keep,
    /// The client's session state cannot be kept: the client is told why and closed.
    End(PgError),
}

pub(crate) struct Session<'a> {
    shared: &'a SessionContext,
    /// The pool of the port the client came in on.
    pool: Arc<Pool>,
    client: Stream,
    relay: Relay,
    server: Option<Checkout>,
    key: CancelKey,
    /// The session settings this client expects on every server connection it uses.
    settings: SessionSettings,
    /// Those of its startup packet: where `RESET` and `DISCARD ALL` take it back to.
    startup: SessionSettings,
    /// Its entry in the admin console's list of clients.
    listed: ClientHandle,
    /// Whether a transaction it sits idle in outlived its Lambda invocation.
    invocation_end: EndWatch,
    /// The session state that keeps its server connection between transactions, if any.
    pinned: Option<String>,
    /// The client ran `LOAD`: the library stays in that backend until it ends, so the client
    /// keeps it until it leaves.
    loaded: bool,
    /// The timer of its waits for a server connection, one for all of them (`checkout_with`).
    wait_timer: Pin<Box<Sleep>>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        shared: &'a SessionContext,
        pool: Arc<Pool>,
        client: Stream,
        key: CancelKey,
        settings: SessionSettings,
        listed: ClientHandle,
    ) -> Session<'a> {
        let mut relay = Relay::new(
            Rules::of(&shared.settings),
            Arc::clone(&shared.known_statements),
            key.pid(),
            Arc::clone(&shared.traffic),
        );
        relay.set_resolution(Resolution::of(&settings));
        Session {
            shared,
            pool,
            client,
            relay,
            server: None,
            key,
            startup: settings.clone(),
            settings,
            listed,
            invocation_end: shared.invocation_ends.watch(),
            pinned: None,
            loaded: false,
            wait_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Runs the session to its end. `server`: the connection taken at login (session mode),
    /// linked for the client's whole life.
    pub(crate) async fn run(mut self, server: Option<Checkout>) {
        // One token for both pgwarm's shutdown and a KILL, polled only when it fired.
        let stop = Stop::new(self.listed.killed());
        let end = tokio::select! {
            biased;
            () = stop => match self.shared.shutdown.is_cancelled() {
                true => End::Shutdown,
                false => End::Error(PgError::admin_shutdown("terminating connection due to administrator command (pgwarm admin console)",
                )),
            },
            end = async {
                if let Some(server) = server {
                    if let Err(error) = self.link(server).await {
                        return End::Error(error);
                    }
                }
                self.relay_loop().await
            } => end,
        };
        self.finish(end).await;
    }

    async fn relay_loop(&mut self) -> End {
        let mut replays = 0;
        loop {
            match self.next_event().await {
                Event::NeedServer => match self.checkout().await {
                    Ok(true) => {}
                    Ok(false) => return End::ClientGone,
                    Err(error) => return End::Error(error),
                },
                Event::Release => {
                    if let Some(end) = self.release().await {
                        return end;
                    }
                    replays = 0;
                }
                Event::ClientGone => return End::ClientGone,
                Event::CloseClient(error) => return End::Error(error),
                Event::ServerFailed { replayable, reason } => {
                    // A pinned client's state was on the connection that failed: another would
                    // not have it.
                    if replayable && replays < MAX_REPLAYS && self.pinned.is_none() {
                        replays += 1;
                        info!(client = self.key.pid(), %reason, "server connection failed before answering; replaying on another");
                        self.relay.rewind();
                        self.drop_server();
                    } else {
                        info!(client = self.key.pid(), %reason, "server connection failed during a transaction");
                        self.drop_server();
                        let server_said = self.relay.pass_on_fatal();
                        let _ = self.relay.unlink();
                        if server_said {
                            return End::ServerEnded;
                        }
                        return End::Error(PgError::connection_failure(format!(
                            "server connection lost: {reason}"
                        )));
                    }
                }
                Event::IdleInTransaction => {}
            }
        }
    }

    /// The relay's next event; while the client sits idle inside a transaction, the
    /// idle-in-transaction timeout and the end of its Lambda invocation race it.
    async fn next_event(&mut self) -> Event {
        loop {
            let idle = self.relay.idle_in_transaction();
            self.invocation_end.idle_in_transaction(idle);
            let Session {
                relay,
                client,
                server,
                invocation_end,
                ..
            } = self;
            let mut server = server.as_mut().map(|s| s.link_parts());
            let pump = poll_fn(|cx| {
                let link = server
                    .as_mut()
                    .map(|(stream, set)| (&mut **stream, &mut **set));
                relay.poll_pump(cx, client, link, false)
            });
            let event = if !idle {
                pump.await
            } else {
                let limit = self.shared.settings.idle_transaction_timeout;
                tokio::select! {
                    event = pump => event,
                    () = tokio::time::sleep(limit.unwrap_or(Duration::MAX)), if limit.is_some() => {
                        if self.relay.idle_in_transaction() {
                            return Event::CloseClient(idle_timeout_error(limit.unwrap_or_default()));
                        }
                        continue;
                    }
                    () = invocation_end.leaked() => {
                        if self.relay.idle_in_transaction() {
                            self.shared.invocation_ends.leaked.add(1);
                            return Event::CloseClient(leaked_error());
                        }
                        continue;
                    }
                }
            };
            if !matches!(event, Event::IdleInTransaction) {
                return event;
            }
        }
    }

    /// Borrows a server connection for the client, still reading the client meanwhile so that a
    /// client that leaves stops waiting. Ok(false): the client left.
    async fn checkout(&mut self) -> Result<bool, PgError> {
        let pool = Arc::clone(&self.pool);
        let began = std::time::Instant::now();
        self.listed.waiting(began);
        let traffic = Arc::clone(&self.shared.traffic);
        traffic.wait_begins();
        // Ends the wait however this future ends: a connection, an error, the client gone.
        let _waiting = WaitEnds(&traffic, began);
        let result = {
            let Session {
                relay,
                client,
                wait_timer,
                ..
            } = &mut *self;
            let checkout = pool.checkout_with(wait_timer.as_mut());
            tokio::pin!(checkout);
            loop {
                let pump = poll_fn(|cx| relay.poll_pump(cx, client, None, true));
                tokio::select! {
                    biased;
                    result = &mut checkout => break result,
                    event = pump => match event {
                        Event::ClientGone => return Ok(false),
                        Event::CloseClient(error) => return Err(error),
                        _ => continue,
                    },
                }
            }
        };
        let server = result.map_err(|e| {
            self.listed.idle();
            e.to_client()
        })?;
        self.link(server).await?;
        Ok(true)
    }

    /// Links a server connection to the client, with the client's session settings.
    async fn link(&mut self, mut server: Checkout) -> Result<(), PgError> {
        if let Err((error, healthy)) = self.apply_settings(&mut server).await {
            if healthy {
                server.release();
            }
            return Err(error);
        }
        let target = server.cancel_target();
        debug!(client = self.key.pid(), server = server.id(), "linked");
        self.relay.link(target.pid);
        self.listed.linked(server.id());
        self.key.set_target(Some(target));
        self.server = Some(server);
        Ok(())
    }

    /// Brings a server connection's session settings to this client's, when they differ. A
    /// value the database refuses (a startup parameter it does not know, a role since dropped)
    /// ends the client: it cannot have the session it expects. The error comes with whether the
    /// server connection is still fit to lend (a refusal rolls back and leaves it as it was).
    async fn apply_settings(&mut self, server: &mut Checkout) -> Result<(), (PgError, bool)> {
        if self.shared.settings.upstream == Upstream::Pooler {
            // Behind another pooler a session setting would outlive the transaction on a backend
            // other clients share (or pin it, under RDS Proxy): pgwarm sets none.
            return Ok(());
        }
        if self.settings.same_as(server.session_settings_mut()) {
            return Ok(());
        }
        let Some(sql) = self.settings.apply_sql(server.session_settings()) else {
            return Ok(());
        };
        let timeout = self.shared.settings.connect_timeout;
        let failed = match tokio::time::timeout(timeout, server.run("session settings", &sql)).await
        {
            Ok(Ok(TxStatus::Idle)) => {
                server.set_session_settings(self.settings.clone());
                return Ok(());
            }
            Ok(Ok(status)) => format!("unexpected transaction status {status}"),
            Ok(Err(ServerError::Query { code, message, .. })) => {
                debug!(client = self.key.pid(), %code, %message, "session settings refused");
                return Err((PgError::fatal(&code, message), true));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {timeout:?}"),
        };
        info!(client = self.key.pid(), server = server.id(), reason = %failed, "applying session settings failed; closing server connection");
        let error = PgError::connection_failure(format!(
            "server connection lost while applying session settings: {failed}"
        ));
        Err((error, false))
    }

    /// Gives the server connection back at the end of a transaction, unless the client keeps
    /// it for its session state. If the client changed settings meanwhile, they are read back
    /// first: they are the client's from now on. Returns how the session ends when it must.
    async fn release(&mut self) -> Option<End> {
        match self.after_transaction().await {
            AfterTransaction::Share => {}
            AfterTransaction::Keep => {
                self.relay.keep_link();
                return None;
            }
            AfterTransaction::End(error) => return Some(End::Error(error)),
        }
        self.key.set_target(None);
        self.listed.idle();
        let leftover = self.relay.unlink();
        let changed = self.relay.take_settings_changed()
            && self.shared.settings.upstream == Upstream::Database;
        if self.relay.take_repaired() {
            self.shared.statement_repaired();
        }
        let refused_write = self.relay.take_refused_write();
        let mut server = self.server.take()?;
        if leftover {
            debug!(
                server = server.id(),
                "server spoke after its last ReadyForQuery; closing it"
            );
            return None;
        }
        if refused_write && !self.pool.still_fits(&mut server).await {
            return None;
        }
        if changed {
            match server.settings_after_change().await {
                Ok(read) => {
                    self.settings = read.over(&self.startup);
                    self.relay.set_resolution(Resolution::of(&self.settings));
                }
                Err(e) => {
                    info!(server = server.id(), error = %e, "reading session settings failed; closing server connection");
                    return None;
                }
            }
        }
        server.release();
        None
    }

    /// At the end of a transaction that may have made or undone session state, asks the server
    /// what it holds. While it holds some, the client keeps its server connection: its next
    /// transaction would otherwise miss it, and another client inherit it. A pinned client's
    /// other transactions ask nothing: they can have changed nothing of it. The client is ended
    /// when its state cannot be kept: the server did not answer (the state is gone with it), or
    /// `PGWARM_MAX_PINNED` clients already keep theirs (the server connection is closed, which
    /// ends the state).
    async fn after_transaction(&mut self) -> AfterTransaction {
        let keep = match self.pinned {
            Some(_) => AfterTransaction::Keep,
            None => AfterTransaction::Share,
        };
        if !self.relay.take_session_state_hint() {
            return keep;
        }
        let Some(server) = self.server.as_mut() else {
            return AfterTransaction::Share;
        };
        if !self.relay.server_input_idle() {
            // The server already sent more (a notification): asking now would read into it.
            // Keep the link and ask at the next such transaction.
            self.relay.rearm_session_state_hint();
            return AfterTransaction::Keep;
        }
        let timeout = self.shared.settings.connect_timeout;
        let asked = tokio::time::timeout(timeout, server.session_state()).await;
        self.relay.own_query_ran();
        // What the server sent besides the answer (notifications) goes to the client.
        let carried = server.take_unread();
        if !carried.is_empty() {
            let (_, set) = server.link_parts();
            self.relay.deliver_from_server(&carried, set);
        }
        let held = match asked {
            Ok(Ok(held)) => held,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {timeout:?}"),
                };
                info!(client = self.key.pid(), server = server.id(), %reason, "asking for session state failed; closing the server connection and the client, whose state may have gone with it");
                self.unpinned();
                self.relay.unlink();
                self.drop_server();
                return AfterTransaction::End(PgError::connection_failure(format!(
                    "server connection lost while pgwarm asked what session state it holds \
                     ({reason}); any such state (locks, LISTEN, temporary tables) is gone"
                )));
            }
        };
        self.loaded |= self.relay.take_loaded();
        let held = match (self.loaded, held.is_empty()) {
            (false, _) => held,
            (true, true) => "LOAD".to_owned(),
            (true, false) => format!("{held}, LOAD"),
        };
        let id = server.id();
        match (held.is_empty(), self.pinned.as_deref()) {
            (true, None) => AfterTransaction::Share,
            (true, Some(_)) => {
                info!(
                    client = self.key.pid(),
                    server = id,
                    "client unpinned: its session state is gone"
                );
                self.pool.unpin(id);
                self.unpinned();
                AfterTransaction::Share
            }
            (false, None) => {
                let within = self.shared.settings.query_wait_timeout;
                if let Err(limit) = self.pool.pin(id, within).await {
                    warn!(client = self.key.pid(), server = id, state = %held, error = %limit, "closing a client whose session state would pin one server connection too many");
                    self.relay.unlink();
                    self.drop_server();
                    return AfterTransaction::End(limit.to_client(&held));
                }
                self.shared.traffic.pins.add(1);
                info!(client = self.key.pid(), server = id, state = %held, "client pinned to its server connection: its session state would not follow it to another");
                self.listed.pinned(Some(&held));
                self.pinned = Some(held);
                AfterTransaction::Keep
            }
            (false, Some(was)) => {
                if was != held {
                    info!(client = self.key.pid(), server = id, state = %held, "a pinned client's session state changed");
                    self.listed.pinned(Some(&held));
                }
                self.pinned = Some(held);
                AfterTransaction::Keep
            }
        }
    }

    fn unpinned(&mut self) {
        self.pinned = None;
        self.listed.pinned(None);
    }

    fn drop_server(&mut self) {
        self.key.set_target(None);
        self.listed.idle();
        self.server = None;
    }

    /// Tells the client why it is closed (if it is), then makes the server connection clean
    /// for the next client or closes it.
    async fn finish(mut self, end: End) {
        let shutdown =
            PgError::admin_shutdown("terminating connection because pgwarm is shutting down");
        let farewell = async {
            let error = match &end {
                End::Error(error) => Some(error),
                End::Shutdown => Some(&shutdown),
                End::ClientGone | End::ServerEnded => None,
            };
            if let Some(error) = error {
                warn!(client = self.key.pid(), code = %error.code, "closing client: {}", error.message);
                self.shared.traffic.errors.add(1);
                self.shared.traffic.error(&error.code);
                if self.relay.queue_error(error) {
                    self.relay.flush_client(&mut self.client).await?;
                }
            }
            if matches!(end, End::ServerEnded) {
                self.relay.flush_client(&mut self.client).await?;
            }
            // Over TLS: close_notify, as a backend sends on exit.
            self.client.shutdown().await
        };
        let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, farewell).await;
        self.key.set_target(None);
        let Some(mut server) = self.server.take() else {
            return;
        };
        if matches!(end, End::Shutdown) {
            if !self.relay.at_rest() {
                // A backend running a query reads Terminate only when the query ends: cancel it.
                let target = server.cancel_target();
                let timeout = self.shared.settings.connect_timeout;
                if let Err(e) = server::send_cancel(&target, self.shared.pool.tls(), timeout).await
                {
                    info!(server = server.id(), error = %e, "could not cancel a running query at shutdown");
                }
            }
            return;
        }
        if !self.relay.at_rest() {
            debug!(
                server = server.id(),
                "client left with work in flight; closing its server connection"
            );
            return;
        }
        if self.pinned.is_some() || self.relay.take_session_state_hint() {
            // Closing is how the backend lets go of it all (locks, LISTEN, temporary tables),
            // including what a transaction left unasked about may have made.
            debug!(
                server = server.id(),
                "a client that may hold session state left; closing its server connection"
            );
            return;
        }
        let settings = &self.shared.settings;
        let reset = (settings.pool_mode == PoolMode::Session
            && !settings.server_reset_query.is_empty())
        .then_some(settings.server_reset_query.as_str());
        let work = Cleanup {
            rollback: !self.relay.status().is_idle(),
            reset_query: reset,
            // The next client compares its settings with what is in effect here.
            read_settings: self.relay.take_settings_changed(),
        };
        match server.clean_up(work).await {
            // After a refused write (25006), the pool asks whether the server still fits.
            Ok(())
                if self.relay.take_refused_write() && !self.pool.still_fits(&mut server).await => {}
            Ok(()) => server.release(),
            Err(e) => {
                info!(server = server.id(), error = %e, "clean-up failed; closing server connection")
            }
        }
    }
}

/// Counts a client's wait for a server connection as over when dropped.
struct WaitEnds<'a>(&'a Traffic, std::time::Instant);

impl Drop for WaitEnds<'_> {
    fn drop(&mut self) {
        self.0.wait_ends(self.1.elapsed());
    }
}

fn idle_timeout_error(limit: Duration) -> PgError {
    PgError::fatal(
        sqlstate::IDLE_IN_TRANSACTION_TIMEOUT,
        format!(
            "terminating connection due to idle-in-transaction timeout ({limit:?}, PGWARM_IDLE_TRANSACTION_TIMEOUT)"
        ),
    )
}
