"""``yadtq monitor``'s live view in a terminal, and live clusters of real worker processes
(SQLite; Kafka + Redis) seen through the monitor, ``inspect`` and ``tasks``."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.cli.conftest import ROOT, wait_for
from tests.worker.procs import running_workers, wait_for_file_lines, wait_ready, worker_env
from yadtq import YADTQ, states
from yadtq.monitor import ClusterSnapshot
from yadtq.transports.base import TaskTotals

DEADLINE = 30.0


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
