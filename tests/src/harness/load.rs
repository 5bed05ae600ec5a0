//! A bounded client load that a fault (a restart, backends terminated) hits while it runs: the
//! bad-days tests' driver. Each client mixes simple, extended (unnamed) and named statements,
//! and every fourth runs explicit transactions that insert rows; every answer is checked, every
//! operation has a time limit, and each error is recorded with whether the client was inside a
//! transaction when it came.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::pg::Target;

/// One operation longer than this is a hang.
const OP_LIMIT: Duration = Duration::from_secs(10);
/// Pause between two operations of one client.
const THINK: Duration = Duration::from_millis(3);

/// What a client saw go wrong.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub client: usize,
    /// The client was between BEGIN and COMMIT.
    pub in_transaction: bool,
    pub message: String,
    pub at: Instant,
}

/// What the load saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub ops: u64,
    pub errors: Vec<LoadError>,
    /// Answers that were not what the query asks for.
    pub wrong_results: Vec<String>,
    /// Operations that did not finish within the limit.
    pub hangs: Vec<String>,
    /// Per transactional client: (COMMITs acknowledged, COMMITs that failed).
    pub commits: Vec<(usize, u64, u64)>,
    /// Successful operations, by time (for when service came back).
    pub successes: Vec<Instant>,
    /// How long after the database took logins again a query succeeded, when the caller
    /// measured it.
    pub recovery: Option<Duration>,
}

impl LoadReport {
    /// Errors outside a transaction that are not a statement killed while it ran.
    pub fn unexplained_errors(&self) -> Vec<&LoadError> {
        self.errors
            .iter()
            .filter(|e| !e.in_transaction && !is_killed_mid_statement(&e.message))
            .collect()
    }

    /// What every fault test asks of the load: no hang, no wrong answer, no lost or doubled
    /// commit (checked in `db`'s `bad_days`), and outside transactions no error but a statement
    /// the database killed while it ran, at most one per server connection (`pool_size`).
    /// `log` (pgwarm's) is shown when something is off.
    pub fn check(&self, db: &Target, pool_size: usize, log: &str) {
        assert!(self.hangs.is_empty(), "hangs: {:?}\n{log}", self.hangs);
        assert!(
            self.wrong_results.is_empty(),
            "wrong results: {:?}",
            self.wrong_results
        );
        let unexplained = self.unexplained_errors();
        assert!(
            unexplained.is_empty(),
            "errors outside a transaction: {unexplained:#?}\n{log}"
        );
        let killed: Vec<&LoadError> = self.errors.iter().filter(|e| !e.in_transaction).collect();
        assert!(
            killed.len() <= pool_size,
            "{} statements killed mid-run, more than the {pool_size} server connections: \
             {killed:#?}\n{log}",
            killed.len()
        );
        for (client, ok, failed) in &self.commits {
            let rows: u64 = db
                .psql_ok(&format!(
                    "select count(*) from bad_days where client = {client}"
                ))
                .parse()
                .expect("a count");
            assert!(
                rows >= *ok && rows <= ok + failed,
                "client {client}: {rows} rows for {ok} acknowledged and {failed} failed commits"
            );
        }
        assert!(self.ops > 100, "the load ran: {} operations", self.ops);
    }

    /// The first success at or after `t`.
    pub fn first_success_after(&self, t: Instant) -> Option<Instant> {
        self.successes.iter().copied().filter(|s| *s >= t).min()
    }
}

/// The database terminated the backend while the client's statement ran on it: the statement
/// was aborted, and whether running it again is safe only the client knows (PostgreSQL reports
/// it the same way). pgwarm says so with FATAL 08006; when the backend died half-way through an
/// answer, pgwarm can only close the client, which tokio-postgres reports as "connection closed"
/// and libpq as "server closed the connection unexpectedly".
pub fn is_killed_mid_statement(message: &str) -> bool {
    message.contains("server connection lost")
        || message.contains("terminating connection due to administrator command")
        || message.contains("kind: Closed")
        || message.contains("server closed the connection unexpectedly")
}

#[derive(Default)]
struct Shared {
    report: Mutex<LoadReport>,
}

