//! The settings a relay follows, copied out of `Settings` once per client, so the relay reads
//! plain fields on its hot path and its unit tests can build them by hand.

use crate::config::{Pinning, PoolMode, Settings, Upstream};

/// The settings a relay follows, copied out of [`Settings`] once per client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) mode: PoolMode,
    pub(crate) max_message_size: usize,
    /// Whether the session wants to hear about idle-in-transaction moments.
    pub(crate) watch_idle: bool,
    /// Statements kept per server connection; 0 when names pass through unchanged (session
    /// mode, or `PGWARM_MAX_PREPARED_STATEMENTS=0`).
    pub(crate) max_prepared: usize,
    /// A pooler is upstream (`PGWARM_UPSTREAM_POOLER=on`): the client's named statements are
    /// parsed as the unnamed statement before each use, as nothing lasts beyond a transaction.
    pub(crate) unnamed_server: bool,
    /// Statements are looked at for session state (`PGWARM_PINNING=on` or `refuse`,
    /// transaction mode).
    pub(crate) watch_session_state: bool,
    /// Statements that make session state are answered with an error (`PGWARM_PINNING=refuse`).
    pub(crate) refuse_session_state: bool,
}

impl Rules {
    pub(crate) fn of(settings: &Settings) -> Rules {
        // Session state outlives a transaction only where connections change hands between
        // transactions, and pgwarm can keep one only where it talks to the database itself.
        let pins =
            settings.pool_mode == PoolMode::Transaction && settings.upstream == Upstream::Database;
        Rules {
            mode: settings.pool_mode,
            max_message_size: settings.max_message_size,
            // Besides `PGWARM_IDLE_TRANSACTION_TIMEOUT`, the end of a Lambda invocation ends a
            // transaction left idle (`client::invocation_end`).
            watch_idle: settings.idle_transaction_timeout.is_some()
                || settings.frozen_between_invocations,
            max_prepared: match settings.pool_mode {
                PoolMode::Transaction => settings.max_prepared_statements,
                PoolMode::Session => 0,
            },
            unnamed_server: settings.upstream == Upstream::Pooler,
            watch_session_state: settings.pinning != Pinning::Off && pins,
            refuse_session_state: settings.pinning == Pinning::Refuse && pins,
        }
    }
}
