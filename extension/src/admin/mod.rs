//! The admin console: a client that logs in to the database `pgwarm` (or `pgbouncer`, for the
//! tools made for PgBouncer) over loopback gets PgBouncer's admin commands — `SHOW POOLS`,
//! `SHOW STATS`, `SHOW SERVERS`, ... with PgBouncer's column names and meanings, so
//! pgbouncer_exporter and people's queries work unchanged — plus pgwarm's own `SHOW PREPARED`
//! and `SHOW LAMBDA`, and `RELOAD`, `PAUSE`, `RESUME`, `KILL`, `KILL_CLIENT`.
//!
//! It speaks the simple query protocol only, like PgBouncer's; it reads what the client, pool
//! and Lambda modules count and changes nothing but the pause and the clients it is told to
//! close. No command shows a password or a secret.

mod averages;
mod command;
mod lifecycle;
mod show;
mod table;
mod topology;

pub(crate) use lifecycle::{Lifecycle, Registration};

use crate::client::{AdminClient, SessionContext};
use crate::protocol::backend::TxStatus;
use crate::protocol::framing::{self, HEADER_LEN};
use crate::protocol::{backend, sqlstate, PgError};
use crate::stream::Stream;
use averages::{Averages, Totals};
use bytes::{Buf, BytesMut};
use command::Command;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

/// The longest admin command accepted; they are a few words.
const MAX_COMMAND: usize = 64 * 1024;

/// What the console reads, shared by its sessions.
pub(crate) struct Console {
    shared: Arc<SessionContext>,
    averages: Averages,
    lifecycle: Arc<Lifecycle>,
    /// Admin sessions open now.
    sessions: AtomicUsize,
}

impl Console {
    pub(crate) fn new(shared: Arc<SessionContext>, lifecycle: Arc<Lifecycle>) -> Arc<Console> {
        let averages = Averages::new(shared.settings.stats_period, Totals::of(&shared.traffic));
        Arc::new(Console {
            shared,
            averages,
            lifecycle,
            sessions: AtomicUsize::new(0),
        })
    }

