"""One failover under a client load, as an application using psycopg (libpq) sees it.

Run by the `failover` driver (tests/src/drivers/failover/), once per way of connecting: through
pgwarm, directly with libpq's host list and target_session_attrs=read-write, or through
PgBouncer. The client code is the same for every way; only FAILOVER_DSN differs, so the
comparison is of what sits between the clients and the database.

Environment:
  FAILOVER_DSN      where the clients connect (a libpq connection string)
  CHECK_DSN         the new primary, directly: where the committed rows are counted at the end
  FAILOVER_TABLE    a table (id bigint, client int) the transactions insert into
  FAILOVER_CLIENTS  how many client threads
  FAILOVER_WINDOW   seconds the load goes on after the promotion was asked for
  FAILOVER_BACKOFF_MS  pause before each connect that follows an error
  PRIMARY_PORT, STANDBY_PORT  the servers' ports, named in the error messages instead

Protocol (stdout, one line each): `ready` once every client has had one operation succeed; then
the driver stops the primary, asks for the promotion and writes `promoted NS` on stdin, NS being
CLOCK_MONOTONIC in nanoseconds when it asked (Python's time.monotonic_ns reads the same clock);
the load goes on until NS + FAILOVER_WINDOW, the clients are stopped and the last line is one
JSON object with what they saw. Every wait is bounded: a client still inside an operation
5 s after the end is counted as unfinished and left (daemon threads; the process exits).

Each client connects with autocommit and prepare_threshold=None (no named statements: PgBouncer
1.18 in transaction mode cannot keep them). Three of four clients alternate a simple-protocol
SELECT (no parameters: psycopg sends a Query message) and a parameterised SELECT (extended
protocol, unnamed statement); every fourth runs BEGIN; INSERT (a unique id); COMMIT, and records
the ids whose COMMIT succeeded. A client whose connection is gone connects again, and waits
FAILOVER_BACKOFF_MS before each such attempt; a failed connect is an error outside a
transaction.
"""

import json
import os
import re
import sys
import threading
import time
from collections import Counter

import psycopg

DSN = os.environ["FAILOVER_DSN"]
CHECK_DSN = os.environ["CHECK_DSN"]
TABLE = os.environ["FAILOVER_TABLE"]
CLIENTS = int(os.environ["FAILOVER_CLIENTS"])
WINDOW_NS = int(float(os.environ["FAILOVER_WINDOW"]) * 1e9)
BACKOFF = int(os.environ["FAILOVER_BACKOFF_MS"]) / 1000
# Pause between two operations of one client (as the Rust FaultLoad's).
THINK = 0.003
# How long the clients may take to have one operation each, and the driver to send `promoted`.
READY_LIMIT = 30
PROMOTED_LIMIT = 120
# How long the clients have to stop once the window is over.
STOP_LIMIT = 5
PORT_NAMES = {
    os.environ["PRIMARY_PORT"]: "the primary",
    os.environ["STANDBY_PORT"]: "the standby",
}
# Ids are client * ID_STEP + the client's attempt number: unique across clients and attempts.
ID_STEP = 10_000_000


class Shared:
    """What every client records, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = 0
        self.wrong = []
        # (in a transaction, where, message) -> count
        self.errors = Counter()
        # clients that saw an error outside a transaction
        self.erred = set()
        self.error_times = []
        # (monotonic ns, was a write) of every success
        self.successes = []
        self.committed = []
        self.in_doubt = []
        self.ready = set()

    def success(self, client, write):
        now = time.monotonic_ns()
        with self.lock:
            self.ops += 1
            self.successes.append((now, write))
            self.ready.add(client)

    def error(self, client, in_transaction, where, error):
        message = short_message(error)
        with self.lock:
            self.errors[(in_transaction, where, message)] += 1
            if not in_transaction:
                self.erred.add(client)
            self.error_times.append(time.monotonic_ns())


def short_message(error):
    """The error's text on one line, each server named rather than by its port (so that the
    same error counts as one kind across runs), libpq's per-host connect failures shortened."""
    text = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = re.sub(r"- host: '[^']*', port: '\d+', hostaddr: '[^']*': connection failed: ", "", text)
    text = re.sub(
        r'connection to server at "[^"]*", port (\d+) failed: ',
        lambda m: f"{PORT_NAMES.get(m.group(1), 'port ' + m.group(1))}: ",
        text,
    )
    return text[:400]


