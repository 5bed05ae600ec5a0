//! The example function's work, kept apart from how it is invoked: connect to pgwarm on
//! localhost, record a visit, and report the count and the time spent in the database.
//!
//! It is written the naive way many handlers are — a fresh connection per invocation, closed at
//! the end — because behind pgwarm that is cheap: the connection to 127.0.0.1 costs no TCP, TLS
//! or SCRAM to the real database. Statements are sent unnamed (`query_typed`): on a connection
//! that lives for one invocation, that is one round trip per statement where `prepare` + `query`
//! would be two. Named prepared statements (`client.prepare`, `client.query("...")`) work behind
//! pgwarm too, across server connections; they pay off on a connection that runs a statement
//! many times.

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
    pub fn to_json(&self) -> String {
        format!("{{\"visits\":{},\"db_ms\":{:.3}}}", self.visits, self.db_ms)
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
    client
        .query_typed(
            "INSERT INTO visits (source) VALUES ($1)",
            &[(&source, Type::TEXT)],
        )
        .await?;
    let row = client
        .query_typed("SELECT count(*) FROM visits", &[])
        .await?;
    let visits: i64 = row[0].get(0);
    drop(client);
    // The connection task ends once the client is gone and Terminate was written.
    let _ = driver.await;
    Ok(Visit {
        visits,
        db_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
