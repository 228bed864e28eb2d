"""``yadtq monitor``, ``inspect`` and ``tasks``: the snapshot data model, worker health,
the commands in-process, and live clusters of real worker processes (SQLite; Kafka + Redis)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner, Result

from tests.apps import monitor_app
from tests.cli.conftest import ROOT, error_line, wait_for
from tests.worker.procs import running_workers, wait_for_file_lines, wait_ready, worker_env
from yadtq import YADTQ, states
from yadtq.cli import main
from yadtq.contrib.pytest import on_memory
from yadtq.monitor import ClusterSnapshot, take_snapshot, throughput
from yadtq.transports.base import Message, TaskTotals
from yadtq.transports.memory import MemoryConsumer
from yadtq.worker.main import Worker

APP = "tests.apps.monitor_app"
DEADLINE = 30.0


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


def json_out(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def app() -> Iterator[YADTQ]:
    """``tests.apps.monitor_app`` on fresh memory transports, heartbeating every 0.5 s."""
    monitor_app.gate.clear()
    with on_memory(monitor_app.app) as memory_app:
        memory_app.settings = memory_app.settings.replace(heartbeat_interval=0.5)
        yield memory_app
    monitor_app.gate.set()


@pytest.fixture
def worker(app: YADTQ) -> Iterator[Worker]:
    worker = Worker(app, name="monitor-worker", concurrency=4).start()
    try:
        yield worker
    finally:
        monitor_app.gate.set()  # let blocked ``slow`` tasks end
        worker.stop(timeout=DEADLINE)


def worker_info(app: YADTQ, name: str) -> dict[str, Any]:
    return app.get_worker_status().get(name, {})


@pytest.fixture
def busy(app: YADTQ, worker: Worker) -> dict[str, str]:
    """A cluster state with known numbers: 5 successes, 1 failure, 1 task in progress,
    1 retrying (and scheduled), 1 countdown task scheduled, 2 queued in a queue no
    worker consumes. Returns the interesting task ids."""
    for result in [monitor_app.add.delay(i, i) for i in range(5)]:
        assert result.get(timeout=DEADLINE) is not None
    failed = monitor_app.fail.delay("boom")
    failed.get(timeout=DEADLINE, propagate=False)
    slow = monitor_app.slow.delay("s1")
    later = monitor_app.later.delay()
    countdown = monitor_app.add.apply_async((1, 2), countdown=600)
    for _ in range(2):
        monitor_app.add.apply_async((0, 0), queue="idle")
    wait_for(lambda: app.backend.snapshot().processing == 1 and app.backend.snapshot().retrying == 1,
             DEADLINE, "slow in progress and later retrying")

    def counted() -> bool:
        info = worker_info(app, "monitor-worker")
        return (info.get("tasks_done"), info.get("tasks_failed"), info.get("active")) == (5, 1, 1)

    wait_for(counted, DEADLINE, "a heartbeat counting the finished tasks and the slow one")
    return {"slow": slow.id, "failed": failed.id, "later": later.id, "countdown": countdown.id}


# --------------------------------------------------------------------------- the data model


def test_snapshot_of_a_busy_cluster(app: YADTQ, busy: dict[str, str]) -> None:
    snap = take_snapshot(app, ["default", "idle"])
    tasks = snap.tasks
    assert tasks.totals == TaskTotals(succeeded=5, failed=1, retried=1)
    assert (tasks.processing, tasks.retrying, tasks.scheduled) == (1, 1, 2)
    (running,) = tasks.processing_tasks
    assert (running.task_id, running.name, running.worker) == (
        busy["slow"], "tests.apps.monitor_app.slow", "monitor-worker")
    assert [t.task_id for t in tasks.retrying_tasks] == [busy["later"]]
    assert {t.task_id for t in tasks.scheduled_tasks} == {busy["later"], busy["countdown"]}
    assert len(tasks.recent_successes) == 5
    assert all(t.runtime is not None and t.runtime >= 0 for t in tasks.recent_successes)
    (failure,) = tasks.recent_failures
    assert (failure.task_id, failure.error_type, failure.error_message) == (
        busy["failed"], "builtins.ValueError", "boom")
    assert [(q.name, q.depth) for q in snap.queues] == [("default", 0), ("idle", 2)]
    assert snap.queued == 2
    assert snap.oldest_queued_age is not None and 0 <= snap.oldest_queued_age < DEADLINE
    (worker,) = snap.workers
    assert (worker.name, worker.status, worker.healthy) == ("monitor-worker", "alive", True)
    assert (worker.info.tasks_done, worker.info.tasks_failed, worker.info.active) == (5, 1, 1)
    assert snap.failures == ()
    assert snap.throughput is None

    data = json.loads(json.dumps(snap.to_dict()))
    assert data["counts"] == {"queued": 2, "processing": 1, "scheduled": 2, "retrying": 1,
                              "dead_lettered": 0}
    assert data["totals"]["succeeded"] == 5
    assert data["processing"][0]["task_id"] == busy["slow"]
    assert data["workers"][0]["status"] == "alive" and data["workers"][0]["healthy"] is True
    assert data["queues"][1] == {"name": "idle", "depth": 2, "by_priority": {"0": 2},
                                 "oldest_created": pytest.approx(
        snap.queues[1].oldest_created), "oldest_age": pytest.approx(data["oldest_queued_age"])}


def test_snapshot_queues_default_to_what_the_workers_consume(app: YADTQ) -> None:
    assert [q.name for q in take_snapshot(app).queues] == ["default"]  # no worker yet
    worker = Worker(app, name="q-worker", queues=["alpha", "beta"]).start()
    try:
        wait_for(lambda: worker_info(app, "q-worker"), DEADLINE, "the worker's first heartbeat")
        assert [q.name for q in take_snapshot(app).queues] == ["alpha", "beta"]
        assert [q.name for q in take_snapshot(app, ["gamma"]).queues] == ["gamma"]
    finally:
        worker.stop(timeout=DEADLINE)


def test_a_queue_no_worker_consumes_shows_with_its_tasks(app: YADTQ) -> None:
    app.send_task("tests.apps.monitor_app.add", (1, 2), queue="nobody")
    snap = take_snapshot(app)
    assert [(q.name, q.depth) for q in snap.queues] == [("default", 0), ("nobody", 1)]
    assert snap.queued == 1


def test_throughput_is_finished_tasks_per_second_between_snapshots(app: YADTQ) -> None:
    before = take_snapshot(app)

    def later(seconds: float, succeeded: int, failed: int) -> ClusterSnapshot:
        tasks = dataclasses.replace(before.tasks, totals=TaskTotals(succeeded=succeeded, failed=failed))
        return dataclasses.replace(before, taken=before.taken + seconds, tasks=tasks)

    assert throughput(before, later(2.0, 30, 10)) == pytest.approx(20.0)
    assert throughput(before, later(0.0, 30, 10)) is None
    assert throughput(later(1.0, 50, 0), later(2.0, 0, 0)) == 0  # counters restarted
    assert take_snapshot(app, previous=later(-1.0, 0, 0)).throughput == 0


def test_dead_letters_are_counted_and_listed(app: YADTQ, worker: Worker) -> None:
    unknown = app.send_task("tests.apps.nowhere.missing")
    app.broker.publish([Message("default", b"\xc1 not msgpack")])
    wait_for(lambda: app.backend.snapshot().totals.dead_lettered == 2, DEADLINE, "two dead letters")
    snap = take_snapshot(app)
    assert snap.tasks.totals.failed == 2
    by_type = {t.error_type: t for t in snap.tasks.recent_failures}
    assert by_type["yadtq.exceptions.NotRegistered"].task_id == unknown.id
    # No readable id: listed under a made-up one.
    assert by_type["yadtq.exceptions.ProtocolError"].task_id.startswith("dlq-")
    assert len(app.broker.dead_letters()) == 2


# --------------------------------------------------------------------------- health


def test_a_stalled_consume_loop_reports_unhealthy_while_alive(
        app: YADTQ, monkeypatch: pytest.MonkeyPatch, runner: CliRunner) -> None:
    stall, release = threading.Event(), threading.Event()
    fetch = MemoryConsumer.fetch

    def stalling_fetch(self: MemoryConsumer, max_items: int, timeout: float) -> list[Any]:
        if stall.is_set():
            release.wait(DEADLINE)
        return fetch(self, max_items, timeout)

    monkeypatch.setattr(MemoryConsumer, "fetch", stalling_fetch)
    worker = Worker(app, name="stuck", concurrency=1).start()
    try:
        wait_for(lambda: worker_info(app, "stuck").get("healthy") is True, DEADLINE, "a healthy beat")
        stall.set()
        wait_for(lambda: worker_info(app, "stuck").get("healthy") is False, DEADLINE, "an unhealthy beat")
        assert worker_info(app, "stuck")["status"] == "alive"  # still heartbeating
        (status,) = take_snapshot(app).workers
        assert (status.status, status.healthy) == ("alive", False)
        (listed,) = json_out(invoke(runner, "inspect", "workers", "-A", APP, "--json"))
        assert (listed["worker"], listed["status"], listed["healthy"]) == ("stuck", "alive", False)
        assert "stalled" in invoke(runner, "inspect", "workers", "-A", APP).stdout
        stall.clear()
        release.set()
        wait_for(lambda: worker_info(app, "stuck").get("healthy") is True, DEADLINE, "recovery")
    finally:
        release.set()
        worker.stop(timeout=DEADLINE)


# --------------------------------------------------------------------------- commands in-process


def test_monitor_json(runner: CliRunner, busy: dict[str, str]) -> None:
    data = json_out(invoke(runner, "monitor", "-A", APP, "-Q", "default,idle", "--json",
                           "--interval", "0.1"))
    assert data["counts"]["queued"] == 2 and data["counts"]["processing"] == 1
    assert data["totals"] == {"succeeded": 5, "failed": 1, "retried": 1, "revoked": 0,
                              "dead_lettered": 0}
    assert data["throughput"] == 0  # nothing finished during the interval
    assert [t["task_id"] for t in data["processing"]] == [busy["slow"]]
    assert data["recent_failures"][0]["error_message"] == "boom"
    assert [w["worker"] for w in data["workers"]] == ["monitor-worker"]


def test_monitor_once(runner: CliRunner, busy: dict[str, str]) -> None:
    result = invoke(runner, "monitor", "-A", APP, "-Q", "idle", "--once", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("yadtq monitor", "In progress (1)", busy["slow"], "monitor-worker", "alive",
                 "Recent successes (5)", "Recent failures (1)", "ValueError: boom", "idle",
                 "no worker failures", "throughput"):
        assert text in out, text


def test_inspect(runner: CliRunner, busy: dict[str, str]) -> None:
    (worker,) = json_out(invoke(runner, "inspect", "workers", "-A", APP, "--json"))
    assert (worker["worker"], worker["status"], worker["healthy"], worker["tasks_done"],
            worker["tasks_failed"], worker["active"]) == ("monitor-worker", "alive", True, 5, 1, 1)
    active = json_out(invoke(runner, "inspect", "active", "-A", APP, "--json"))
    assert [(t["task_id"], t["worker"]) for t in active] == [(busy["slow"], "monitor-worker")]
    scheduled = json_out(invoke(runner, "inspect", "scheduled", "-A", APP, "--json"))
    assert [t["task_id"] for t in scheduled] == [busy["later"], busy["countdown"]]  # soonest first
    failed = json_out(invoke(runner, "inspect", "failed", "-A", APP, "--json"))
    assert [(t["task_id"], t["error_type"]) for t in failed] == [(busy["failed"], "builtins.ValueError")]
    table = invoke(runner, "inspect", "active", "-A", APP).stdout
    assert busy["slow"] in table and "monitor-worker" in table


def test_tasks_by_state(runner: CliRunner, busy: dict[str, str]) -> None:
    def state(name: str, *extra: str) -> Any:
        return json_out(invoke(runner, "tasks", "-A", APP, "--state", name, "--json", *extra))

    assert state("queued", "-Q", "idle") == {"state": "queued", "count": 2, "queues": {"idle": 2},
                                             "tasks": None, "by_priority": {"idle": {"0": 2}}}
    processing = state("processing")
    assert processing["count"] == 1 and processing["tasks"][0]["task_id"] == busy["slow"]
    assert [t["task_id"] for t in state("retrying")["tasks"]] == [busy["later"]]
    assert state("scheduled")["count"] == 2
    success = state("success", "--limit", "2")
    assert success["total"] == 5 and len(success["tasks"]) == 2
    assert state("failed")["tasks"][0]["task_id"] == busy["failed"]
    assert state("revoked") == {"state": "revoked", "total": 0, "tasks": None}
    queued = invoke(runner, "tasks", "-A", APP, "--state", "queued", "-Q", "idle")
    assert queued.stdout == "2 queued (idle: 2)\n"
    assert "not a list" in queued.stderr
    assert "5 success in total" in invoke(runner, "tasks", "-A", APP, "--state", "success").stdout


@pytest.mark.parametrize("args", [
    ["inspect", "nonsense", "-A", APP],
    ["inspect", "-A", APP],
    ["tasks", "-A", APP],
    ["tasks", "-A", APP, "--state", "sleeping"],
    ["tasks", "-A", APP, "--state", "failed", "--limit", "0"],
    ["monitor", "-A", APP, "--interval", "0"],
])
def test_usage_errors_exit_2(runner: CliRunner, app: YADTQ, args: list[str]) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["monitor", "--once"], ["monitor", "--json"], ["inspect", "workers"],
                                     ["tasks", "--state", "failed"]])
def test_bad_app_is_one_line(runner: CliRunner, command: list[str]) -> None:
    result = invoke(runner, *command[:1], "-A", "tests.apps.no_such_module", *command[1:])
    assert result.exit_code == 1
    assert "cannot import" in error_line(result.stderr)


@pytest.mark.parametrize("command", ["monitor", "inspect", "tasks"])
def test_help(runner: CliRunner, command: str) -> None:
    result = invoke(runner, command, "--help")
    assert result.exit_code == 0 and "--app" in result.stdout and "--json" in result.stdout
    assert command in invoke(runner, "--help").stdout


# --------------------------------------------------------------------------- live view

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


@pytest.mark.slow
def test_live_view_refreshes_in_a_terminal_and_quits_on_ctrl_c(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    url = f"sqlite:///{tmp_path / 'live.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
    env.update(YADTQ_BROKER_URL=url, YADTQ_BACKEND_URL=url,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    child = pexpect.spawn(sys.executable, ["-m", "yadtq.cli", "monitor", "-A", "examples.math_app",
                                           "--interval", "0.2"],
                          env=env, cwd=str(ROOT), dimensions=(60, 150), encoding="utf-8",
                          # The terminal echoes ^C where it lands, possibly inside a character.
                          codec_errors="replace")
    try:
        seen = ""

        def shows(pattern: str) -> bool:
            nonlocal seen
            with contextlib.suppress(pexpect.TIMEOUT):
                seen += child.read_nonblocking(65536, timeout=0.1)
            return re.search(pattern, ANSI.sub("", seen)) is not None

        wait_for(lambda: shows(r"queued\s+0\b"), DEADLINE, "the first view")
        seen = ""
        submitted = subprocess.run([sys.executable, "-m", "yadtq.cli", "submit", "-A", "examples.math_app",
                                    "add", "1", "2"], env=env, cwd=ROOT, capture_output=True, text=True,
                                   timeout=60, check=False)
        assert submitted.returncode == 0, submitted.stderr
        wait_for(lambda: shows(r"queued\s+1\b"), DEADLINE, "a refresh showing the queued task")
        child.sendintr()
        child.expect(pexpect.EOF, timeout=DEADLINE)
        child.close()
        assert child.exitstatus == 0
    finally:
        if child.isalive():
            child.terminate(force=True)


# --------------------------------------------------------------------------- live clusters


class LiveCluster:
    """Real ``yadtq worker`` processes; ``cli`` runs ``python -m yadtq.cli`` as a client."""

    def __init__(self, app: YADTQ, module: Any, env: dict[str, str], logdir: Path) -> None:
        self.app = app
        self.module = module
        self.env = env
        self.logdir = logdir

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, COLUMNS="200")
        return subprocess.run([sys.executable, "-m", "yadtq.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    def monitor_json(self, app_path: str) -> Any:
        proc = self.cli("monitor", "-A", app_path, "--json", "--interval", "0.2")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


def load_client(app_path: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app module, re-imported in this process with the workers' environment."""
    for key, value in env.items():
        if key.startswith("YADTQ_"):
            monkeypatch.setenv(key, value)
    return importlib.reload(importlib.import_module(app_path))


