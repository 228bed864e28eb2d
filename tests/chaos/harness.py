"""The chaos suite's instruments: worker processes to start, stop, SIGKILL and
SIGSTOP; a driver thread that submits tasks while faults happen; the ledger of
executions written from inside the tasks (tests/apps/chaos_app.py); and the
summary every scenario asserts on and reports.

"Lost" and "ran twice" are measured, not inferred: a task is lost when it never
finished (no ``F`` ledger entry and no ``success`` state); it ran twice when
the ledger holds two ``S`` entries for it. A second run is *explained* when
every earlier run was on a worker process the test killed or froze.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from tests.chaos.servers import ROOT, own

#: Reason given for a second run that the test's own faults explain.
KILLED = "earlier run on a killed/frozen worker"
UNEXPLAINED = "earlier run on a live worker"


@dataclass(frozen=True)
class Entry:
    kind: str  # "S" started, "F" finished
    task_id: str
    attempt: int
    pid: int
    at: float


class Ledger:
    """The executions the tasks pushed to one Redis list."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def entries(self) -> list[Entry]:
        out = []
        for raw in self.client.lrange(self.key, 0, -1):
            kind, task_id, attempt, pid, at = raw.decode().split()
            out.append(Entry(kind, task_id, int(attempt), int(pid), float(at)))
        return out

    def finished(self) -> set[str]:
        return {e.task_id for e in self.entries() if e.kind == "F"}

    def started(self) -> set[str]:
        return {e.task_id for e in self.entries() if e.kind == "S"}


class Worker:
    """One real ``yadtq worker`` process; output goes to files (a pipe could fill and block it)."""

    def __init__(self, app: str, env: dict[str, str], name: str, logdir: Path,
                 extra: Sequence[str] = ()) -> None:
        self.name = name
        self.logfile = logdir / f"{name}.log"
        self.errfile = logdir / f"{name}.err"
        level = os.environ.get("YADTQ_CHAOS_LOGLEVEL", "info")  # debug: commits too
        cmd = [sys.executable, "-m", "yadtq.cli", "worker", "-A", app, "-n", name, "-l", level,
               "--logfile", str(self.logfile), *extra]
        with open(self.errfile, "ab") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        own(self.proc)
        self.pid = self.proc.pid
        self.started = time.time()

    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 1500) -> str:
        text = ""
        for path in (self.logfile, self.errfile):
            if path.exists():
                text += f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}\n"
        return text


