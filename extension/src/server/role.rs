//! What a server is: a primary or a hot standby, and whether its sessions accept writes. A
//! server connection is checked against `PGWARM_TARGET_SESSION_ATTRS` right after its login, as
//! libpq checks `target_session_attrs`, so a client is never handed a server that would refuse
//! its writes.
//!
//! PostgreSQL 14 and later report `in_hot_standby` and `default_transaction_read_only` at login,
//! so the check costs nothing there; an older server, or a pooler that does not pass them on, is
//! asked with one query.

use super::{ServerConn, ServerError};
use crate::config::SessionAttrs;
use crate::protocol::backend::TxStatus;

/// A server's role as one of its sessions sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Role {
    /// In recovery: a streaming standby (or Aurora's reader), read-only by nature.
    pub hot_standby: bool,
    /// New transactions are read-only: a standby, or `default_transaction_read_only` on.
    pub read_only: bool,
}

impl Role {
    /// The role as the server reported it at login, when it reported both values (PostgreSQL
    /// 14 and later).
    pub(crate) fn reported(params: &[(String, String)]) -> Option<Role> {
        let value = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v == "on")
        };
        let hot_standby = value("in_hot_standby")?;
        let default_read_only = value("default_transaction_read_only")?;
        Some(Role {
            hot_standby,
            read_only: hot_standby || default_read_only,
        })
    }

    /// Whether this server will do for `attrs`, on a pass over the hosts that may still find a
    /// better one (`strict`) or on the last pass (`prefer-standby` then takes any server).
    pub(crate) fn satisfies(self, attrs: SessionAttrs, strict: bool) -> bool {
        match attrs {
            SessionAttrs::Any => true,
            SessionAttrs::ReadWrite => !self.read_only,
            SessionAttrs::ReadOnly => self.read_only,
            SessionAttrs::Primary => !self.hot_standby,
            SessionAttrs::Standby => self.hot_standby,
            SessionAttrs::PreferStandby => self.hot_standby || !strict,
        }
    }

    /// A short word for logs and the admin console.
    pub(crate) fn as_str(self) -> &'static str {
        match (self.hot_standby, self.read_only) {
            (true, _) => "standby",
            (false, true) => "read-only primary",
            (false, false) => "primary",
        }
    }
}

/// Asked of a server that did not report its role at login.
const ROLE_SQL: &str =
    "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')";

/// Asked again of a server that refused a write: the default a new session would get.
const REREAD_SQL: &str =
    "SELECT pg_catalog.pg_is_in_recovery(), reset_val FROM pg_catalog.pg_settings \
     WHERE name = 'default_transaction_read_only'";

impl ServerConn {
    /// The server's role, from what it reported at login or, failing that, asked once. Kept on
    /// the connection.
    pub(crate) async fn read_role(&mut self) -> Result<Role, ServerError> {
        if let Some(role) = self.role.or_else(|| Role::reported(&self.params)) {
            self.role = Some(role);
            return Ok(role);
        }
        self.ask_role("reading the server's role", ROLE_SQL).await
    }

    /// The role as the server reported it at login, kept, with no question asked: for the
    /// admin console when no target needs it.
    pub(crate) fn reported_role(&mut self) -> Option<Role> {
        self.role = self.role.or_else(|| Role::reported(&self.params));
        self.role
    }

    /// The server's role now, asked whatever was known: after it refused a write. What the
    /// server would give a new session counts (`reset_val`), not a client's own `SET`.
    pub(crate) async fn reread_role(&mut self) -> Result<Role, ServerError> {
        self.ask_role("reading the server's role again", REREAD_SQL)
            .await
    }

    /// Runs `sql`, whose one row is (in recovery, read-only), and keeps the role it gives.
    async fn ask_role(&mut self, what: &'static str, sql: &str) -> Result<Role, ServerError> {
        self.role = None;
        let mut answer = None;
        let status = self
            .query(what, sql, |row| {
                if let [Some(recovery), Some(read_only)] = &row[..] {
                    answer = Some((recovery == "t", read_only == "on"));
                }
            })
            .await?;
        let (Some((hot_standby, read_only)), TxStatus::Idle) = (answer, status) else {
            return Err(ServerError::Protocol(format!(
                "no role in the answer when {what}"
            )));
        };
        let role = Role {
            hot_standby,
            read_only: hot_standby || read_only,
        };
        self.role = Some(role);
        Ok(role)
    }

    /// The role found by [`Self::read_role`], if it was read.
    pub(crate) fn role(&self) -> Option<Role> {
        self.role
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const PRIMARY: Role = Role {
        hot_standby: false,
        read_only: false,
    };
    const STANDBY: Role = Role {
        hot_standby: true,
        read_only: true,
    };
    const READ_ONLY_PRIMARY: Role = Role {
        hot_standby: false,
        read_only: true,
    };

    #[test]
    fn postgres_14_reports_its_role() {
        let standby = params(&[
            ("in_hot_standby", "on"),
            ("default_transaction_read_only", "off"),
        ]);
        assert_eq!(Role::reported(&standby), Some(STANDBY));
        let primary = params(&[
            ("default_transaction_read_only", "off"),
            ("in_hot_standby", "off"),
        ]);
        assert_eq!(Role::reported(&primary), Some(PRIMARY));
        let read_only = params(&[
            ("default_transaction_read_only", "on"),
            ("in_hot_standby", "off"),
        ]);
        assert_eq!(Role::reported(&read_only), Some(READ_ONLY_PRIMARY));
        assert_eq!(Role::reported(&params(&[("in_hot_standby", "off")])), None);
    }

    #[test]
    fn each_target_takes_the_servers_libpq_takes() {
        use SessionAttrs::*;
        let table = [
            (Any, [true, true, true]),
            (ReadWrite, [true, false, false]),
            (ReadOnly, [false, true, true]),
            (Primary, [true, false, true]),
            (Standby, [false, true, false]),
            (PreferStandby, [false, true, false]),
        ];
        for (target, takes) in table {
            for (role, takes) in [PRIMARY, STANDBY, READ_ONLY_PRIMARY].into_iter().zip(takes) {
                assert_eq!(role.satisfies(target, true), takes, "{target:?} {role:?}");
            }
        }
        assert!(
            PRIMARY.satisfies(PreferStandby, false),
            "the last pass takes any"
        );
        assert!(!STANDBY.satisfies(ReadWrite, false));
    }
}
