//! One login to the database, for a slot the pool is filling: credentials from the source
//! (asked again after a refusal, for a rotated secret), the login within
//! `PGWARM_CONNECT_TIMEOUT` and what is left of the client's wait, `idle_session_timeout` asked
//! for (short while the database is tight, never again once a database refuses it), and the
//! connection use read on the new connection where it is watched.

use super::discovery::Occasion;
use super::headroom;
use super::hosts::{Candidate, Found};
use super::outage;
use super::stats::Work;
use super::Pool;
use crate::credentials::Credentials;
use crate::protocol::sqlstate;
use crate::server::Role;
use crate::server::{self, ServerConn, ServerError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Server connection ids, one sequence for every pool: the admin console and the logs name a
/// connection by it, whichever port's pool holds it.
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

impl Pool {
    /// One login attempt: credentials, then a server that `PGWARM_TARGET_SESSION_ATTRS`
    /// accepts, from the hosts in turn (`hosts.rs`), each within `PGWARM_CONNECT_TIMEOUT` and
    /// what is left before `deadline`. A server that will not do is closed; with
    /// `prefer-standby`, a primary is kept in case no host is a standby. A server that is not
    /// the writer may name it (`discovery.rs`): that host is tried next.
    pub(super) async fn login(&self, deadline: Instant) -> Result<ServerConn, ServerError> {
        let source = self.credentials.credentials().await?;
        let attrs = self.hosts.attrs();
        let mut walk = Walk::default();
        let mut route = Route::new(self.hosts.candidates(&source));
        while let Some(candidate) = route.next() {
            let at = format!("{}:{}", candidate.creds.host, candidate.creds.port);
            let mut conn = match self.login_as(&source, &candidate.creds, deadline).await {
                Ok(conn) => conn,
                Err(e) => {
                    self.hosts.saw(candidate.index, Found::Unreachable);
                    walk.failed(format!("{at} could not be reached ({e})"), e);
                    continue;
                }
            };
            let role = match attrs.needs_role() {
                // What the server reported, if anything: shown, never asked for.
                false => conn.reported_role(),
                true => match self.role_of(&mut conn, deadline).await {
                    Ok(role) => Some(role),
                    Err(e) => {
                        self.hosts.saw(candidate.index, Found::Unreachable);
                        walk.failed(format!("{at} did not say what it is ({e})"), e);
                        continue;
                    }
                },
            };
            self.hosts.saw(candidate.index, Found::Server(role));
            let occasion = match role {
                Some(role) if !role.satisfies(attrs, true) => Occasion::NotTheWriter,
                _ => Occasion::FirstWriter,
            };
            let named = self
                .discover(&source, &candidate, &mut conn, occasion, deadline)
                .await;
            match named {
                Ok(None) => {}
                Ok(Some(writer)) => route.first(self.hosts.candidates(&source), writer),
                Err(e) => {
                    walk.failed(format!("{at} did not say what the cluster is ({e})"), e);
                    continue;
                }
            }
            match role {
                Some(role) if !role.satisfies(attrs, true) => {
                    walk.wrong_role(format!("{at} is a {}", role.as_str()));
                    if walk.second_best.is_none() && role.satisfies(attrs, false) {
                        walk.second_best = Some((candidate, conn));
                    } else {
                        debug!(server = conn.id(), %at, role = role.as_str(), "closing a server connection that will not do");
                        conn.close();
                    }
                }
                _ => {
                    if let Some((_, second)) = walk.second_best.take() {
                        second.close();
                    }
                    return Ok(self.found_server(&candidate, conn, true));
                }
            }
        }
        if let Some((candidate, conn)) = walk.second_best.take() {
            // prefer-standby's primary: used, but not tried first next time.
            return Ok(self.found_server(&candidate, conn, false));
        }
        Err(walk.into_error(self.hosts.single(), || self.looked_for()))
    }

    /// What a login that found no server looked for, naming the setting that asks for it.
    fn looked_for(&self) -> String {
        match self.hosts.fallback_to_writer() {
            Some(false) => "no replica of PGWARM_READER_HOST took a login \
                 (PGWARM_READER_FALLBACK is off)"
                .into(),
            Some(true) => "no replica of PGWARM_READER_HOST, nor the writer, took a login".into(),
            None => format!(
                "no server is {} (PGWARM_TARGET_SESSION_ATTRS; `any` lends read-only servers too)",
                self.hosts.attrs().as_str()
            ),
        }
    }

    /// What the server is, within the attempt's time.
    async fn role_of(&self, conn: &mut ServerConn, deadline: Instant) -> Result<Role, ServerError> {
        let limit = self.attempt_timeout(deadline);
        match tokio::time::timeout(limit, conn.read_role()).await {
            Ok(read) => read,
            Err(_) => Err(ServerError::Timeout(limit)),
        }
    }

    /// A server that will do. The writer's host goes first next time when `prefer` (one line
    /// when that changes, as it does at a failover); for the reader port, one line when its
    /// logins start or stop going to the writer. Clients are shown the newest login's
    /// parameters.
    fn found_server(
        &self,
        candidate: &Candidate,
        mut conn: ServerConn,
        prefer: bool,
    ) -> ServerConn {
        if self.hosts.balanced() {
            if candidate.fallback {
                conn.mark_fallback();
                self.counters.reader_fallbacks.add(1);
            }
            if self.hosts.fell_back(candidate.fallback) {
                match candidate.fallback {
                    true => {
                        warn!(server = conn.id(), host = %conn.host(), "no replica of PGWARM_READER_HOST took a login: the reader port's connections go to the writer")
                    }
                    false => {
                        info!(server = conn.id(), host = %conn.host(), "a replica takes logins again: the reader port's connections go to the replicas")
                    }
                }
            }
        } else if prefer && self.hosts.found(candidate.index) {
            self.counters.host_changes.add(1);
            info!(server = conn.id(), host = %conn.host(), role = conn.role().map_or("any", |r| r.as_str()), "logging in to a new host first");
        }
        *self.server_params.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(conn.params().to_vec()));
        conn
    }

    /// A login to one host: `creds` is `source`'s login made for that host. A refused login
    /// (28P01, 28000) is retried once with whatever the credential source offers instead (a
    /// rotated secret), made for the same host, so a rotation costs no failed client. The
    /// source is asked about its own login, which it can compare with what it read.
    async fn login_as(
        &self,
        source: &Credentials,
        creds: &Credentials,
        deadline: Instant,
    ) -> Result<ServerConn, ServerError> {
        let error = match self.connect(creds, deadline).await {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        if matches!(error, ServerError::Rejected { .. }) && !outage::is_transient(&error) {
            let instead = match self.credentials.after_rejection(source).await {
                Ok(instead) => instead,
                Err(e) => {
                    warn!(error = %e, "could not look for new credentials after a refused login");
                    Vec::new()
                }
            };
            for mut instead in instead {
                // With a list of hosts the source gives the login; the host is this one.
                if !self.hosts.single() {
                    instead.host.clone_from(&creds.host);
                    instead.port = creds.port;
                }
                if let Ok(conn) = self.connect(&instead, deadline).await {
                    return Ok(conn);
                }
            }
        }
        Err(error)
    }

    /// How long one login or health check may take: `PGWARM_CONNECT_TIMEOUT`, or less when the
    /// client's deadline is nearer.
    pub(super) fn attempt_timeout(&self, deadline: Instant) -> Duration {
        self.settings
            .connect_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
    }

    /// One login, logged either way (a failure worth waiting out at debug level: the episode
    /// is logged instead). A database that refuses `idle_session_timeout` is asked again
    /// without it, and never again with it.
    async fn connect(
        &self,
        creds: &Credentials,
        deadline: Instant,
    ) -> Result<ServerConn, ServerError> {
        let tight = self.is_tight();
        let asked = self
            .settings
            .idle_session_timeout
            .filter(|_| self.idle_timeout_accepted.load(Ordering::Relaxed))
            .map(|t| match tight {
                true => t.min(headroom::TIGHT_IDLE_SESSION_TIMEOUT),
                false => t,
            });
        let options = asked.map(|t| format!("-c idle_session_timeout={}", t.as_millis()));
        match self
            .connect_with(creds, deadline, options.as_deref(), asked)
            .await
        {
            Err(ServerError::Rejected { code, message })
                if options.is_some() && refuses_option(&code) =>
            {
                info!(%code, %message, "the database refused idle_session_timeout; logging in without it (PGWARM_IDLE_SESSION_TIMEOUT has no effect)");
                self.idle_timeout_accepted.store(false, Ordering::Relaxed);
                self.connect_with(creds, deadline, None, None).await
            }
            result => result,
        }
    }

    async fn connect_with(
        &self,
        creds: &Credentials,
        deadline: Instant,
        options: Option<&str>,
        idle_session_timeout: Option<Duration>,
    ) -> Result<ServerConn, ServerError> {
        let id = NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let timeout = self.attempt_timeout(deadline);
        let login = {
            let _login = self.under_way(Work::LoggingIn);
            let login = server::connect(creds, &self.tls, "pgwarm", options, id, timeout).await;
            match login {
                Ok(mut conn) if self.reads_headroom() => {
                    let read = self
                        .read_headroom(&mut conn, idle_session_timeout, deadline)
                        .await;
                    read.map(|()| conn)
                }
                other => other,
            }
        };
        if matches!(&login, Err(e) if self.settings.watch_headroom && outage::is_full(e)) {
            self.headroom.refused();
        }
        let first = login.is_ok() && self.counters.logins.get() == 0;
        if login.is_ok() {
            self.counters.logins.add(1);
            self.counters
                .login_us
                .add(started.elapsed().as_micros() as u64);
        } else {
            self.counters.login_failures.add(1);
        }
        match login {
            Ok(conn) => {
                info!(
                    server = id,
                    host = %conn.host(),
                    port = creds.port,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    tls = conn.is_tls(),
                    first,
                    "opened server connection"
                );
                Ok(conn)
            }
            Err(e) if outage::is_transient(&e) => {
                debug!(error = %e, "could not open a server connection");
                Err(e)
            }
            Err(e) => {
                warn!(error = %e, "could not open a server connection");
                Err(e)
            }
        }
    }
}

/// Whether a refused login is the database (or a pooler in front of it) refusing a startup
/// option: an unknown setting (42704, PostgreSQL before 14), an unsupported startup parameter
/// (08P01, PgBouncer) or a value it does not take (22023).
fn refuses_option(code: &str) -> bool {
    matches!(
        code,
        sqlstate::UNDEFINED_OBJECT
            | sqlstate::PROTOCOL_VIOLATION
            | sqlstate::INVALID_PARAMETER_VALUE
    )
}

/// The hosts one login attempt has yet to try, in order, each once.
struct Route {
    queue: std::collections::VecDeque<Candidate>,
    /// The hosts tried so far, by index.
    tried: Vec<usize>,
}

impl Route {
    fn new(candidates: Vec<Candidate>) -> Route {
        Route {
            queue: candidates.into(),
            tried: Vec::new(),
        }
    }

    fn next(&mut self) -> Option<Candidate> {
        let candidate = self.queue.pop_front()?;
        self.tried.extend(candidate.index);
        Some(candidate)
    }

    /// The host at `index` next, unless already tried; hosts of `candidates` (the pool's, asked
    /// again) not yet on the route go last.
    fn first(&mut self, candidates: Vec<Candidate>, index: usize) {
        for candidate in candidates {
            let Some(at) = candidate.index else {
                continue;
            };
            if self.tried.contains(&at) || self.queue.iter().any(|c| c.index == Some(at)) {
                continue;
            }
            self.queue.push_back(candidate);
        }
        if self.tried.contains(&index) {
            return;
        }
        if let Some(at) = self.queue.iter().position(|c| c.index == Some(index)) {
            if let Some(candidate) = self.queue.remove(at) {
                self.queue.push_front(candidate);
            }
        }
    }
}

/// What one login attempt found on its way over the hosts.
#[derive(Default)]
struct Walk {
    /// What each host was, or why it could not be asked, for the error.
    found: Vec<String>,
    /// A host answered with a server of the wrong kind: a failover may be under way.
    wrong_role: bool,
    /// The first failure the database will not get over by itself (a refused password, a
    /// certificate that does not verify), and the last failure worth waiting out.
    permanent: Option<ServerError>,
    transient: Option<ServerError>,
    /// `prefer-standby`'s primary, kept in case no host is a standby.
    second_best: Option<(Candidate, ServerConn)>,
}

impl Walk {
    fn failed(&mut self, what: String, error: ServerError) {
        self.found.push(what);
        match outage::is_transient(&error) {
            true => self.transient = Some(error),
            false => {
                self.permanent.get_or_insert(error);
            }
        }
    }

    fn wrong_role(&mut self, what: String) {
        self.found.push(what);
        self.wrong_role = true;
    }

    /// The error of a login that found no server. A failure the database will not get over
    /// is the client's at once, unless some host answered with a server of the wrong kind (a
    /// failover, waited out). With several hosts, what each one was; with one, its own error.
    fn into_error(self, single: bool, looked_for: impl FnOnce() -> String) -> ServerError {
        match (self.permanent, self.transient) {
            (Some(permanent), _) if !self.wrong_role => permanent,
            (_, Some(transient)) if single && !self.wrong_role => transient,
            _ if !self.found.is_empty() => ServerError::NoServerFits {
                wanted: looked_for(),
                found: self.found.join("; "),
            },
            _ => ServerError::Closed,
        }
    }
}