class Fleet:
    """The workers of one scenario. Every fault is recorded with its time, so the
    summary can tell an explained second run from an unexplained one."""

    def __init__(self, app: str, env: dict[str, str], logdir: Path, extra: Sequence[str] = ()) -> None:
        self.app = app
        self.env = env
        self.logdir = logdir
        self.extra = list(extra)
        self.workers: list[Worker] = []
        #: pid -> time it was SIGKILLed, SIGTERMed or SIGSTOPped by the test.
        self.faults: dict[int, float] = {}
        #: pid -> exit status, of workers that exited without the test stopping them.
        self.unexpected_exits: dict[str, Optional[int]] = {}
        self._serial = 0
        self._lock = threading.Lock()

    def start(self, name: Optional[str] = None, extra: Sequence[str] = (),
              env: Optional[dict[str, str]] = None) -> Worker:
        with self._lock:
            self._serial += 1
            worker = Worker(self.app, env or self.env, name or f"w{self._serial}", self.logdir,
                            [*self.extra, *extra])
            self.workers.append(worker)
        return worker

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.running() and w.pid not in self.faults]

    def signal(self, worker: Worker, signum: int) -> None:
        with self._lock:
            self.faults.setdefault(worker.pid, time.time())
        os.kill(worker.pid, signum)
        if signum == signal.SIGKILL:
            worker.proc.wait(30)

    def kill_random(self, rng: random.Random) -> Optional[Worker]:
        live = self.live()
        if not live:
            return None
        victim = rng.choice(live)
        self.signal(victim, signal.SIGKILL)
        return victim

    def stop(self, worker: Worker, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the exit status."""
        self.signal(worker, signal.SIGTERM)
        return worker.proc.wait(timeout)

    def check_exits(self) -> dict[str, Optional[int]]:
        """Workers that exited although the test never signalled them."""
        for w in self.workers:
            if w.pid not in self.faults and w.proc.poll() is not None:
                self.unexpected_exits[w.name] = w.proc.returncode
        return dict(self.unexpected_exits)

    def close(self) -> None:
        """Stop every worker by pid: SIGCONT (a frozen one), SIGTERM, then SIGKILL."""
        for w in self.workers:
            if w.running():
                try:
                    os.kill(w.pid, signal.SIGCONT)
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for w in self.workers:
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(10)

    def logs(self) -> str:
        return "\n".join(w.tail() for w in self.workers[-6:])


class Driver(threading.Thread):
    """Submits ``total`` tasks at about ``rate`` per second from its own thread,
    counting the calls that raised (none should)."""

    def __init__(self, submit: Callable[[int], str], total: int, rate: float) -> None:
        super().__init__(name="chaos-driver", daemon=True)
        self.submit = submit
        self.total = total
        self.rate = rate
        self.sent: list[str] = []
        self.errors: list[str] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        for n in range(self.total):
            if self.stop_event.is_set():
                return
            due = t0 + n / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.sent.append(self.submit(n))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the driver did not finish sending in time"


@dataclass
class Summary:
    scenario: str
    sent: int = 0
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    twice: dict[str, str] = field(default_factory=dict)  # task id -> reason
    failover_s: Optional[float] = None
    faults: int = 0
    send_errors: int = 0
    unexpected_exits: dict[str, Optional[int]] = field(default_factory=dict)
    #: Lost tasks and unexplained second runs: the task's ledger entries and state.
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: The task behind ``failover_s``: where it ran, and the faults in between.
    worst_failover: str = ""
    note: str = ""

    @property
    def twice_unexplained(self) -> list[str]:
        return [t for t, why in self.twice.items() if why != KILLED]

    def line(self) -> str:
        fo = "-" if self.failover_s is None else f"{self.failover_s:.1f}s"
        why = ", ".join(sorted({f"{sum(1 for r in self.twice.values() if r == k)} {k}"
                                for k in set(self.twice.values())}))
        return (f"[{self.scenario}] sent={self.sent} completed={self.completed} lost={len(self.lost)} "
                f"ran_twice={len(self.twice)}{f' ({why})' if why else ''} failover={fo} "
                f"faults={self.faults} send_errors={self.send_errors} "
                f"worker_exits={self.unexpected_exits or 0} took={self.seconds:.0f}s"
                + (f" note={self.note}" if self.note else "")
                + (f" worst_failover=[{self.worst_failover}]" if self.worst_failover else "")
                + (f" details={self.details[:5]}" if self.details else ""))

    def report(self) -> None:
        """Append to ``YADTQ_CHAOS_REPORT`` (JSON lines) for scripts/chaos.sh's table."""
        path = os.environ.get("YADTQ_CHAOS_REPORT")
        if path:
            row = asdict(self)
            row["lost"] = len(self.lost)
            row["twice_reasons"] = sorted(set(self.twice.values()))
            row["twice"] = len(self.twice)
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")


def states_of(app: Any, ids: Sequence[str]) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for i in range(0, len(ids), 500):
        chunk = list(ids[i:i + 500])
        for task_id, rec in zip(chunk, app.backend.get(chunk)):
            out[task_id] = None if rec is None else rec.state
    return out


def summarize(scenario: str, sent: Sequence[str], entries: Sequence[Entry],
              states: dict[str, Optional[str]], fleet: Optional[Fleet] = None, *,
              started_at: float = 0.0, send_errors: int = 0, note: str = "") -> Summary:
    faults = dict(fleet.faults) if fleet is not None else {}
    by_task: dict[str, list[Entry]] = {}
    for e in entries:
        by_task.setdefault(e.task_id, []).append(e)
    summary = Summary(scenario, sent=len(sent), faults=len(faults), send_errors=send_errors, note=note,
                      seconds=time.time() - started_at if started_at else 0.0)
    delays = []
    for task_id in sent:
        runs = sorted((e for e in by_task.get(task_id, []) if e.kind == "S"), key=lambda e: e.at)
        finished = any(e.kind == "F" for e in by_task.get(task_id, []))
        if states.get(task_id) == "success" and finished:
            summary.completed += 1
        else:
            summary.lost.append(task_id)
            names = {w.pid: w.name for w in fleet.workers} if fleet is not None else {}
            summary.details.append(f"lost {task_id[:8]} state={states.get(task_id)}: " + ", ".join(
                f"{e.kind} {names.get(e.pid, e.pid)}{'(faulted)' if e.pid in faults else ''}"
                for e in sorted(by_task.get(task_id, []), key=lambda e: e.at)))
        if len(runs) > 1:
            earlier = runs[:-1]
            explained = all(e.pid in faults for e in earlier)
            summary.twice[task_id] = KILLED if explained else UNEXPLAINED
            if not explained:
                names = {w.pid: w.name for w in fleet.workers} if fleet is not None else {}
                t_first = runs[0].at
                summary.details.append(task_id[:8] + ": " + ", ".join(
                    f"{e.kind} {names.get(e.pid, e.pid)} +{e.at - t_first:.1f}s"
                    for e in sorted(by_task[task_id], key=lambda e: e.at)))
        # failover: from a fault on the worker running it to the next run elsewhere
        for first, second in zip(runs, runs[1:]):
            if first.pid in faults and second.pid != first.pid:
                delays.append((second.at - max(faults[first.pid], first.at), task_id, first, second))
    if delays:
        worst, task_id, first, second = max(delays, key=lambda d: d[0])
        summary.failover_s = worst
        names = {w.pid: w.name for w in fleet.workers} if fleet is not None else {}
        t0 = max(faults[first.pid], first.at)
        between = sorted((at - t0, names.get(pid, str(pid))) for pid, at in faults.items()
                         if t0 < at < second.at)
        summary.worst_failover = (
            f"task {task_id[:8]}: ran on {names.get(first.pid, first.pid)} (faulted), again on "
            f"{names.get(second.pid, second.pid)} {worst:.1f}s after the fault; other faults meanwhile: "
            + (", ".join(f"{name} at +{at:.1f}s" for at, name in between) or "none"))
    if fleet is not None:
        summary.unexpected_exits = fleet.check_exits()
    return summary


def wait_finished(ledger: Ledger, ids: Sequence[str], timeout: float, app: Any = None) -> bool:
    """Wait until every task in ``ids`` has a finish entry (and, given ``app``, its
    ``success`` stored: a worker killed between the two runs the task again); False at
    the deadline."""
    want = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        if want <= ledger.finished():
            if app is None:
                return True
            pending = [t for t, state in states_of(app, sorted(want)).items() if state != "success"]
            if not pending:
                return True
            want = set(pending)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def wait_assigned(workers: Sequence[Worker], timeout: float = 90.0) -> None:
    """Wait until each worker's log shows it was assigned at least one partition (a
    heartbeat says a worker is alive, not that the group has given it work yet)."""
    pattern = re.compile(r"assigned partitions \[\d")
    deadline = time.monotonic() + timeout
    for w in workers:
        while not (w.logfile.exists() and pattern.search(w.logfile.read_text(errors="replace"))):
            assert w.running(), f"worker {w.name} exited\n{w.tail()}"
            assert time.monotonic() < deadline, f"worker {w.name} got no partition\n{w.tail()}"
            time.sleep(0.2)


def wait_ready(app: Any, names: Sequence[str], timeout: float = 90.0,
               fleet: Optional[Fleet] = None) -> None:
    """Wait until the named workers heartbeat ``alive``."""
    deadline = time.monotonic() + timeout
    while True:
        status = app.get_worker_status()
        if all(status.get(n, {}).get("status") == "alive" for n in names):
            return
        if fleet is not None:
            exits = fleet.check_exits()
            assert not exits, f"workers exited: {exits}\n{fleet.logs()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"workers {names} not alive within {timeout} s: {status}")
        time.sleep(0.2)


def locate_in_kafka(bootstrap: str, app: Any, queue: str, ids: Sequence[str], timeout: float = 30.0) -> str:
    """Where each of ``ids`` sits in ``queue``'s topic (partition and offset, or "absent"),
    and what the queue's group committed per partition: tells a message never written
    from one committed past without running. For a failure's message, never raises."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from yadtq.envelope import peek_task_id

    naming = app.broker.naming
    topic, group = naming.topic(queue), naming.group(queue)
    wanted = set(ids)
    found: dict[str, tuple[int, int]] = {}
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}.locator",
                       "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        parts = reader.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        reader.assign(tps)
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(tps) and time.monotonic() < deadline:
            for msg in reader.consume(1000, 0.5):
                if msg.error() is not None:
                    at_end.add(msg.partition())
                    continue
                task_id = peek_task_id(msg.value() or b"")
                if task_id in wanted:
                    found[task_id] = (msg.partition(), msg.offset())
        committed_reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                     "enable.auto.commit": False})
        try:
            committed = {tp.partition: tp.offset
                         for tp in committed_reader.committed([TopicPartition(topic, p) for p in parts], 10)}
        finally:
            committed_reader.close()
    except Exception as exc:  # a diagnostic: report what went wrong instead
        return f"(could not read {topic}: {exc})"
    finally:
        reader.close()
    where = ", ".join(f"{t[:8]}@p{found[t][0]}:{found[t][1]}" if t in found else f"{t[:8]} absent"
                      for t in ids)
    return f"in Kafka: {where}; committed by {group}: {dict(sorted(committed.items()))}"
