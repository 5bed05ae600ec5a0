//! Shared harness for pgwarm's end-to-end tests: real components, no mocks.
//!
//! - [`cluster`]: one throwaway PostgreSQL cluster per test binary (SCRAM on 127.0.0.1, a free
//!   port), with [`PgCluster::fresh_target`] giving every test its own role and database.
//! - [`Pgwarm`]: the real `pgwarm` binary in standalone mode, pointed at a [`Target`].
//! - [`Lambda`]: lambda-simulator driving pgwarm as an extension and `handler-example` as the
//!   function, with freeze and thaw; the `lambda-run` binary (`src/bin/lambda-run.rs`) uses it
//!   for `scripts/demo.sh`.
//! - [`Pgbouncer`], [`Moto`]: real peers (PgBouncer for chaining, moto_server as Secrets Manager).
//! - [`DelayRelay`]: a TCP relay that puts a round-trip time between a client and a server.
//! - [`fleet`]: many environments against a database with few connection slots, directly, through
//!   pgwarm and through pgwarm + PgBouncer; the `fleet` binary runs it for `scripts/demo.sh`.
//! - [`FaultLoad`]: a bounded mixed client load that a fault (restart, terminated backends)
//!   hits while it runs, with every answer checked.
//! - [`show`], [`psql_csv`]: an admin console read by column name.
//! - [`run_python_case`]: psycopg scripts under `tests/py`, a real driver as the client.
//! - [`tool`]: external programs (psql, pgbench, pgbouncer, moto_server); a missing one is a test
//!   failure that names the package to install, never a silent skip.
//!
//! Everything here may panic: it is test code, and every panic says what failed and shows the
//! captured output or log.

mod admin;
mod delay;
pub mod fleet;
mod lambda;
mod load;
mod peers;
mod pg;
mod pooler;
mod python;
mod tls;
mod tools;
mod wire;

pub use admin::{number, pools, psql_csv, show, wait_for_pool, AdminRow};
pub use delay::DelayRelay;
pub use lambda::{in_lambda, lambda_env, simulator, InitError, InitErrorProxy, Lambda};
pub use load::{is_killed_mid_statement, FaultLoad, LoadError, LoadReport};
pub use peers::{json_string, Moto, Pgbouncer};
pub use pg::{
    cluster, exchange_large_messages, io_runtime, quote_ident, quote_literal, server_bindir,
    simple_rows, try_server_bindir, PgCluster, Target,
};
pub use pooler::{find_pgwarm_bin, pgwarm_bin, workspace_bin, Pgwarm, PgwarmBuilder};
pub use python::run_python_case;
pub use tls::{
    client_config_without_checks, tls_verifying, tls_without_checks, SeenCertificates, TestCerts,
};
pub use tools::{
    as_postgres, chown_postgres, free_port, is_root, output_with_timeout, package_hint, pgbench,
    pgbench_processed, poll_until, port_is_listening, process_state, random_hex, rss_kib, run_ok,
    send_signal, tool, try_tool, wait_timeout, TempDir,
};
pub use wire::{
    error_fields as wire_error, raw_message, send_cancel, sqlstate, Batch, Reply, Wire, WireError,
};
