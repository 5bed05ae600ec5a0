"""What psycopg sees through pgwarm, compared with what it sees directly.

Run by tests/tests/fidelity.rs as `python3 fidelity.py CASE`, with PGWARM_DSN (pgwarm) and
DIRECT_DSN (the same database, directly) in the environment. Each case prints what it checked and
exits non-zero with the difference when pgwarm is not invisible. Where a case can, it runs the
same steps directly too and compares, so the expectation is PostgreSQL's own answer, not ours.
"""

import os
import sys
import threading
import time

import psycopg
from psycopg import errors, sql

PGWARM = os.environ["PGWARM_DSN"]
DIRECT = os.environ["DIRECT_DSN"]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def connect(dsn, **kwargs):
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10, **kwargs)


def untyped_statements_follow_the_search_path():
    """Two schemas, one table name, two column types; the same untyped INSERT from two clients,
    each in its own schema, prepared server-side (prepare=True)."""
    with connect(DIRECT) as setup:
        setup.execute(
            "drop schema if exists sa cascade; drop schema if exists sb cascade;"
            "create schema sa; create schema sb;"
            "create table sa.t(c int); create table sb.t(c text)"
        )
    for dsn in (DIRECT, PGWARM):
        # A by startup option, B by SET: both ways a driver sets a schema.
        with connect(dsn, options="-c search_path=sa") as a, connect(dsn) as b:
            a.execute("insert into t(c) values (%s)", ["5"], prepare=True)
            b.execute("set search_path = sb")
            b.execute("insert into t(c) values (%s)", ["hello"], prepare=True)
            a.execute("insert into t(c) values (%s)", ["6"], prepare=True)
            b.execute("insert into t(c) values (%s)", ["world"], prepare=True)
    with connect(DIRECT) as check_conn:
        ints = check_conn.execute("select count(*) from sa.t").fetchone()[0]
        texts = check_conn.execute("select count(*) from sb.t").fetchone()[0]
    check((ints, texts) == (4, 4), f"rows per schema {ints}, {texts}; expected 4, 4")
    print("untyped INSERTs in two schemas: all succeeded, directly and through pgwarm")


def a_rolled_back_type_does_not_haunt_later_parses():
    """A statement prepared while a type existed that ROLLBACK TO SAVEPOINT removed; then the
    type is made again, and the client (and another) prepares the same SQL anew."""
    for dsn in (DIRECT, PGWARM):
        with connect(DIRECT) as setup:
            setup.execute("drop table if exists tm; drop type if exists mood")
        with connect(dsn) as a:
            with a.transaction():
                a.execute("savepoint s")
                a.execute("create type mood as enum ('happy', 'sad')")
                a.execute("create table tm(m mood)")
                a.execute("insert into tm values (%s)", ["happy"], prepare=True)
                a.execute("rollback to savepoint s")
            a.execute("create type mood as enum ('happy', 'sad')")
            a.execute("create table tm(m mood)")
            # Another client's first Parse of the same SQL, then the first client's own after
            # DEALLOCATE ALL: both mean the type as it is now.
            with connect(dsn) as b:
                b.execute("insert into tm values (%s)", ["happy"], prepare=True)
                b.execute("insert into tm values (%s)", ["sad"], prepare=True)
            a.execute("deallocate all")
            a.execute("insert into tm values (%s)", ["sad"], prepare=True)
            n = a.execute("select count(*) from tm").fetchone()[0]
            check(n == 3, f"{dsn_name(dsn)}: {n} rows in tm, expected 3")
    print("a type dropped by ROLLBACK TO SAVEPOINT: the fresh Parse works, directly and through pgwarm")


def a_cancel_over_tls_ends_cleanly():
    """libpq 17+'s PQcancelBlocking (cancel_safe) over TLS: the query is cancelled and the
    cancel connection ends with close_notify, so the driver raises nothing."""
    check(psycopg.pq.version() >= 170000, f"libpq {psycopg.pq.version()} has no cancel_safe over TLS")
    with connect(PGWARM, sslmode="require") as conn:
        check(conn.pgconn.ssl_in_use, "the connection to pgwarm is not encrypted")
        outcome = {}

        def sleeper():
            try:
                conn.execute("select pg_sleep(20)")
                outcome["result"] = "finished"
            except errors.QueryCanceled:
                outcome["result"] = "cancelled"
            except Exception as e:  # noqa: BLE001 - reported below
                outcome["result"] = repr(e)

        thread = threading.Thread(target=sleeper)
        started = time.monotonic()
        thread.start()
        time.sleep(0.5)
        conn.cancel_safe(timeout=10)
        thread.join(20)
        check(outcome.get("result") == "cancelled", f"the query was not cancelled: {outcome}")
        check(time.monotonic() - started < 10, "the cancel took too long")
        check(conn.execute("select 1").fetchone()[0] == 1, "the connection is unusable after the cancel")
    print("cancel_safe over TLS: cancelled, no SSL error")