    /// Closes a stats period every `PGWARM_STATS_PERIOD`, for the `avg_*` columns; ends when
    /// pgwarm stops.
    pub(crate) fn start_periods(self: &Arc<Console>) {
        let console = Arc::clone(self);
        tokio::spawn(async move {
            let period = console.averages.period();
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => console.averages.tick(Totals::of(&console.shared.traffic)),
                    () = console.shared.shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// Serves one admin session until the client leaves or pgwarm stops.
pub(crate) async fn serve(console: Arc<Console>, client: AdminClient) {
    let AdminClient { mut stream, user } = client;
    console.sessions.fetch_add(1, Ordering::Relaxed);
    let shutdown = console.shared.shutdown.clone();
    let result = tokio::select! {
        r = session(&console, &mut stream) => r,
        () = shutdown.cancelled() => Ok(()),
    };
    console.sessions.fetch_sub(1, Ordering::Relaxed);
    if let Err(e) = result {
        debug!(user = %user, error = %e, "admin session ended");
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// The message loop: Query runs a command; the extended protocol is refused once per batch;
/// Terminate ends the session.
async fn session(console: &Console, stream: &mut Stream) -> io::Result<()> {
    let mut input = BytesMut::with_capacity(1024);
    let mut out = BytesMut::with_capacity(4096);
    // An extended-protocol message was refused: the rest until Sync is skipped, as a server
    // skips after an error.
    let mut skipping = false;
    loop {
        let (tag, body) = match next_message(stream, &mut input).await? {
            Some(message) => message,
            None => return Ok(()),
        };
        match tag {
            b'Q' => {
                let text = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body));
                run(console, &text, &mut out).await;
                backend::ready_for_query(&mut out, TxStatus::Idle);
            }
            b'X' => return Ok(()),
            b'S' => {
                skipping = false;
                backend::ready_for_query(&mut out, TxStatus::Idle);
            }
            b'H' => {}
            b'P' | b'B' | b'D' | b'E' | b'C' => {
                if !skipping {
                    skipping = true;
                    PgError::error(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        "the pgwarm admin console speaks the simple query protocol only",
                    )
                    .encode(&mut out);
                }
            }
            other => {
                PgError::protocol_violation(format!(
                    "unexpected message type 0x{other:02x} on the admin console"
                ))
                .encode(&mut out);
                stream.write_all(&out).await?;
                return stream.flush().await;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
    }
}

/// The next whole message from the client; `None` at EOF. A message too large for a command
/// ends the session with an error.
async fn next_message(
    stream: &mut Stream,
    input: &mut BytesMut,
) -> io::Result<Option<(u8, BytesMut)>> {
    loop {
        if let Some((tag, len)) = framing::header(input) {
            if !(HEADER_LEN..=MAX_COMMAND).contains(&len) {
                let mut out = BytesMut::new();
                PgError::protocol_violation(format!(
                    "admin console message of {len} bytes is too large"
                ))
                .encode(&mut out);
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(None);
            }
            if input.len() >= len {
                let mut message = input.split_to(len);
                message.advance(HEADER_LEN);
                return Ok(Some((tag, message)));
            }
        }
        if stream.read_buf(input).await? == 0 {
            return Ok(None);
        }
    }
}

/// Runs one command and writes its answer (a result, a tag, or an error) to `out`.
async fn run(console: &Console, text: &str, out: &mut BytesMut) {
    let command = match command::parse(text) {
        Ok(c) => c,
        Err(e) => return e.encode(out),
    };
    let shared = &console.shared;
    match command {
        Command::Empty => backend::empty_query_response(out),
        Command::Show(what) => show::table(console, what).await.encode(out, "SHOW"),
        Command::Reload => match shared.pool.credentials().reload().await {
            Ok(done) => {
                info!("admin console RELOAD: {done}");
                backend::command_complete(out, "RELOAD");
            }
            Err(e) => {
                warn!(error = %e, "admin console RELOAD failed");
                PgError::error(sqlstate::CONNECTION_FAILURE, e.to_string()).encode(out)
            }
        },
        Command::Pause(db) | Command::Resume(db) if !names_ours(console, db.as_deref()).await => {
            no_such_database(db.as_deref().unwrap_or_default()).encode(out)
        }
        Command::Pause(_) => {
            if shared.pool.view().paused {
                return PgError::error(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "already paused",
                )
                .encode(out);
            }
            info!("admin console PAUSE: waiting for transactions under way");
            shared.pool.pause().await;
            info!("admin console PAUSE: paused");
            backend::command_complete(out, "PAUSE");
        }
        Command::Resume(_) => {
            if !shared.pool.view().paused {
                return PgError::error(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "pgwarm is not paused",
                )
                .encode(out);
            }
            shared.pool.resume();
            info!("admin console RESUME");
            backend::command_complete(out, "RESUME");
        }
        Command::Kill(db) => {
            if !names_ours(console, Some(&db)).await {
                return no_such_database(&db).encode(out);
            }
            let n = shared.clients.kill_all();
            info!(clients = n, "admin console KILL {db}");
            backend::command_complete(out, "KILL");
        }
        Command::KillClient(id) => {
            if shared.clients.kill(id) {
                info!(client = id, "admin console KILL_CLIENT");
                backend::command_complete(out, "KILL_CLIENT");
            } else {
                PgError::error(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("no client with id {id}"),
                )
                .with_hint("SHOW CLIENTS lists them.")
                .encode(out)
            }
        }
    }
}

/// Whether `db` (absent: yes) is the database pgwarm pools.
async fn names_ours(console: &Console, db: Option<&str>) -> bool {
    match db {
        None => true,
        Some(db) => show::database_name(console).await.as_deref() == Some(db),
    }
}

fn no_such_database(db: &str) -> PgError {
    PgError::error(
        sqlstate::INVALID_CATALOG_NAME,
        format!("pgwarm pools no database \"{db}\""),
    )
}
