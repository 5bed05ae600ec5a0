//! The example function's work, kept apart from how it is invoked: connect to pgwarm on
//! localhost, record a visit, and report the count and the time spent in the database.
//!
//! It is written the naive way many handlers are: a fresh connection per invocation, a prepared
//! statement, close at the end. Behind pgwarm that is cheap and safe: the connection to
//! 127.0.0.1 costs no TCP, TLS or SCRAM to the real database, and the named statement
//! tokio-postgres prepares follows the client to whichever server connection runs it (and after
//! the first invocation, pgwarm answers the Parse itself, without a round trip to the database).

use std::time::Instant;
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

/// Where the handler connects unless `DATABASE_URL` says otherwise.
pub const DEFAULT_DATABASE_URL: &str = "postgres://app@127.0.0.1:5432/app";

/// What one invocation returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    /// Visits recorded so far, this one included.
    pub visits: i64,
    /// Milliseconds from connecting to closing, as the handler saw them.
    pub db_ms: f64,
}

impl Visit {
    /// The invocation's result as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let db_ms = (self.db_ms * 1000.0).round() / 1000.0;
        serde_json::json!({ "visits": self.visits, "db_ms": db_ms })
    }
}

/// Records one visit from `source` and counts them all.
pub async fn record_visit(
    database_url: &str,
    source: &str,
) -> Result<Visit, tokio_postgres::Error> {
    let started = Instant::now();
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS visits (
                 id bigserial PRIMARY KEY,
                 source text NOT NULL,
                 at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    // The subquery sees the table as it was before this row, hence the + 1.
    let insert = client
        .prepare_typed(
            "INSERT INTO visits (source) VALUES ($1) RETURNING (SELECT count(*) FROM visits) + 1",
            &[Type::TEXT],
        )
        .await?;
    let row = client.query_one(&insert, &[&source]).await?;
    let visits: i64 = row.get(0);
    drop(client);
    // The connection task ends once the client is gone and Terminate was written.
    let _ = driver.await;
    Ok(Visit {
        visits,
        db_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
