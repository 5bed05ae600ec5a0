"""The Python half of scripts/driver-suites.sh: runs asyncpg's own test suite and compares runs.

  driver-suites.py run OUT.jsonl [TEST...]
      From asyncpg's source tree (the current directory), runs tests.suite() (what asyncpg's
      `make test` runs), or only the named tests (unittest names, e.g.
      tests.test_pool.TestPool.test_pool_01), against the server that PGHOST, PGPORT, PGUSER,
      PGPASSWORD and PGDATABASE name. One JSON line per test goes to OUT.jsonl as soon as it
      ends, so a run stopped by its time limit keeps what it did: id, outcome (passed, failed,
      error, skipped, expected-failure, unexpected-success), seconds, and for a failure or error
      the first line of the exception and its whole traceback (appended: the script runs the
      same tests several times into one file). Each test coroutine is bounded by
      DRIVER_SUITES_TEST_TIMEOUT seconds (default 120) through asyncpg's own TEST_TIMEOUT.

  driver-suites.py candidates DIR MODE...
      Prints the tests that failed in some MODE of DIR/MODE.jsonl but passed in the first (the
      reference, `direct`), one unittest name a line: the ones to run again.

  driver-suites.py report DIR MODE...
      Reads DIR/MODE.jsonl for each MODE (the first is the reference) and prints the totals per
      mode and, for each other mode, the tests that did not pass there but passed in the
      reference, each with the first line of its error and, when DIR/MODE-again.jsonl holds
      runs of it again, how many of those failed in this mode and in the reference.
"""

import asyncio
import json
import os
import sys
import time
import traceback
import unittest


def first_line(err):
    """The exception's own line (`Type: message`), first line only, at most 300 characters."""
    exc_type, exc, _ = err
    line = traceback.format_exception_only(exc_type, exc)[0].strip()
    line = line.splitlines()[0] if line else exc_type.__name__
    return line[:300]


