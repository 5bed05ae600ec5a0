//! The settings of a client's startup packet, checked by the database and spelled as it spells
//! them, before the client is told it is logged in.
//!
//! PostgreSQL refuses a bad startup value with FATAL at login (`client_encoding=bogus`,
//! `DateStyle=bogus`, an unknown parameter), and reports the values it accepted in its own
//! spelling (`eucjp` is `EUC_JP`, `iso,dmy` is `ISO, DMY`). pgwarm's clients do not log in to the
//! database, so pgwarm asks it: one query that sets each value for the length of its own
//! transaction and returns what `set_config` made of it. Drivers compare the reported values
//! (psycopg maps encodings by the server's name), and the canonical spelling is also what pgwarm
//! later applies on every server connection the client uses, so a partial value such as
//! `DateStyle=ISO` means the same there as at a real login.
//!
//! Answers are cached per (name, value): a fleet of Lambda invocations sends the same startup
//! packet every time, and only the first pays the round trip.

use crate::pool::Pool;
use crate::protocol::backend::TxStatus;
use crate::protocol::PgError;
use crate::server::session_settings::literal;
use crate::server::{ServerError, SessionSettings};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Bounds the cache; past it the cache starts over.
const CACHE_LIMIT: usize = 1024;

/// Canonical values by (lower-case name, value as the client sent it).
#[derive(Default)]
pub(crate) struct CheckedSettings(Mutex<HashMap<(String, String), String>>);

impl CheckedSettings {
    fn cached(&self, name: &str, value: &str) -> Option<String> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&(name.to_ascii_lowercase(), value.to_owned()))
            .cloned()
    }

    fn remember(&self, name: &str, value: &str, canonical: &str) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            (name.to_ascii_lowercase(), value.to_owned()),
            canonical.to_owned(),
        );
    }

    /// The settings `wanted` (as the client spelled them: errors quote its spelling) with every
    /// value in the database's spelling, or the FATAL PostgreSQL would have refused the login
    /// with. Asks the database only for pairs it has not seen.
    pub(crate) async fn check(
        &self,
        pool: &Arc<Pool>,
        wanted: Vec<(String, String)>,
    ) -> Result<SessionSettings, PgError> {
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        for (name, value) in wanted {
            match self.cached(&name, &value) {
                Some(canonical) => out.push((name, canonical)),
                None => unknown.push((name, value)),
            }
        }
        if unknown.is_empty() {
            return Ok(SessionSettings::new(out));
        }
        let mut server = pool.checkout().await.map_err(|e| e.to_client())?;
        let mut row = Vec::new();
        let result = server
            .query("checking startup settings", &check_sql(&unknown), |r| {
                row = r
            })
            .await;
        match result {
            Ok(TxStatus::Idle) => server.release(),
            // A connection that is not idle now is not fit to lend; dropping it closes it.
            Ok(_) => {}
            Err(ServerError::Query { code, message, .. }) => {
                server.release();
                return Err(PgError::fatal(&code, message));
            }
            Err(e) => return Err(e.to_client()),
        }
        // The row holds one value per set_config call; DateStyle's first one is its base.
        let mut values = row.into_iter();
        for (name, value) in unknown {
            if name.eq_ignore_ascii_case("datestyle") {
                values.next();
            }
            let canonical = values.next().flatten().unwrap_or_else(|| value.clone());
            self.remember(&name, &value, &canonical);
            out.push((name, canonical));
        }
        Ok(SessionSettings::new(out))
    }
}

/// One `select` of `set_config(name, value, true)` per setting: local to the query's own
/// transaction, so the server connection is left as it was, whether the values are accepted or
/// not. At a real login the client's DateStyle is applied over the server's default, before
/// per-database and per-role settings (which it then outranks); its first call sets that base.
fn check_sql(settings: &[(String, String)]) -> String {
    let mut sql = String::from("select ");
    for (i, (name, value)) in settings.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        if name.eq_ignore_ascii_case("datestyle") {
            sql.push_str(
                "pg_catalog.set_config('datestyle', (select boot_val from pg_catalog.pg_settings \
                 where name = 'DateStyle'), true), ",
            );
        }
        let _ = write!(
            sql,
            "pg_catalog.set_config({}, {}, true)",
            literal(name),
            literal(value)
        );
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datestyle_is_set_over_the_default_first() {
        let sql = check_sql(&[
            ("DateStyle".into(), "ISO".into()),
            ("timezone".into(), "utc".into()),
        ]);
        assert_eq!(
            sql,
            "select pg_catalog.set_config('datestyle', (select boot_val from pg_catalog.pg_settings \
             where name = 'DateStyle'), true), \
             pg_catalog.set_config($pgwarm$DateStyle$pgwarm$, $pgwarm$ISO$pgwarm$, true), \
             pg_catalog.set_config($pgwarm$timezone$pgwarm$, $pgwarm$utc$pgwarm$, true)"
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = CheckedSettings::default();
        for i in 0..CACHE_LIMIT + 1 {
            cache.remember("application_name", &i.to_string(), "x");
        }
        assert!(cache.0.lock().unwrap().len() <= CACHE_LIMIT);
        assert_eq!(
            cache.cached("application_name", &CACHE_LIMIT.to_string()),
            Some("x".into())
        );
    }
}