def check_live_cluster(cluster: LiveCluster, app_path: str, add: Callable[..., Any],
                       start_slow: Callable[[], Any], slow_started: Callable[[], bool]) -> None:
    """Shared by the SQLite and Kafka + Redis runs: 20 successes, one task failed and
    dead-lettered (its name is registered nowhere), one task in progress; then a
    worker killed shows in the failure history."""
    app = cluster.app
    with running_workers(2, app_path, cluster.env, cluster.logdir, ["-c", "4"], prefix="mon") as workers:
        wait_ready(workers, app.get_worker_status)
        for result in [add.delay(i, 1) for i in range(20)]:
            assert result.get(timeout=DEADLINE) is not None
        unknown = app.send_task("tests.apps.nowhere.missing", (1,))
        app.flush(10)
        unknown.get(timeout=DEADLINE, propagate=False)
        assert unknown.state == states.FAILED
        slow = start_slow()
        wait_for(slow_started, DEADLINE, "the slow task to start")

        def counted() -> bool:
            reports = app.get_worker_status().values()
            return (sum(s["tasks_done"] for s in reports) == 20
                    and sum(s["active"] for s in reports) == 1)

        wait_for(counted, DEADLINE, "heartbeats counting the successes and the slow task")

        def all_healthy() -> Any:
            # A worker's loop may stall for a moment (e.g. a Kafka rebalance as the second
            # worker joins): wait for a snapshot where both report themselves healthy.
            snapshot = cluster.monitor_json(app_path)
            healthy = [w for w in snapshot["workers"] if w["status"] == "alive" and w["healthy"]]
            return snapshot if len(healthy) == 2 else None

        data = wait_for(all_healthy, DEADLINE, "both workers alive and healthy")
        assert data["totals"] == {"succeeded": 20, "failed": 1, "retried": 0, "revoked": 0,
                                  "dead_lettered": 1}
        assert data["counts"]["processing"] == 1
        (running,) = data["processing"]
        assert running["task_id"] == slow.id and running["worker"] in {"mon0", "mon1"}
        assert running["name"] == slow_name(app_path)
        assert len(data["recent_successes"]) == 20
        (failure,) = data["recent_failures"]
        assert (failure["task_id"], failure["error_type"]) == (
            unknown.id, "yadtq.exceptions.NotRegistered")
        workers_seen = {w["worker"]: w for w in data["workers"]}
        assert set(workers_seen) == {"mon0", "mon1"}
        assert all(w["status"] == "alive" and w["healthy"] for w in workers_seen.values())
        assert sum(w["active"] for w in workers_seen.values()) == 1
        assert data["queues"][0]["name"] == app.settings.default_queue
        assert data["worker_failures"] == []

        once = cluster.cli("monitor", "-A", app_path, "--once", "--interval", "0.2")
        assert once.returncode == 0, once.stderr
        for text in (slow.id, "mon0", "mon1", "alive", "NotRegistered", "In progress (1)"):
            assert text in once.stdout, text

        # Kill the worker that is not running the slow task: the other one notices.
        victim = next(w for w in workers if w.name != running["worker"])
        victim.signal(signal.SIGKILL)
        victim.wait(DEADLINE)

        def failure_listed() -> Any:
            snapshot = cluster.monitor_json(app_path)
            return [f for f in snapshot["worker_failures"] if f["worker"] == victim.name] and snapshot

        snapshot = wait_for(failure_listed, DEADLINE, "the failure in the history")
        (listed,) = [f for f in snapshot["worker_failures"] if f["worker"] == victim.name]
        assert listed["last_heartbeat"] <= listed["detected"]
        statuses = {w["worker"]: w["status"] for w in snapshot["workers"]}
        assert statuses == {victim.name: "unresponsive", running["worker"]: "alive"}
        assert slow.get(timeout=DEADLINE) is not None


