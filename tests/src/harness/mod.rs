//! The tests' harness: real components, no mocks. The end-to-end tests use it (through the
//! crate's root), and so do the drivers.
//!
//! - [`cluster`]: one throwaway PostgreSQL cluster per test binary (SCRAM on 127.0.0.1, a free
//!   port), with [`PgCluster::fresh_target`] giving every test its own role and database.
//! - [`Pgwarm`]: the real `pgwarm` binary in standalone mode, pointed at a [`Target`].
//! - [`Lambda`]: lambda-simulator driving pgwarm as an extension and `handler-example` as the
//!   function, with freeze and thaw.
//! - [`Pgbouncer`], [`Haproxy`], [`Moto`]: real peers (PgBouncer for chaining and comparison,
//!   HAProxy as a plain TCP relay, moto_server as Secrets Manager).
//! - [`DelayRelay`]: a TCP relay that puts a round-trip time between a client and a server.
//! - [`FaultLoad`]: a bounded mixed client load that a fault (restart, terminated backends)
//!   hits while it runs, with every answer checked.
//! - [`Wire`]: the wire protocol by hand, for what a driver library would not send.
//! - [`TestCerts`], [`tls_verifying`], [`negotiated_tls`]: TLS from a throwaway CA.
//! - [`show`], [`psql_csv`]: an admin console read by column name.
//! - [`run_python_case`]: psycopg scripts under `tests/py`, a real driver as the client
//!   ([`require_psycopg`] checks it is there, [`python_script`] finds a script).
//! - [`tool`]: external programs (psql, pgbench, pgbouncer, moto_server); a missing one is a test
//!   failure that names the package to install, never a silent skip.
//!
//! Everything here may panic: it is test code, and every panic says what failed and shows the
//! captured output or log.

mod admin;
mod delay;
mod emf;
mod lambda;
mod load;
mod peers;
mod pg;
mod pooler;
pub(crate) mod process_groups;
mod python;
mod tls;
mod tools;
mod wire;

pub use admin::{number, pools, psql_csv, show, wait_for_pool, AdminRow};
pub use delay::DelayRelay;
pub use emf::{emf_lines, emf_sum};
pub use lambda::{
    in_lambda, lambda_env, simulator, InitError, InitErrorProxy, Invoked, Lambda, TestRuntime,
};
pub use load::{is_killed_mid_statement, FaultLoad, LoadError, LoadReport};
pub use peers::{json_string, Haproxy, Moto, Pgbouncer};
pub use pg::{
    cluster, exchange_large_messages, io_runtime, quote_ident, quote_literal, server_bindir,
    simple_rows, try_server_bindir, PgCluster, Target,
};
pub use pooler::{
    find_pgwarm_bin, find_workspace_bin, pgwarm_bin, target_dir, workspace_bin, Pgwarm,
    PgwarmBuilder,
};
pub use python::{python_script, require_psycopg, run_python_case};
pub use tls::{
    client_config_without_checks, negotiated_tls, tls_verifying, tls_without_checks,
    SeenCertificates, TestCerts,
};
pub use tools::{
    as_postgres, chown_postgres, first_line_of, free_port, is_root, output_noting_timeout,
    output_with_timeout, package_hint, parse_proc_stat, pgbench, pgbench_command,
    pgbench_processed, poll_until, port_is_listening, proc_stat, process_state, random_hex,
    rss_kib, run_ok, send_signal, tool, try_tool, wait_timeout, ProcStat, TempDir,
};
pub use wire::{
    error_fields as wire_error, raw_message, send_cancel, sqlstate, Batch, Reply, Wire, WireError,
};
