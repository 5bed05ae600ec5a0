//! Session settings (run-time parameters set for the session, PostgreSQL's `source = 'session'`)
//! as a value pgwarm can compare, apply to a server connection and read back from one.
//!
//! In transaction mode a client's transactions land on any server connection, so each connection
//! remembers which settings pgwarm left in effect on it, and before a client's transaction pgwarm
//! applies only the difference to what that client wants. Reading them back from `pg_settings`
//! after a client changed them, rather than parsing its SQL, gets every case right that the
//! database decides: a SET rolled back with its transaction, SET LOCAL, RESET, DISCARD ALL.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// What a client changed during a link is read with this query.
pub(crate) const READ_SQL: &str =
    "select name, setting from pg_catalog.pg_settings where source = 'session' order by name";

/// Settings by name. Names are kept in lower case: PostgreSQL matches them without case.
///
/// Shared, never changed in place: clients and server connections with the same settings come
/// to hold one map (`same_as`), so the check at each link is mostly a pointer comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionSettings(Arc<BTreeMap<String, String>>);

impl SessionSettings {
    pub(crate) fn new(settings: impl IntoIterator<Item = (String, String)>) -> SessionSettings {
        SessionSettings(Arc::new(
            settings
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
        ))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `self` over `defaults`: what a client has after `RESET`, which returns a setting to the
    /// client's startup value, not to the server connection's.
    pub(crate) fn over(&self, defaults: &SessionSettings) -> SessionSettings {
        let mut merged = BTreeMap::clone(&defaults.0);
        merged.extend(self.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        SessionSettings(Arc::new(merged))
    }

    /// Whether `self` and `other` are the same settings. Two equal maps are made one: both keep
    /// the one at the lower address, so that however many clients and connections share the
    /// same settings, they come to hold one map and the next comparison is a pointer's.
    pub(crate) fn same_as(&mut self, other: &mut SessionSettings) -> bool {
        if Arc::ptr_eq(&self.0, &other.0) {
            return true;
        }
        if self.0 != other.0 {
            return false;
        }
        if Arc::as_ptr(&self.0) < Arc::as_ptr(&other.0) {
            other.0 = Arc::clone(&self.0);
        } else {
            self.0 = Arc::clone(&other.0);
        }
        true
    }

    /// SQL that turns a connection whose session settings are `current` into one with `self`,
    /// or None when they already match. The statements run as one implicit transaction, so a
    /// value the server refuses leaves the connection as it was.
    pub(crate) fn apply_sql(&self, current: &SessionSettings) -> Option<String> {
        let mut sql = String::new();
        for (name, value) in self.0.iter() {
            if current.0.get(name) != Some(value) {
                let _ = write!(
                    sql,
                    "select pg_catalog.set_config({}, {}, false);",
                    literal(name),
                    literal(value)
                );
            }
        }
        for name in current.0.keys() {
            if !self.0.contains_key(name) {
                let _ = write!(sql, "reset {};", identifier(name));
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
}

/// A dollar-quoted literal: immune to `standard_conforming_strings`, which a client may turn off.
pub(crate) fn literal(value: &str) -> String {
    let mut tag = String::from("$pgwarm$");
    let mut n = 0;
    // The literal ends at the first occurrence of the tag after the opening one.
    while format!("{value}{tag}").find(&tag) != Some(value.len()) {
        n += 1;
        tag = format!("$pgwarm{n}$");
    }
    format!("{tag}{value}{tag}")
}

fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> SessionSettings {
        SessionSettings::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn only_the_difference_is_applied() {
        let want = settings(&[("TimeZone", "UTC"), ("application_name", "a")]);
        let have = settings(&[("timezone", "UTC"), ("search_path", "x")]);
        let sql = want.apply_sql(&have).unwrap();
        assert_eq!(
            sql,
            "select pg_catalog.set_config($pgwarm$application_name$pgwarm$, $pgwarm$a$pgwarm$, false);\
             reset \"search_path\";"
        );
        assert_eq!(want.apply_sql(&want.clone()), None);
        assert_eq!(
            SessionSettings::default().apply_sql(&SessionSettings::default()),
            None
        );
    }

    #[test]
    fn equal_settings_come_to_share_one_map() {
        let mut a = settings(&[("timezone", "UTC")]);
        let mut b = settings(&[("TimeZone", "UTC")]);
        let mut c = settings(&[("timezone", "UTC")]);
        let mut other = settings(&[("timezone", "Europe/Paris")]);
        assert!(!a.same_as(&mut other));
        assert!(
            !Arc::ptr_eq(&a.0, &other.0),
            "different settings keep their own"
        );
        assert!(a.same_as(&mut b));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert!(c.same_as(&mut b));
        assert!(a.same_as(&mut c));
        assert!(
            Arc::ptr_eq(&a.0, &c.0) && Arc::ptr_eq(&b.0, &c.0),
            "all three hold the one at the lowest address"
        );
    }

    #[test]
    fn read_settings_override_startup_ones() {
        let startup = settings(&[("timezone", "Pacific/Auckland"), ("datestyle", "SQL")]);
        let read = settings(&[("datestyle", "ISO"), ("search_path", "x")]);
        let merged = read.over(&startup);
        let merged: Vec<_> = merged.iter().collect();
        assert_eq!(
            merged,
            [
                ("datestyle", "ISO"),
                ("search_path", "x"),
                ("timezone", "Pacific/Auckland")
            ]
        );
    }

    #[test]
    fn literals_cannot_be_escaped_from() {
        assert_eq!(literal("it's"), "$pgwarm$it's$pgwarm$");
        assert_eq!(literal("a$pgwarm$b"), "$pgwarm1$a$pgwarm$b$pgwarm1$");
        // A value ending in "$pgwarm" would merge with the closing tag.
        assert_eq!(literal("x$pgwarm"), "$pgwarm1$x$pgwarm$pgwarm1$");
        assert_eq!(identifier("we\"ird"), "\"we\"\"ird\"");
    }
}
