"""``yadtq monitor``, ``inspect`` and ``tasks``: the snapshot data model, worker health and
the commands in-process. The live view and live clusters are in ``test_monitor_live.py``."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.apps import monitor_app
from tests.cli.conftest import error_line, wait_for
from yadtq import YADTQ
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