class JsonResult(unittest.TextTestResult):
    def __init__(self, out, timeout, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out = out
        self.timeout = timeout
        self.started = {}

    def startTest(self, test):
        self.started[test.id()] = time.monotonic()
        super().startTest(test)

    def record(self, test, outcome, err=None, reason=None, subtest=None):
        began = self.started.get(test.id()) if subtest else self.started.pop(test.id(), None)
        row = {
            "id": test.id(),
            "outcome": outcome,
            "seconds": round(time.monotonic() - began, 3) if began else None,
        }
        if err is not None:
            row["error"] = first_line(err)
            row["traceback"] = "".join(traceback.format_exception(*err))
            # asyncpg's wrapper turns any asyncio.TimeoutError out of a test into "test timed out
            # after TEST_TIMEOUT seconds" (raise ... from None): name the test's own timeout.
            inner = err[1].__context__ if err[1] is not None else None
            if (
                row["error"].endswith("test timed out after {} seconds".format(self.timeout))
                and isinstance(inner, (TimeoutError, asyncio.TimeoutError))
                and row["seconds"] is not None
                and row["seconds"] < self.timeout - 1
            ):
                row["error"] = (
                    f"TimeoutError raised inside the test after {row['seconds']:.1f}s (asyncpg's "
                    "wrapper reports it as the test timing out)"
                )
                row["traceback"] = (
                    "".join(traceback.format_exception(type(inner), inner, inner.__traceback__))
                    + "\n" + row["traceback"]
                )
            if subtest is not None:
                row["error"] = f"{subtest._subDescription()}: {row['error']}"
        if reason is not None:
            row["reason"] = str(reason)
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.record(test, "failed", err)

    def addError(self, test, err):
        super().addError(test, err)
        # setUpClass/tearDownClass errors come as an _ErrorHolder whose id names the class.
        self.record(test, "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.record(test, "skipped", reason=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.record(test, "expected-failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.record(test, "unexpected-success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            outcome = "failed" if issubclass(err[0], test.failureException) else "error"
            # Recorded under the test's own id: a test whose subtests fail gets no other outcome.
            self.record(test, outcome, err, subtest=subtest)


def run(out_path, names):
    from asyncpg import _testbase as tb

    timeout = float(os.environ.get("DRIVER_SUITES_TEST_TIMEOUT", "120"))
    tb.TestCaseMeta.TEST_TIMEOUT = timeout
    sys.path.insert(0, os.getcwd())
    if names:
        suite = unittest.defaultTestLoader.loadTestsFromNames(names)
    else:
        import tests

        suite = tests.suite()
    with open(out_path, "a", encoding="utf-8") as out:
        runner = unittest.TextTestRunner(
            verbosity=2,
            resultclass=lambda *a, **k: JsonResult(out, timeout, *a, **k),
        )
        result = runner.run(suite)
    return 0 if result.wasSuccessful() else 1


def load(path):
    rows = {}
    if not os.path.exists(path):
        return rows, False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                row = json.loads(line)
                # A test with failing subtests has one row per failing subtest: keep the first.
                rows.setdefault(row["id"], row)
    return rows, True


OUTCOMES = ["passed", "failed", "error", "skipped", "expected-failure", "unexpected-success"]


def load_again(out_dir, mode):
    """{id: (runs, failures)} of MODE-again.jsonl, where each test ran several times."""
    counts = {}
    path = os.path.join(out_dir, mode + "-again.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    runs, failures = counts.get(row["id"], (0, 0))
                    counts[row["id"]] = (runs + 1, failures + (row["outcome"] in ("failed", "error")))
    return counts


def pgwarm_only(runs, reference, mode):
    ref = runs[reference]
    return [
        row for test_id, row in sorted(runs[mode].items())
        if row["outcome"] in ("failed", "error") and ref.get(test_id, {}).get("outcome") == "passed"
    ]


def load_runs(out_dir, modes):
    return {mode: load(os.path.join(out_dir, mode + ".jsonl"))[0] for mode in modes}


def candidates(out_dir, modes):
    """The ids of the tests that failed in some mode but passed in the first, one a line."""
    runs = load_runs(out_dir, modes)
    seen = set()
    for mode in modes[1:]:
        for row in pgwarm_only(runs, modes[0], mode):
            # A setUpClass error names its class, not a test that can run by name.
            if row["id"] not in seen and not row["id"].startswith(("setUpClass", "tearDownClass")):
                seen.add(row["id"])
                print("tests." + row["id"] if not row["id"].startswith("tests.") else row["id"])
    return 0


def report(out_dir, modes):
    runs = load_runs(out_dir, modes)
    for mode in modes:
        rows = runs[mode]
        status_path = os.path.join(out_dir, mode + ".status")
        status = open(status_path).read().strip() if os.path.exists(status_path) else "not run"
        counts = {o: 0 for o in OUTCOMES}
        for row in rows.values():
            counts[row["outcome"]] += 1
        extra = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES[4:] if counts[o])
        print(
            f"{mode:<12} {len(rows):>4} tests: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['error']} errors, {counts['skipped']} skipped"
            + (f", {extra}" if extra else "")
            + f"  ({status})"
        )
    reference = modes[0]
    ref = runs[reference]
    again = {mode: load_again(out_dir, mode) for mode in modes}

    def again_line(mode, test_id):
        key = test_id if test_id.startswith("tests.") else "tests." + test_id
        runs_here, failed_here = again[mode].get(key, (0, 0))
        runs_ref, failed_ref = again[reference].get(key, (0, 0))
        if not runs_here:
            return ""
        verdict = ""
        if failed_here == 0 and failed_ref == 0:
            verdict = "  (passed every time again)"
        elif failed_here == runs_here and failed_ref == 0:
            verdict = "  (every time here, never " + reference + ")"
        elif failed_ref:
            verdict = "  (fails " + reference + " too)"
        elif failed_here < runs_here:
            verdict = "  (not every time)"
        return (
            f"  again: failed {failed_here}/{runs_here} here, "
            f"{failed_ref}/{runs_ref} {reference}{verdict}"
        )

    for mode in modes[1:]:
        print()
        only = pgwarm_only(runs, reference, mode)
        print(f"{mode}: {len(only)} tests fail here but pass {reference}")
        for row in only:
            print(f"  {row['id']}  [{row['outcome']}]{again_line(mode, row['id'])}")
            print(f"      {row.get('error', '')}")
        missing = sorted(t for t, r in ref.items() if r["outcome"] == "passed" and t not in runs[mode])
        if missing:
            print(f"{mode}: {len(missing)} tests that pass {reference} did not run (run stopped?)")
            for test_id in missing:
                print(f"  {test_id}")
        fixed = sorted(
            t for t, r in runs[mode].items()
            if r["outcome"] == "passed" and ref.get(t, {}).get("outcome") in ("failed", "error")
        )
        if fixed:
            print(f"{mode}: {len(fixed)} tests pass here but not {reference}")
            for test_id in fixed:
                print(f"  {test_id}")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "run":
        return run(argv[1], argv[2:])
    if len(argv) >= 3 and argv[0] == "candidates":
        return candidates(argv[1], argv[2:])
    if len(argv) >= 3 and argv[0] == "report":
        return report(argv[1], argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
