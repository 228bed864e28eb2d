"""What an idle worker costs: CPU (per thread, with its wake-ups) and resident memory.

    python3 benchmarks/idle.py                      # Kafka + Redis of YADTQ_TEST_KAFKA / YADTQ_TEST_REDIS
    python3 benchmarks/idle.py --sqlite             # the embedded SQLite transport
    python3 benchmarks/idle.py --seconds 30 --json  # one JSON line instead of the table
    python3 benchmarks/idle.py --source ../other    # the worker runs another checkout's yadtq
    python3 benchmarks/idle.py --python /tmp/plain/bin/python  # a default install's interpreter

Starts ``python3 -m yadtq.cli worker -A yadtq.benchapp`` on a queue and namespace of
its own (the command the side-by-side harness runs, ``benchmarks/peers/runner.py``), sends
one no-op task and waits for its result (the worker has joined and been assigned
its partitions), lets it settle, then reads /proc over ``--seconds``: the
process's CPU as a share of one core, each thread's CPU time and how many times
it was put on a CPU (``/proc/<pid>/task/<tid>/schedstat``: its wake-ups), and the
RSS at the end. The table lists the threads that ran; a small wrapper gives each
Python thread its name in /proc first (``--no-names``: the plain command).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
#: Run instead of ``-m yadtq.cli`` with ``--names``: each Python thread gives the kernel its
#: name (``yadtq-scheduler``...) so /proc tells them apart; then the CLI runs as usual.
NAMING = """
import ctypes, runpy, sys, threading
_libc = ctypes.CDLL(None)
_bootstrap = threading.Thread._bootstrap_inner
def _named(self):
    _libc.prctl(15, self.name.replace("yadtq-", "")[:15].encode(), 0, 0, 0)
    _bootstrap(self)
threading.Thread._bootstrap_inner = _named
sys.argv[0] = "yadtq"
runpy.run_module("yadtq.cli", run_name="__main__", alter_sys=True)
"""


def threads(pid: int) -> dict[int, tuple[str, int, int]]:
    """Thread id -> (name, CPU ns, times scheduled) of every live thread of ``pid``."""
    out: dict[int, tuple[str, int, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, _wait, slices = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
        out[int(tid)] = (name, run_ns, slices)
    return out


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of the process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    queue = f"idle{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, YADTQ_DEFAULT_QUEUE=queue, YADTQ_NAMESPACE=args.namespace or queue)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.source, os.environ.get("PYTHONPATH")) if p)
    tmp = tempfile.mkdtemp(prefix="yadtq-idle-")
    if args.sqlite:
        env["YADTQ_BROKER_URL"] = env["YADTQ_BACKEND_URL"] = f"sqlite:///{tmp}/idle.db"
    else:
        env["YADTQ_BROKER_URL"] = f"kafka://{args.kafka}"
        env["YADTQ_BACKEND_URL"] = args.redis
    os.environ.update(env)
    sys.path.insert(0, REPO)
    from yadtq import benchapp

    start = ["-c", NAMING] if args.names else ["-m", "yadtq.cli"]
    cmd = [args.python, *start, "worker", "-A", "yadtq.benchapp", "-c", str(args.concurrency),
           "-l", "warning", "-n", queue]
    # cwd: not this checkout, whose yadtq would come first on the worker's sys.path.
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=None if args.debug else subprocess.DEVNULL)
    try:
        benchapp.noop.delay().get(timeout=120)
        time.sleep(args.settle)
        before, cpu0, t0 = threads(proc.pid), process_cpu(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        after, cpu1, elapsed = threads(proc.pid), process_cpu(proc.pid), time.monotonic() - t0
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        benchapp.app.purge(queue)
        benchapp.app.close()
    per_thread: list[dict[str, Any]] = []
    for tid, (name, run_ns, slices) in after.items():
        _, run0, slices0 = before.get(tid, (name, 0, 0))
        if run_ns - run0 or slices - slices0:
            per_thread.append({"thread": name, "tid": tid, "cpu_ms": (run_ns - run0) / 1e6,
                               "wakeups_per_s": (slices - slices0) / elapsed})
    per_thread.sort(key=lambda t: -t["cpu_ms"])
    return {"transport": "sqlite" if args.sqlite else "kafka+redis", "seconds": elapsed,
            "cpu_pct": (cpu1 - cpu0) / elapsed * 100,
            "cpu_pct_schedstat": sum(t["cpu_ms"] for t in per_thread) / 1000 / elapsed * 100,
            "rss_mb": rss, "threads": len(after), "per_thread": per_thread}


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sqlite", action="store_true", help="the SQLite transport instead of Kafka + Redis")
    p.add_argument("--kafka", default=os.environ.get("YADTQ_TEST_KAFKA", "127.0.0.1:9092"))
    p.add_argument("--redis", default=os.environ.get("YADTQ_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    p.add_argument("--seconds", type=float, default=30.0, help="length of the measurement")
    p.add_argument("--settle", type=float, default=5.0, help="quiet seconds before it")
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--namespace", help="the app's namespace (default: one of its own, so other apps "
                   "on shared servers neither wake nor load the worker; 'yadtq' is the default app's)")
    p.add_argument("--source", default=REPO,
                   help="checkout whose yadtq the worker runs (default: this one); to compare two versions")
    p.add_argument("--python", default=sys.executable,
                   help="the worker's interpreter: e.g. a virtual environment with a plain `pip install "
                        "yadtq` (no extras), to measure what a default install costs")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--no-names", dest="names", action="store_false",
                   help="run the worker exactly as the peers harness does (threads unnamed in /proc)")
    p.add_argument("--debug", action="store_true", help="show the worker's stderr")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.settle < 0:
        p.error("--seconds must be positive and --settle not negative")
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['transport']}: {result['cpu_pct']:.2f} % of a core over {result['seconds']:.0f} s "
          f"(schedstat {result['cpu_pct_schedstat']:.2f} %), RSS {result['rss_mb']:.1f} MB, "
          f"{result['threads']} threads")
    print(f"{'thread':<18} {'cpu ms':>8} {'wake-ups/s':>10}")
    for t in result["per_thread"]:
        print(f"{t['thread']:<18} {t['cpu_ms']:>8.1f} {t['wakeups_per_s']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
