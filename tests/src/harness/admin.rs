//! Reading an admin console (pgwarm's or PgBouncer's) the way people and tools do: rows by
//! column name through tokio-postgres' simple query protocol, or psql's CSV output with its
//! header.

use crate::harness::pg::{simple_query_rows, Target};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One row of a SHOW, by column name; NULL is "".
pub type AdminRow = BTreeMap<String, String>;

/// `SHOW <what>` through tokio-postgres (simple protocol, as the console requires).
pub async fn show(client: &tokio_postgres::Client, what: &str) -> Vec<AdminRow> {
    simple_query_rows(client, &format!("SHOW {what}"))
        .await
        .iter()
        .map(|r| {
            let names = r.columns().iter().map(|c| c.name().to_owned());
            let values = (0..r.len()).map(|i| r.get(i).unwrap_or("").to_owned());
            names.zip(values).collect()
        })
        .collect()
}

/// The one row of `SHOW POOLS` (pgwarm has one pool).
pub async fn pools(console: &tokio_postgres::Client) -> AdminRow {
    let mut rows = show(console, "POOLS").await;
    assert_eq!(rows.len(), 1, "one pool: {rows:?}");
    rows.remove(0)
}

/// Polls `SHOW POOLS` until `done` holds (10 s at most); returns that row.
pub async fn wait_for_pool(
    console: &tokio_postgres::Client,
    what: &str,
    done: impl Fn(&AdminRow) -> bool,
) -> AdminRow {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = pools(console).await;
        if done(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "waited 10 s for {what}: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A number from a row, panicking with the row when it is missing or not one.
pub fn number(row: &AdminRow, column: &str) -> i64 {
    row.get(column)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number in column {column} of {row:?}"))
}

/// `sql` through psql with `--csv` and a header: the column names, then the rows.
pub fn psql_csv(target: &Target, sql: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut cmd = target.psql_command();
    cmd.args(["--csv", "-P", "tuples_only=off", "-c", sql]);
    let out = crate::harness::tools::output_with_timeout(
        &mut cmd,
        None,
        std::time::Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records = parse_csv(&String::from_utf8_lossy(&out.stdout)).into_iter();
    let header = records.next().unwrap_or_default();
    (header, records.collect())
}

/// RFC 4180 as psql writes it: fields quoted when they hold a comma, quote or line break.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_as_psql_writes_it() {
        let rows = parse_csv("key,value\nA,\"x, y\"\nB,\"say \"\"hi\"\"\"\n");
        assert_eq!(rows[0], ["key", "value"]);
        assert_eq!(rows[1], ["A", "x, y"]);
        assert_eq!(rows[2], ["B", "say \"hi\""]);
    }
}