class Inside(Exception):
    """An error between BEGIN and the end of COMMIT."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def connect():
    return psycopg.connect(DSN, autocommit=True, prepare_threshold=None)


def one_statement(conn, n):
    """A simple-protocol SELECT or a parameterised one, in turn; the answer checked."""
    if n % 2 == 0:
        got = conn.execute(f"select {n} + 1").fetchone()[0]
        want = n + 1
    else:
        got = conn.execute("select %s::int + 2", [n]).fetchone()[0]
        want = n + 2
    return got, want


def transaction(conn, client, n, shared):
    """BEGIN; INSERT a unique id; COMMIT. The id is recorded as committed only once COMMIT
    succeeded, and as in doubt when COMMIT itself failed (it may or may not have committed)."""
    row_id = client * ID_STEP + n
    conn.execute("begin")
    try:
        conn.execute(f"insert into {TABLE}(id, client) values (%s, %s)", [row_id, client])
    except psycopg.Error as e:
        raise Inside(e) from e
    try:
        conn.execute("commit")
    except psycopg.Error as e:
        with shared.lock:
            shared.in_doubt.append(row_id)
        raise Inside(e) from e
    with shared.lock:
        shared.committed.append(row_id)


def close_quietly(conn):
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is gone anyway
            pass


def client_loop(client, shared, stop):
    transactional = client % 4 == 0
    conn = None
    first = True
    n = 0
    while not stop.is_set():
        if conn is None or conn.closed or conn.broken:
            close_quietly(conn)
            conn = None
            # Every connect but the first comes after an error: a short pause before it.
            if not first and stop.wait(BACKOFF):
                break
            first = False
            try:
                conn = connect()
            except psycopg.Error as e:
                shared.error(client, False, "connect", e)
                continue
        n += 1
        try:
            if transactional:
                transaction(conn, client, n, shared)
                shared.success(client, True)
            else:
                got, want = one_statement(conn, n)
                shared.success(client, False)
                if got != want:
                    with shared.lock:
                        shared.wrong.append(f"client {client}: got {got}, expected {want}")
        except Inside as e:
            shared.error(client, True, "transaction", e.error)
            if not (conn.closed or conn.broken):
                try:
                    conn.execute("rollback")
                except psycopg.Error:
                    close_quietly(conn)
        except psycopg.Error as e:
            shared.error(client, False, "statement", e)
        stop.wait(THINK)
    close_quietly(conn)


def count_rows(shared):
    """Lost (committed, not there), doubled (there more than once) and unexpected (there, never
    acknowledged nor in doubt) rows, counted on the new primary."""
    with psycopg.connect(CHECK_DSN, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(f"select id, count(*) from {TABLE} group by id").fetchall()
    present = dict(rows)
    committed = set(shared.committed)
    in_doubt = set(shared.in_doubt)
    return {
        "committed": len(committed),
        "in_doubt": len(in_doubt),
        "rows": sum(present.values()),
        "lost": sum(1 for i in committed if i not in present),
        "doubled": sum(1 for c in present.values() if c > 1),
        "unexpected": sum(1 for i in present if i not in committed and i not in in_doubt),
    }


def first_after(times, t):
    after = [s for s in times if s >= t]
    return (min(after) - t) / 1e6 if after else None


def main():
    shared = Shared()
    stop = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(c, shared, stop), daemon=True)
        for c in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + READY_LIMIT
    while len(shared.ready) < CLIENTS:
        if time.monotonic() > deadline:
            stop.set()
            print(
                f"failover.py: only {len(shared.ready)} of {CLIENTS} clients had an operation "
                f"succeed within {READY_LIMIT} s; errors: {dict(shared.errors)}",
                file=sys.stderr,
            )
            sys.exit(3)
        time.sleep(0.01)
    print("ready", flush=True)

    result = {}

    def read_promoted():
        line = sys.stdin.readline().split()
        if len(line) == 2 and line[0] == "promoted":
            result["promoted"] = int(line[1])

    reader = threading.Thread(target=read_promoted, daemon=True)
    reader.start()
    reader.join(PROMOTED_LIMIT)
    if "promoted" not in result:
        stop.set()
        print(f"failover.py: no `promoted NS` line within {PROMOTED_LIMIT} s", file=sys.stderr)
        sys.exit(3)
    promoted = result["promoted"]
    end = promoted + WINDOW_NS
    while time.monotonic_ns() < end:
        time.sleep(min(0.05, max(0, (end - time.monotonic_ns()) / 1e9)))
    stop.set()
    stop_deadline = time.monotonic() + STOP_LIMIT
    for t in threads:
        t.join(max(0, stop_deadline - time.monotonic()))
    unfinished = sum(1 for t in threads if t.is_alive())

    with shared.lock:
        successes = list(shared.successes)
        errors = shared.errors.copy()
        error_times = list(shared.error_times)
    check_error = None
    try:
        rows = count_rows(shared)
    except psycopg.Error as e:
        rows = None
        check_error = str(e).strip()
    kinds = [
        {"in_transaction": k[0], "where": k[1], "message": k[2], "count": c}
        for k, c in errors.most_common()
    ]
    print(
        json.dumps(
            {
                "client": f"psycopg {psycopg.__version__}, libpq {psycopg.pq.version()}",
                "ops": shared.ops,
                "ops_after": sum(1 for s, _ in successes if s >= promoted),
                "wrong": shared.wrong[:5],
                "wrong_count": len(shared.wrong),
                "errors": kinds,
                "clients_with_errors": len(shared.erred),
                "first_op_ms": first_after([s for s, _ in successes], promoted),
                "first_write_ms": first_after([s for s, w in successes if w], promoted),
                "last_error_ms": (
                    (max(error_times) - promoted) / 1e6 if error_times else None
                ),
                "unfinished": unfinished,
                "rows": rows,
                "check_error": check_error,
            }
        ),
        flush=True,
    )
    # Clients still inside an operation are daemon threads: leave them.
    os._exit(0)


if __name__ == "__main__":
    main()
