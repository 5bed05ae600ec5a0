//! A result set the admin console builds and sends: named, typed columns and rows of text, in
//! the simple query protocol's messages. PgBouncer's columns are `int8` where they count and
//! `text` elsewhere, so tools that read them by type (tokio-postgres, psycopg) get numbers.

use crate::protocol::backend::{self, ColumnType};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) struct Table {
    columns: Vec<(&'static str, ColumnType)>,
    rows: Vec<Vec<Option<String>>>,
}

/// One value of a row, typed by what it is.
pub(super) enum Cell {
    Text(String),
    Int(i128),
    Null,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

macro_rules! int_cells {
    ($($t:ty),*) => {$(
        impl From<$t> for Cell {
            fn from(n: $t) -> Cell {
                Cell::Int(n as i128)
            }
        }
    )*};
}
int_cells!(u64, usize, i32, u32, i64, u16, bool);

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Cell {
        v.map_or(Cell::Null, Into::into)
    }
}

impl Table {
    /// A table with these columns: `int8` for the names in `ints`, `text` for the rest.
    pub(super) fn new(columns: &[&'static str], ints: &[&str]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|c| {
                    let ty = match ints.contains(c) {
                        true => ColumnType::Int8,
                        false => ColumnType::Text,
                    };
                    (*c, ty)
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub(super) fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::Text(s) => Some(s),
                    Cell::Int(n) => Some(n.to_string()),
                    Cell::Null => None,
                })
                .collect(),
        );
    }

    /// RowDescription, the rows, and CommandComplete with `tag`.
    pub(super) fn encode(&self, out: &mut BytesMut, tag: &str) {
        backend::row_description(out, &self.columns);
        for row in &self.rows {
            backend::data_row(out, row);
        }
        backend::command_complete(out, tag);
    }

    #[cfg(test)]
    pub(super) fn column(&self, name: &str) -> Vec<Option<String>> {
        let at = self.columns.iter().position(|(c, _)| *c == name);
        let at = at.expect("no such column");
        self.rows.iter().map(|r| r[at].clone()).collect()
    }
}

/// A wall-clock time as PgBouncer prints it: `2026-11-30 20:47:40 UTC`.
pub(super) fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An address split as PgBouncer's `addr` and `port` columns have it.
pub(super) fn addr_port(addr: Option<SocketAddr>) -> (Cell, Cell) {
    match addr {
        Some(a) => (Cell::Text(a.ip().to_string()), Cell::from(a.port())),
        None => (Cell::Null, Cell::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_984_060);
        assert_eq!(timestamp(t), "2026-11-29 20:27:40 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(leap), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn cells_keep_their_types() {
        let mut t = Table::new(&["name", "n"], &["n"]);
        t.row(vec!["a".into(), 3u64.into()]);
        t.row(vec![Cell::Null, Option::<u64>::None.into()]);
        assert_eq!(t.column("n"), [Some("3".to_owned()), None]);
        let mut out = BytesMut::new();
        t.encode(&mut out, "SHOW");
        assert_eq!(out[0], b'T');
    }
}