def startup_values_are_spelled_and_checked_by_the_database():
    """ParameterStatus at login in the database's spelling; bad values refused at connect;
    a startup DateStyle over a database default, as at a real login."""
    with connect(DIRECT) as setup:
        db = setup.info.dbname
        setup.execute(sql.SQL("alter database {} set datestyle = 'SQL, DMY'").format(sql.Identifier(db)))
    cases = [
        ({"client_encoding": "eucjp"}, "client_encoding"),
        ({"options": "-c DateStyle=iso,dmy"}, "DateStyle"),
        ({"options": "-c TimeZone=utc"}, "TimeZone"),
        ({"options": "-c DateStyle=ISO"}, "DateStyle"),
        ({"options": "-c IntervalStyle=SQL_standard"}, "IntervalStyle"),
        ({}, "DateStyle"),
    ]
    for kwargs, param in cases:
        seen = {}
        for dsn in (DIRECT, PGWARM):
            with connect(dsn, **kwargs) as conn:
                reported = conn.info.parameter_status(param)
                shown = conn.execute(sql.SQL("show {}").format(sql.Identifier(param.lower()))).fetchone()[0]
                seen[dsn_name(dsn)] = (reported, shown)
        check(seen["direct"] == seen["pgwarm"], f"{kwargs}: direct {seen['direct']}, pgwarm {seen['pgwarm']}")
        print(f"{kwargs} -> {param} {seen['pgwarm'][0]!r}, as directly")
    bad = [
        {"client_encoding": "bogus"},
        {"options": "-c DateStyle=bogus"},
        {"options": "-c TimeZone=Mars/Base"},
        {"options": "-c no_such_setting=1"},
    ]
    for kwargs in bad:
        seen = {}
        for dsn in (DIRECT, PGWARM):
            try:
                with connect(dsn, **kwargs):
                    seen[dsn_name(dsn)] = "connected"
            except psycopg.OperationalError as e:
                seen[dsn_name(dsn)] = first_line(str(e))
        check(seen["pgwarm"] != "connected", f"{kwargs}: pgwarm accepted the login")
        check(
            seen["direct"].endswith(seen["pgwarm"].split("FATAL:", 1)[-1].strip()),
            f"{kwargs}: direct said {seen['direct']!r}, pgwarm {seen['pgwarm']!r}",
        )
        print(f"{kwargs} -> refused at connect: {seen['pgwarm']}")


def the_backend_pid_is_the_clients_own():
    """Session mode: the pid the client is told is its backend's, so pg_terminate_backend and
    "is this my own notification?" work as directly."""
    with connect(PGWARM) as conn, connect(PGWARM) as other:
        told = conn.info.backend_pid
        real = conn.execute("select pg_backend_pid()").fetchone()[0]
        check(told == real, f"told pid {told}, pg_backend_pid() {real}")
        own_notification_carries(conn, told)
        killed = other.execute("select pg_terminate_backend(%s)", [told]).fetchone()[0]
        check(killed, "pg_terminate_backend(conn.info.backend_pid) reached no backend")
        try:
            conn.execute("select 1")
            fail("the terminated session still answers")
        except psycopg.OperationalError:
            pass
    print("session mode: backend_pid is the real one; own notifications and pg_terminate_backend agree")


def own_notifications_carry_the_told_pid():
    """Transaction mode: a notification from the client's own backend carries the pid the
    client was told (pool of one, so LISTEN and NOTIFY meet on one backend)."""
    with connect(PGWARM) as conn:
        told = conn.info.backend_pid
        own_notification_carries(conn, told)
    print("transaction mode: an own notification carries the pid the client was told")


def own_notification_carries(conn, told):
    got = []
    conn.add_notify_handler(got.append)
    conn.execute("listen pgwarm_fidelity")
    conn.execute("notify pgwarm_fidelity, 'hello'")
    conn.execute("unlisten pgwarm_fidelity")
    check(len(got) == 1, f"expected one notification, got {got}")
    check(got[0].pid == told, f"notification pid {got[0].pid}, told pid {told}")


def prepared_statements_from_many_clients():
    """psycopg with prepare_threshold=0 (every query a named statement) from five clients at
    once, each checking every answer. Run through pgwarm in front of another transaction
    pooler, which keeps no statement beyond a transaction."""
    failures = []

    def worker(k):
        try:
            with connect(PGWARM, prepare_threshold=0) as conn:
                for i in range(40):
                    got = conn.execute("select %s::int * %s::int", [i, k]).fetchone()[0]
                    if got != i * k:
                        failures.append(f"client {k}: {got} != {i * k}")
                    with conn.transaction():
                        level = conn.execute("show transaction_isolation").fetchone()[0]
                        if level != "read committed":
                            failures.append(f"client {k}: isolation {level}")
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not failures, f"{len(failures)} failures: {failures[:5]}")
    with connect(PGWARM) as conn:
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        conn.autocommit = False
        level = conn.execute("show transaction_isolation").fetchone()[0]
        conn.commit()
        check(level == "serializable", f"SET isolation gave {level}")
    print("5 clients x 40 named statements and transactions, SET isolation: no error")


def dsn_name(dsn):
    return "direct" if dsn == DIRECT else "pgwarm"


def first_line(text):
    return text.strip().splitlines()[0] if text.strip() else text


CASES = {
    "search_path": untyped_statements_follow_the_search_path,
    "rolled_back_type": a_rolled_back_type_does_not_haunt_later_parses,
    "cancel_tls": a_cancel_over_tls_ends_cleanly,
    "startup_values": startup_values_are_spelled_and_checked_by_the_database,
    "session_pid": the_backend_pid_is_the_clients_own,
    "transaction_notify": own_notifications_carry_the_told_pid,
    "many_prepared": prepared_statements_from_many_clients,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: fidelity.py {{{','.join(CASES)}}}")
    CASES[sys.argv[1]]()
