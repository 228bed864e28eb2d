"""yadtq beside its peers: runs runner.py for every system, interleaved, and prints one table.

    python3 benchmarks/peers/compare.py --peers-python VENV/bin/python \\
        [--yadtq-python VENV/bin/python] --kafka HOST:PORT --redis redis://HOST:PORT/0 \\
        [--rounds 2] [--tasks 5000]

Usually started by benchmarks/peers/run.sh, which provisions Kafka and Redis and
the peers' virtual environment. Each round runs every system once, in turn (so
drift of this shared machine hits every system alike); the table shows each
figure's median over the rounds, then yadtq's ratios against the targets of
DESIGN.md section 9. Nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from runner import ROUND_TRIPS, SYSTEMS  # noqa: E402

YADTQ_SYSTEMS = ("yadtq-kafka", "yadtq-sqlite")
LABELS = {
    "yadtq-kafka": "yadtq, Kafka + Redis",
    "yadtq-sqlite": "yadtq, SQLite",
    "huey": "Huey on Redis",
    "celery-kafka": "Celery, kombu Kafka",
    "dramatiq": "Dramatiq on Redis",
    "rq": "RQ, SimpleWorker (1/10 of the tasks)",
}
METRICS = ("enqueue_per_s", "bulk_per_s", "end_to_end_per_s", "rt_p50_ms", "rt_p99_ms",
           "worker_cpu_s_per_10k", "idle_cpu_pct", "idle_rss_mb")
#: (what, system, metric, peer or None for an absolute bound, bound, higher is better)
TARGETS: tuple[tuple[str, str, str, Optional[str], float, bool], ...] = (
    ("end to end vs Huey", "yadtq-kafka", "end_to_end_per_s", "huey", 8.0, True),
    ("end to end vs Celery-on-Kafka", "yadtq-kafka", "end_to_end_per_s", "celery-kafka", 30.0, True),
    ("end to end vs Huey (SQLite)", "yadtq-sqlite", "end_to_end_per_s", "huey", 3.0, True),
    (".delay() vs Huey's enqueue", "yadtq-kafka", "enqueue_per_s", "huey", 10.0, True),
    ("bulk send (send_many) vs Huey's enqueue", "yadtq-kafka", "bulk_per_s", "huey", 50.0, True),
    ("round trip p50 vs Huey", "yadtq-kafka", "rt_p50_ms", "huey", 0.8, False),
    ("round trip p99 vs Huey", "yadtq-kafka", "rt_p99_ms", "huey", 1.0, False),
    ("round trip p50 vs Huey (SQLite)", "yadtq-sqlite", "rt_p50_ms", "huey", 0.5, False),
    ("round trip p99 vs Huey (SQLite)", "yadtq-sqlite", "rt_p99_ms", "huey", 1.0, False),
    ("worker CPU per task vs Huey", "yadtq-kafka", "worker_cpu_s_per_10k", "huey", 0.1, False),
    ("worker CPU per task vs Huey (SQLite)", "yadtq-sqlite", "worker_cpu_s_per_10k", "huey", 0.1, False),
    ("idle worker CPU, % of a core", "yadtq-kafka", "idle_cpu_pct", None, 0.3, False),
    ("idle worker CPU, % of a core (SQLite)", "yadtq-sqlite", "idle_cpu_pct", None, 0.3, False),
    ("idle worker RSS, MB", "yadtq-kafka", "idle_rss_mb", None, 50.0, False),
    ("idle worker RSS, MB (SQLite)", "yadtq-sqlite", "idle_rss_mb", None, 50.0, False),
)


#: A target's metric compared with another metric of the peer (a bulk send with its enqueue).
PEER_METRIC = {"bulk_per_s": "enqueue_per_s"}


def medians(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per system, each metric's median over the rounds that measured it."""
    out: dict[str, dict[str, float]] = {}
    for system in SYSTEMS:
        rows = [r for r in results if r.get("system") == system and "error" not in r]
        if rows:
            out[system] = {m: statistics.median(r[m] for r in rows if m in r) for m in METRICS
                           if any(m in r for r in rows)}
    return out


def _settling(result: dict[str, Any]) -> str:
    """How long a Kafka system's consumer group took to settle before the timed end to
    end (``runner.GROUP_SETTLE_MAX``), if it took a while or never did."""
    if "settle_s" not in result or (result.get("settled") and result["settle_s"] < 1):
        return ""
    how = "settled" if result.get("settled") else "NOT settled"
    return f"(consumer group {how} after {result['settle_s']:.0f} s) "