def slow_name(app_path: str) -> str:
    return f"{app_path}.{'slow' if app_path.endswith('proc_app') else 'sleep_then'}"


@pytest.mark.slow
def test_live_sqlite_cluster(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app_path = "tests.apps.proc_app"
    effects = tmp_path / "effects"
    effects.mkdir()
    env = worker_env(sqlite_url, sqlite_url, effects, heartbeat_interval="0.5",
                     worker_unresponsive_after="2")
    module = load_client(app_path, env, monkeypatch)
    cluster = LiveCluster(module.app, module, env, tmp_path)
    try:
        check_live_cluster(
            cluster, app_path, module.add, lambda: module.slow.delay("slow", 20.0),
            lambda: (effects / "slow.started").exists())
        wait_for_file_lines(effects / "slow.finished", 1)
    finally:
        module.app.close()


@pytest.mark.integration
@pytest.mark.kafka
@pytest.mark.redis
@pytest.mark.slow
def test_live_kafka_redis_cluster(kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("yadtq.transports.kafka")
    import redis

    app_path = "tests.apps.kafka_app"
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_url, tmp_path, heartbeat_interval="0.5",
                     worker_unresponsive_after="2", partitions="2", default_queue=f"mon-{unique}",
                     namespace=f"mon-{unique}")
    env["YADTQ_TEST_REDIS"] = redis_url
    env["YADTQ_TEST_COUNTERS"] = f"mon-{unique}:counters"
    monkeypatch.setenv("YADTQ_TEST_REDIS", redis_url)
    monkeypatch.setenv("YADTQ_TEST_COUNTERS", env["YADTQ_TEST_COUNTERS"])
    module = load_client(app_path, env, monkeypatch)
    counters = redis.Redis.from_url(redis_url)
    cluster = LiveCluster(module.app, module, env, tmp_path)
    try:
        check_live_cluster(
            cluster, app_path, module.add, lambda: module.sleep_then.delay("slow", 30.0),
            lambda: counters.get(f"{env['YADTQ_TEST_COUNTERS']}:slow:started") is not None)
    finally:
        module.app.close()
        counters.close()


def test_live_view_at_80x24_keeps_workers_and_failures_on_screen() -> None:
    from rich.console import Console

    from yadtq.cli.monitor import fitted
    from yadtq.monitor import QueueStatus, WorkerStatus
    from yadtq.transports.base import BackendSnapshot, TaskSummary, WorkerFailure, WorkerInfo

    now = time.time()
    busy = tuple(TaskSummary(f"{i:032x}", "examples.math_app.add", "worker-a", "default", now - i,
                             runtime=0.5, error_type="builtins.ValueError", error_message="boom")
                 for i in range(20))
    workers = tuple(WorkerStatus(WorkerInfo(name, name + "-1", queues=("default",), concurrency=4,
                                            last_heartbeat=now, tasks_done=9), "alive")
                    for name in ("worker-a", "worker-b"))
    snapshot = ClusterSnapshot(
        taken=now, app="math", broker="kafka://127.0.0.1:9092", backend="redis://127.0.0.1:6379/0",
        queues=(QueueStatus("default", 4), QueueStatus("reports", 1)), workers=workers,
        failures=(WorkerFailure("worker-c", "worker-c-1", now - 60, now - 40),),
        tasks=BackendSnapshot(processing=20, totals=TaskTotals(succeeded=20, failed=20),
                              processing_tasks=busy, recent_successes=busy, recent_failures=busy))
    for width, height in ((80, 24), (100, 30), (150, 60)):
        console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True)
        lines = console.render_lines(fitted(snapshot, console), console.options.update(height=None),
                                     pad=False)
        text = "\n".join("".join(segment.text for segment in line) for line in lines)
        assert len(lines) <= height, text
        for needed in ("Workers", "worker-a", "worker-b", "Worker failures", "worker-c"):
            assert needed in text, (width, height, needed, text)
    assert "Recent successes" in text  # a tall terminal still shows the task lists
