# The naive Lambda handler of bench-lambda, in Python with psycopg 3: on each line of stdin (one
# "invocation") it connects, runs SELECT 1, closes, and prints "ok <wall ms> <cpu ms>" (its own
# clocks around the work) or "err <message>". It prints "ready <versions>" once imported.
# BENCH_SSL is "default" (libpq's own: sslmode=prefer), "disable" or "require".
import os
import sys
import time

import psycopg

# The connection comes from libpq's variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
# PGCONNECT_TIMEOUT). One query, no transaction around it: the same wire work as node-postgres.
params = dict(autocommit=True)
if os.environ["BENCH_SSL"] != "default":
    params["sslmode"] = os.environ["BENCH_SSL"]

print(f"ready psycopg {psycopg.__version__} (libpq {psycopg.pq.version()})", flush=True)
for _ in sys.stdin:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        conn = psycopg.connect(**params)
        conn.execute("SELECT 1").fetchone()
        conn.close()
    except Exception as e:  # reported, the driver counts it
        print("err", str(e).replace("\n", " "), flush=True)
        continue
    wall = (time.perf_counter() - wall) * 1000
    cpu = (time.process_time() - cpu) * 1000
    print(f"ok {wall:.3f} {cpu:.3f}", flush=True)
