//! `demo`: the demo behind `scripts/demo.sh`, on the tests' harness. A real PostgreSQL,
//! lambda-simulator playing Lambda, pgwarm as the extension and `handler-example` as the
//! function, then the fleet; a report a person reads in a minute.
//!
//! ```text
//! demo [--keep] [--out DIR]
//! ```
//! 1. A throwaway PostgreSQL cluster on a free port on 127.0.0.1 (SCRAM), with role `app` (a
//!    random password) and database `app`, and moto_server (the Secrets Manager emulator pgwarm's
//!    real AWS SDK reaches through `AWS_ENDPOINT_URL`) with the secret `demo/app-db` holding
//!    that login in RDS's JSON. The handler never sees the database password.
//! 2. pgwarm's start-up as an extension, `DEMO_STARTUP_RUNS` times, each under a fresh
//!    simulator: exec to listening and exec to registered.
//! 3. The handler through pgwarm (pool size 2): `DEMO_INVOCATIONS` invocations, each on a fresh
//!    connection (connect, record a visit, count, close), each timed from the event to the
//!    result. The environment is frozen (SIGSTOP) between invocations and thawed for the next.
//! 4. The thaw check: while the environment is frozen, the database terminates every backend of
//!    `app`; the invocation after the thaw must not notice.
//! 5. SHUTDOWN: pgwarm must exit within Lambda's 2 s and leave no backend behind.
//! 6. The same handler without pgwarm, straight to PostgreSQL (a SCRAM login each time).
//! 7. The fleet ([`pgwarm_tests::drivers::fleet`]): `DEMO_FLEET_ENVIRONMENTS` environments,
//!    each under lambda-simulator and frozen between its invocations, against a role limited to
//!    `DEMO_FLEET_SLOTS` connections, invoked `DEMO_FLEET_BURST` at a time, `DEMO_FLEET_BURSTS`
//!    times, with a 6 s function timeout; the handler connects, queries inside a transaction,
//!    commits and closes every time, and one invocation in ten leaks its connection inside the
//!    transaction. Directly, through pgwarm with its defaults, and through pgwarm (defaults,
//!    `PGWARM_UPSTREAM_POOLER=on`) chained to a central PgBouncer (pool 10). Its table goes into
//!    the report, its files and chart (`fleet-connections.svg`) into DIR (default `target/demo`).
//!
//! `--keep`: after the report, one environment stays up (pgwarm registered, the handler
//! running, not frozen) with the psql lines to reach it; Enter invokes the function once,
//! Ctrl-C sends SHUTDOWN and cleans up.
//!
//! Environment (each checked; a bad value is named, exit status 2):
//! ```text
//! DEMO_INVOCATIONS         invocations through pgwarm                  (default 50)
//! DEMO_DIRECT_INVOCATIONS  invocations straight to PostgreSQL          (default 50)
//! DEMO_FREEZE              on|off: freeze between invocations; off skips the thaw check (on)
//! DEMO_STARTUP_RUNS        pgwarm starts timed in step 2; 0 skips them  (default 10)
//! DEMO_FLEET_ENVIRONMENTS  environments in the fleet                   (default 60)
//! DEMO_FLEET_SLOTS         the fleet's role's connection limit         (default 20)
//! DEMO_FLEET_BURST         environments invoked at once                (default 30)
//! DEMO_FLEET_BURSTS        bursts                                      (default 12)
//! PGWARM_BIN, HANDLER_BIN  the binaries (default: the workspace's debug builds)
//! PGWARM_*                 passed through to pgwarm, except the ones the demo fixes: LISTEN,
//!                          SECRET_ID, SSLMODE (prefer), POOL_SIZE (2), LOG_LEVEL (info, and
//!                          debug for client logins). PGWARM_LOG_FORMAT defaults to text.
//! ```
//! Exit status 0 when every check passed, 1 when one failed (the report marks it FAILED), 2 for
//! bad usage, 130 when interrupted. Everything it started ends with it, on Ctrl-C too
//! ([`pgwarm_tests::drivers::children`]).
//!
//! The code is [`pgwarm_tests::drivers::demo`] (`src/drivers/demo/`), a module per step.

use std::process::ExitCode;

fn main() -> ExitCode {
    pgwarm_tests::drivers::demo::main()
}
