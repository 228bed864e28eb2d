"""Who holds the SQLite transport's write lock, and for how long, end to end.

    python3 benchmarks/sqlite_lock_hold.py [--tasks 6000] [--rounds 3] [--db /tmp/lock.db]

A database has one write lock: every send, lease, claim, record and acknowledgement of
the SQLite transport is a ``BEGIN IMMEDIATE`` transaction that takes it in turn. This
runs ``benchmarks/end_to_end.py`` on a fresh SQLite file (client and 2 worker processes,
warm-up included) with every process's ``_Database.transaction`` timed through a
``sitecustomize`` module put first on ``PYTHONPATH``: per process and per caller (the
function that opened the transaction), how many, how long each held the lock (from its
``BEGIN`` granted to its ``COMMIT`` done) and how long each waited for it, then the
share of the time the lock was held while the client sent. Nothing here is asserted
by tests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Put on the processes' path: times every write transaction and writes one line per
#: transaction at exit: the caller, when the lock was granted (epoch seconds), how long
#: it was held and how long it was waited for.
HOOK = '''
import atexit, os, sys, time
log = os.environ.get("YADTQ_LOCK_LOG")
if log:
    from yadtq.transports.sqlite import schema
    timed = []
    opened = schema._Database.transaction

    class _Timed:
        def __init__(self, manager, caller):
            self.manager, self.caller = manager, caller

        def __enter__(self):
            asked = time.perf_counter()
            conn = self.manager.__enter__()
            self.wall, self.granted = time.time(), time.perf_counter()
            self.waited = self.granted - asked
            return conn

        def __exit__(self, *exc):
            done = self.manager.__exit__(*exc)
            timed.append((self.caller, self.wall, time.perf_counter() - self.granted, self.waited))
            return done

    def transaction(self, prompt=False):
        return _Timed(opened(self, prompt), sys._getframe(1).f_code.co_name)

    schema._Database.transaction = transaction

    @atexit.register
    def _write():
        with open(f"{log}.{os.getpid()}", "w") as out:
            out.writelines(f"{c} {w:.6f} {h:.7f} {q:.7f}\\n" for c, w, h, q in timed)
'''
#: The lock's share is taken over the tenths of a second in which the client sent.
BUCKET = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default="", help="the database file (default: a fresh temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yadtq-lock-") as tmp:
        Path(tmp, "sitecustomize.py").write_text(HOOK)
        db = args.db or os.path.join(tmp, "e2e.db")
        url = f"sqlite:///{os.path.abspath(db)}"
        log = os.path.join(tmp, "hold")
        env = dict(os.environ, YADTQ_LOCK_LOG=log,
                   PYTHONPATH=os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH", "")) if p))
        script = Path(__file__).with_name("end_to_end.py")
        started = time.perf_counter()
        subprocess.run([sys.executable, str(script), url, url, "--tasks", str(args.tasks),
                        "--rounds", str(args.rounds)], env=env, check=True)
        elapsed = time.perf_counter() - started  # end_to_end.py waited for its workers to exit
        print("\n| process | caller | transactions | hold p50 / p90 ms | hold s | wait s |")
        print("|---|---|---|---|---|---|")
        held: dict[int, float] = {}  # per tenth of a second, by every process
        sending: set[int] = set()
        for path in sorted(Path(tmp).glob("hold.*")):
            by_caller: dict[str, list[tuple[float, float]]] = {}
            for line in path.read_text().splitlines():
                caller, wall, hold, wait = line.split()
                by_caller.setdefault(caller, []).append((float(hold), float(wait)))
                bucket = int(float(wall) / BUCKET)
                held[bucket] = held.get(bucket, 0.0) + float(hold)
                if caller == "publish_plain":
                    sending.add(bucket)
            role = "client" if "publish_plain" in by_caller else "worker"
            for caller, pairs in sorted(by_caller.items(), key=lambda item: -sum(h for h, _ in item[1])):
                holds = sorted(h for h, _ in pairs)
                p50, p90 = holds[len(holds) // 2] * 1e3, holds[int(len(holds) * 0.9)] * 1e3
                print(f"| {role} {path.suffix[1:]} | {caller} | {len(pairs)} | {p50:.3f} / {p90:.3f} |"
                      f" {sum(holds):.3f} | {sum(w for _, w in pairs):.3f} |")
        if not sending:
            sys.exit("no send was timed: is yadtq importable from this checkout?")
        busy = sum(held.get(b, 0.0) for b in sending)
        print(f"\nwhile the client sent ({len(sending) * BUCKET:.1f} s of the {elapsed:.1f} s run), the"
              f" write lock was held {100 * busy / (len(sending) * BUCKET):.0f} % of the time")


if __name__ == "__main__":
    main()