impl Shared {
    fn with(&self, f: impl FnOnce(&mut LoadReport)) {
        f(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A load: how many clients, how long before and after the fault, and whether the clients use
/// named statements (a pooler that cannot keep them, such as PgBouncer 1.18 in transaction
/// mode, is compared with unnamed ones only).
#[derive(Debug, Clone)]
pub struct FaultLoad {
    pub clients: usize,
    pub warmup: Duration,
    pub after: Duration,
    pub named_statements: bool,
}

impl FaultLoad {
    /// `clients` clients with named statements; the fault 1 s in, 1.5 s more after it.
    pub fn new(clients: usize) -> FaultLoad {
        FaultLoad {
            clients,
            warmup: Duration::from_secs(1),
            after: Duration::from_millis(1500),
            named_statements: true,
        }
    }

    /// Runs the clients against `target`, whose database must hold a table
    /// `bad_days(client int, n int)`; after the warm-up, runs `fault` on a blocking thread,
    /// keeps the load going a while more, then stops every client and returns what they saw.
    pub async fn run(&self, target: &Target, fault: impl FnOnce() + Send + 'static) -> LoadReport {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..self.clients {
            let (target, shared, stop) = (target.clone(), Arc::clone(&shared), Arc::clone(&stop));
            let named = self.named_statements;
            tasks.push(tokio::spawn(async move {
                client(c, named, target, shared, stop).await
            }));
        }
        tokio::time::sleep(self.warmup).await;
        tokio::task::spawn_blocking(fault)
            .await
            .expect("the fault panicked");
        tokio::time::sleep(self.after).await;
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            let stopped = tokio::time::timeout(OP_LIMIT * 2, task).await;
            assert!(stopped.is_ok(), "a load client did not stop");
        }
        let mut report = std::mem::take(&mut *shared.report.lock().unwrap());
        report.successes.sort();
        report
    }
}

async fn client(c: usize, named: bool, target: Target, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let transactional = c.is_multiple_of(4);
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut n: i32 = 0;
    'session: while !stop.load(Ordering::SeqCst) {
        let conn = match tokio::time::timeout(OP_LIMIT, target.try_connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                record_error(&shared, c, false, format!("connect: {e}"));
                tokio::time::sleep(THINK).await;
                continue;
            }
            Err(_) => {
                shared.with(|r| r.hangs.push(format!("client {c}: connect")));
                continue;
            }
        };
        let statement = if named {
            match conn.prepare("select $1::int + 1").await {
                Ok(statement) => Some(statement),
                Err(e) => {
                    record_error(&shared, c, false, format!("prepare: {e}"));
                    continue;
                }
            }
        } else {
            None
        };
        let named = statement.as_ref();
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let outcome = if transactional {
                let work = transaction(&conn, named, c, n, &mut ok, &mut failed);
                tokio::time::timeout(OP_LIMIT, work).await
            } else {
                let work = async { one_statement(&conn, named, n).await.map_err(|e| (false, e)) };
                tokio::time::timeout(OP_LIMIT, work).await
            };
            match outcome {
                Err(_) => {
                    shared.with(|r| r.hangs.push(format!("client {c}: operation {n}")));
                    continue 'session;
                }
                Ok(Err((in_transaction, e))) => {
                    record_error(&shared, c, in_transaction, format!("{e}: {e:?}"));
                    // A FATAL ends the session, even before tokio-postgres notices the close.
                    let fatal = e.as_db_error().is_some_and(|d| d.severity() == "FATAL");
                    if fatal || conn.is_closed() {
                        continue 'session;
                    }
                    if in_transaction {
                        let _ = conn.batch_execute("rollback").await;
                    }
                }
                Ok(Ok((got, want))) => shared.with(|r| {
                    r.ops += 1;
                    r.successes.push(Instant::now());
                    if got != want {
                        r.wrong_results
                            .push(format!("client {c}: got {got}, expected {want}"));
                    }
                }),
            }
            tokio::time::sleep(THINK).await;
        }
    }
    if transactional {
        shared.with(|r| r.commits.push((c, ok, failed)));
    }
}

type Outcome = Result<(i32, i32), (bool, tokio_postgres::Error)>;

/// BEGIN, an INSERT, a named statement, COMMIT: (what the statement returned, what it should
/// have), or the error with whether it came inside the transaction.
async fn transaction(
    conn: &tokio_postgres::Client,
    named: Option<&tokio_postgres::Statement>,
    c: usize,
    n: i32,
    ok: &mut u64,
    failed: &mut u64,
) -> Outcome {
    conn.batch_execute("begin").await.map_err(|e| (false, e))?;
    let inside = |e| (true, e);
    conn.execute(
        "insert into bad_days(client, n) values ($1, $2)",
        &[&(c as i32), &n],
    )
    .await
    .map_err(inside)?;
    let got: i32 = plus_one(conn, named, n).await.map_err(inside)?;
    match conn.batch_execute("commit").await {
        Ok(()) => *ok += 1,
        Err(e) => {
            *failed += 1;
            return Err(inside(e));
        }
    }
    Ok((got, n + 1))
}

/// One statement outside a transaction, in turn simple, extended (unnamed) and named.
async fn one_statement(
    conn: &tokio_postgres::Client,
    named: Option<&tokio_postgres::Statement>,
    n: i32,
) -> Result<(i32, i32), tokio_postgres::Error> {
    Ok(match n % 3 {
        0 => {
            let rows = conn.simple_query(&format!("select {n} + 1")).await?;
            let value = rows.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            });
            (value.unwrap_or(i32::MIN), n + 1)
        }
        1 => {
            let rows = conn
                .query_typed(
                    "select $1::int + 2",
                    &[(&n, tokio_postgres::types::Type::INT4)],
                )
                .await?;
            (rows[0].get(0), n + 2)
        }
        _ => (plus_one(conn, named, n).await?, n + 1),
    })
}

/// `n + 1` through the named statement, or an unnamed one when there is none.
async fn plus_one(
    conn: &tokio_postgres::Client,
    named: Option<&tokio_postgres::Statement>,
    n: i32,
) -> Result<i32, tokio_postgres::Error> {
    let row = match named {
        Some(statement) => conn.query_one(statement, &[&n]).await?,
        None => {
            let int4 = tokio_postgres::types::Type::INT4;
            conn.query_typed("select $1::int + 1", &[(&n, int4)])
                .await?
                .remove(0)
        }
    };
    Ok(row.get(0))
}

fn record_error(shared: &Shared, client: usize, in_transaction: bool, message: String) {
    shared.with(|r| {
        r.errors.push(LoadError {
            client,
            in_transaction,
            message,
            at: Instant::now(),
        })
    });
}
