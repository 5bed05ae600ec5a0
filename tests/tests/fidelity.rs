//! Fidelity: what a real driver (psycopg 3, with its own libpq 17+) sees through pgwarm is what
//! it sees directly. Each case runs `tests/py/fidelity.py`, which where it can runs the same
//! steps against the database directly and compares.
//!
//! - statements whose parameter types the server infers, shared between clients: a schema per
//!   client, and a type that ROLLBACK TO SAVEPOINT removed (transaction mode, pool of one so
//!   both clients meet on one server connection);
//! - libpq's cancel over TLS ends with close_notify (both modes);
//! - startup values in the database's spelling, and refused at connect when it refuses them;
//! - the backend pid: the real one in session mode, and an own notification carries the pid the
//!   client was told in transaction mode.

use pgwarm_tests::*;

/// Transaction mode with one server connection, so clients meet on it; session mode with two,
/// as a client there holds one for its life. Client TLS as the case needs it.
fn pgwarm(db: &Target, mode: &str, client_tls: &str) -> Pgwarm {
    let size = if mode == "session" { "2" } else { "1" };
    Pgwarm::start(
        db,
        &[
            ("PGWARM_POOL_MODE", mode),
            ("PGWARM_POOL_SIZE", size),
            ("PGWARM_CLIENT_TLS", client_tls),
        ],
    )
}

fn case(mode: &str, name: &str) {
    let client_tls = if name == "cancel_tls" { "on" } else { "off" };
    let db = cluster().fresh_target();
    let pgwarm = pgwarm(&db, mode, client_tls);
    let out = run_python_case("fidelity.py", name, &pgwarm.target(), &db);
    eprintln!("{out}");
}

#[test]
fn untyped_statements_shared_between_clients_follow_each_clients_search_path() {
    case("transaction", "search_path");
}

#[test]
fn a_type_removed_by_rollback_to_savepoint_does_not_haunt_a_fresh_parse() {
    case("transaction", "rolled_back_type");
}

#[test]
fn a_cancel_over_tls_ends_with_close_notify_in_transaction_mode() {
    case("transaction", "cancel_tls");
}

#[test]
fn a_cancel_over_tls_ends_with_close_notify_in_session_mode() {
    case("session", "cancel_tls");
}

#[test]
fn startup_values_are_reported_and_refused_as_postgresql_does_in_transaction_mode() {
    case("transaction", "startup_values");
}

#[test]
fn startup_values_are_reported_and_refused_as_postgresql_does_in_session_mode() {
    case("session", "startup_values");
}

#[test]
fn session_mode_tells_the_client_its_real_backend_pid() {
    case("session", "session_pid");
}

#[test]
fn transaction_mode_own_notifications_carry_the_pid_the_client_was_told() {
    case("transaction", "transaction_notify");
}