def _fmt(value: Optional[float], digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def render(results: Sequence[dict[str, Any]], *, title: str = "") -> str:
    """The comparison as a Markdown table, the ratios against the targets, and any errors."""
    med = medians(results)
    lines = [title] if title else []
    lines += [
        "| system | enqueue /s | bulk send /s | end to end tasks/s | round trip p50 / p99 ms "
        "| worker CPU s per 10k tasks | idle worker CPU % of a core | idle worker RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system in SYSTEMS:
        m = med.get(system)
        if m is None:
            continue
        lines.append(
            f"| {LABELS[system]} | {_fmt(m.get('enqueue_per_s'), 0)} | {_fmt(m.get('bulk_per_s'), 0)} "
            f"| {_fmt(m.get('end_to_end_per_s'), 0)} "
            f"| {_fmt(m.get('rt_p50_ms'), 1)} / {_fmt(m.get('rt_p99_ms'), 1)} "
            f"| {_fmt(m.get('worker_cpu_s_per_10k'), 1)} | {_fmt(m.get('idle_cpu_pct'), 2)} "
            f"| {_fmt(m.get('idle_rss_mb'), 0)} |")
    lines += ["", "| target (DESIGN.md section 9) | measured | bound | met |", "|---|---|---|---|"]
    for what, system, metric, peer, bound, higher in TARGETS:
        value = med.get(system, {}).get(metric)
        if peer is not None:
            base = med.get(peer, {}).get(PEER_METRIC.get(metric, metric))
            value = value / base if value is not None and base else None
            shown = f"{value:.2f}x" if value is not None else "—"
            bound_s = f"{'≥' if higher else '≤'} {bound:g}x"
        else:
            shown, bound_s = _fmt(value, 2), f"{'≥' if higher else '≤'} {bound:g}"
        met = "—" if value is None else ("yes" if (value >= bound if higher else value <= bound) else "no")
        lines.append(f"| {what} | {shown} | {bound_s} | {met} |")
    errors = [f"- {r['system']}: {r['error']}" for r in results if "error" in r]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kafka", required=True, help="Kafka bootstrap HOST:PORT")
    p.add_argument("--redis", required=True, help="redis://HOST:PORT/DB (a database the run may write to)")
    p.add_argument("--peers-python", default=sys.executable,
                   help="Python of the virtual environment holding the peers")
    p.add_argument("--yadtq-python", default=sys.executable,
                   help="Python that runs yadtq (run.sh: a virtual environment with this checkout "
                        "and its default dependencies only)")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated subset of {','.join(SYSTEMS)}")
    p.add_argument("--rounds", type=int, default=2, help="rounds; figures are medians over them")
    p.add_argument("--tasks", type=int, default=3000, help="tasks in the enqueue and end-to-end runs")
    p.add_argument("--samples", type=int, default=ROUND_TRIPS, help="sequential round trips")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    p.add_argument("--timeout", type=float, default=300.0, help="bound on one system's round, seconds")
    p.add_argument("--enqueue-only", action="store_true",
                   help="only the enqueue and bulk-send workloads (no workers: seconds a round)")
    p.add_argument("--json", dest="json_out", default=None, help="also write every round's figures here")
    p.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                   help="skip round 0, which runs every system once, not counted, before round 1")
    args = p.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        p.error(f"unknown system(s): {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(SYSTEMS)}")
    if args.rounds < 1 or args.tasks < 1 or args.samples < 1 or args.idle <= 0:
        p.error("--rounds, --tasks, --samples and --idle must be positive")
    args.systems = systems
    return args


def run_one(args: argparse.Namespace, system: str, tmp: str) -> dict[str, Any]:
    python = args.yadtq_python if system in YADTQ_SYSTEMS else args.peers_python
    cmd = [python, os.path.join(HERE, "runner.py"), system, "--kafka", args.kafka, "--redis", args.redis,
           "--tmp", tmp, "--tasks", str(args.tasks), "--samples", str(args.samples),
           "--idle", str(args.idle), *(["--enqueue-only"] if args.enqueue_only else [])]
    # A session of its own: on a timeout the runner's worker processes go with it.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, sig)
            try:
                proc.communicate(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        return {"system": system, "error": f"no result within {args.timeout:g} s"}
    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError):
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return {"system": system, "error": f"exit {proc.returncode}: {tail[0][:300]}"}


def main(argv: Sequence[str], say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> int:
    args = parse_args(argv)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="yadtq-peers-") as tmp:
        # Round 0, not counted: every counted round then follows the same sequence of
        # systems on a broker that has run all of them. Without it round 1 of yadtq on
        # Kafka was its slowest in every run (round trip p50 2.6-3.5 ms against 1.3-1.6
        # in rounds 2 and 3), and still was after 150 s of its own rounds back to back
        # (2.1 ms): what slows it is both the broker's first minutes and following a
        # round of its own, not either alone.
        for system in args.systems if args.warm_up else []:
            t0 = time.monotonic()
            result = run_one(args, system, tmp)
            say(f"peers: round 0 (not counted) {system}: {time.monotonic() - t0:.0f} s "
                f"{result.get('error') or ''}")
        for round_no in range(1, args.rounds + 1):
            for system in args.systems:
                t0 = time.monotonic()
                result = run_one(args, system, tmp)
                result["round"] = round_no
                results.append(result)
                if args.json_out:  # after every system: an interrupted run keeps what it measured
                    with open(args.json_out, "w") as f:
                        json.dump({"title": "(partial)", "results": results}, f, indent=1)
                say(f"peers: round {round_no} {system}: {time.monotonic() - t0:.0f} s "
                    f"{_settling(result)}{result.get('error') or ''}")
    runs = ("enqueue workloads only" if args.enqueue_only
            else f"2 worker processes, {args.samples} round trips")
    title = (f"{time.strftime('%Y-%m-%d', time.gmtime())}: {args.tasks} no-op tasks, {runs}, "
             f"median of {args.rounds} round(s){' after an uncounted round 0' if args.warm_up else ''}, "
             f"{time.monotonic() - started:.0f} s in all")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"title": title, "results": results}, f, indent=1)
    print(render(results, title=title))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check-options"]:  # run.sh, before it provisions anything
        parse_args(["--kafka", "-", "--redis", "-", *sys.argv[2:]])  # exits 2 on a bad option
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
