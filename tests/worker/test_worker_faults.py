"""Faults inside real ``yadtq worker`` processes (embedded SQLite transport): crashed worker
threads, process-pool children killed by signals, a hung worker, an unreachable backend."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from yadtq import YADTQ, states

from .helpers import wait_until
from .procs import ROOT, WorkerProcess, lines, running_workers, wait_ready, worker_env

pytestmark = pytest.mark.slow
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "2", "visibility_timeout": "3"}


@pytest.fixture
def side_effects(tmp_path: Path) -> Path:
    path = tmp_path / "effects"
    path.mkdir()
    return path


@pytest.fixture
def env(sqlite_url: str, side_effects: Path) -> dict[str, str]:
    return worker_env(sqlite_url, sqlite_url, side_effects, **FAST)


def _load(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_SIDE_EFFECTS",
                *(f"YADTQ_{k.upper()}" for k in FAST)):
        monkeypatch.setenv(key, env[key])
    return importlib.reload(importlib.import_module(name))  # re-read the environment


@pytest.fixture
def procs(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = _load("tests.apps.proc_app", env, monkeypatch)
    yield module
    module.app.close()


@pytest.fixture
def faults(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = _load("tests.apps.fault_app", env, monkeypatch)
    yield module
    module.app.close()


def _info(app: YADTQ, name: str) -> object:
    return next(w for w in app.backend.workers() if w.worker == name)


# --------------------------------------------------------------------------- crashed threads


def test_a_recorder_crash_stops_the_worker_unhealthy_and_the_task_runs_again(
        faults: ModuleType, env: dict[str, str], tmp_path: Path, side_effects: Path) -> None:
    app: YADTQ = faults.app
    (side_effects / "record-fault").touch()  # the first victim success: "database is locked"
    first = WorkerProcess("tests.apps.fault_app", env, "crashes", tmp_path / "crashes.log")
    try:
        wait_ready([first], app.get_worker_status)
        result = faults.victim.delay(7)
        # The crash may have lost the outcome: the worker stops, exit status 1, unhealthy.
        assert first.wait(60) == 1, first.log()[-3000:]
        info = _info(app, "crashes")
        assert info.healthy is False  # type: ignore[attr-defined]
        assert any("recorder" in p and "database is locked" in p
                   for p in info.extra.get("problems", ())), info  # type: ignore[attr-defined]
        assert "worker thread recorder crashed" in first.log()
        assert result.state == states.PROCESSING
    finally:
        first.stop()
    # Its delivery was never reported done: it comes back, and the task's outcome is stored.
    with running_workers(1, "tests.apps.fault_app", env, tmp_path, prefix="after"):
        assert result.get(timeout=60) == 7
    assert lines(side_effects / "victim-7") == 2  # its first outcome was lost, so it ran again


def test_a_message_whose_retry_could_not_be_built_is_dead_lettered_and_the_worker_lives_on() -> None:
    from yadtq.envelope import Envelope, encode
    from yadtq.transports.base import Message
    from yadtq.worker.main import Worker

    app = YADTQ("poison", broker="memory://", backend="memory://", retry_delay=0.01)

    @app.task
    def fails() -> None:
        raise ConnectionError("try again")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    # A routing key that is not a string (the message was not made by a yadtq client): its
    # retry could never be built, so it is refused at decode, before it can run or crash a thread.
    poison = Envelope(id="poison-1", task=fails.name, key=5, created=time.time())  # type: ignore[arg-type]
    worker = Worker(app, name="poisoned").start()
    try:
        app.broker.publish([Message("default", encode(poison), b"5", poison.headers())])
        wait_until(lambda: len(app.broker.dead_letters()) == 1, timeout=20)
        assert app.AsyncResult("poison-1").state == states.QUEUED  # never run, never recorded
        assert add.delay(2, 3).get(timeout=20) == 5  # outcomes are still stored
        assert worker.problems() == []
    finally:
        worker.stop(10)


def test_a_recorder_that_makes_no_progress_makes_the_worker_unhealthy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from yadtq.worker.main import Worker

    app = YADTQ("stuck", broker="memory://", backend="memory://", heartbeat_interval=0.1)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    release = threading.Event()
    record = app.backend.record

    def hangs(changes: object, scheduled: object = ()) -> None:  # a backend call that never returns
        if any(c.state == states.SUCCESS for c in changes):  # type: ignore[attr-defined]
            release.wait(60)
        record(changes, scheduled)  # type: ignore[arg-type]

    monkeypatch.setattr(app.backend, "record", hangs)
    worker = Worker(app, name="stuck").start()
    try:
        result = add.delay(2, 3)
        wait_until(lambda: any("recorder: 1 outcomes waiting" in p for p in worker.problems()),
                   timeout=30)
        wait_until(lambda: _info(app, "stuck").healthy is False, timeout=10)  # type: ignore[attr-defined]
        release.set()
        assert result.get(timeout=10) == 5
        wait_until(lambda: _info(app, "stuck").healthy is True, timeout=10)  # type: ignore[attr-defined]
    finally:
        release.set()
        worker.stop(10)


# --------------------------------------------------------------------------- process pool


def test_a_stop_signal_to_the_whole_group_lets_process_pool_tasks_finish(
        procs: ModuleType, env: dict[str, str], tmp_path: Path, side_effects: Path) -> None:
    app: YADTQ = procs.app
    worker = WorkerProcess("tests.apps.proc_app", env, "group", tmp_path / "group.log",
                           ["--pool", "processes", "-c", "2"], new_session=True)
    try:
        wait_ready([worker], app.get_worker_status)
        results = [procs.slow_pid.delay(f"g{n}", 3.0) for n in range(2)]
        wait_until(lambda: all(lines(side_effects / f"g{n}.started") == 1 for n in range(2)),
                   timeout=60)
        os.killpg(worker.proc.pid, signal.SIGTERM)  # systemd KillMode=control-group, Ctrl-C...
        assert worker.wait(60) == 0, worker.log()[-3000:]
        # The children ignored the signal: the parent let them finish and stored their results.
        assert [r.state for r in results] == [states.SUCCESS, states.SUCCESS]
        assert all(lines(side_effects / f"g{n}.finished") == 1 for n in range(2))
    finally:
        worker.stop()


def test_a_pool_child_killed_by_a_signal_is_retried(
        procs: ModuleType, env: dict[str, str], tmp_path: Path, side_effects: Path) -> None:
    with running_workers(1, "tests.apps.proc_app", env, tmp_path, ["--pool", "processes", "-c", "1"]):
        result = procs.dies_once.delay("oom")
        child = result.get(timeout=60)  # the first attempt's child was SIGKILLed
    assert result.retries == 1 and lines(side_effects / "oom") == 2
    assert child in {int(pid) for pid in (side_effects / "oom").read_text().split()}


def test_a_child_killed_on_every_attempt_fails_with_worker_lost() -> None:
    from yadtq.exceptions import WorkerLostError
    from yadtq.worker.main import Worker

    app = YADTQ("lost", broker="memory://", backend="memory://", retry_delay=0.01)

    @app.task(max_retries=1)
    def always_killed() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    worker = Worker(app, pool="processes", concurrency=1).start()
    try:
        result = always_killed.delay()
        with pytest.raises(WorkerLostError, match="killed by SIGKILL"):
            result.get(timeout=30)
        assert result.retries == 1
    finally:
        worker.stop(10)


# --------------------------------------------------------------------------- hung worker


def test_a_hung_worker_resumed_does_not_overwrite_the_rerun(
        procs: ModuleType, env: dict[str, str], tmp_path: Path, side_effects: Path) -> None:
    app: YADTQ = procs.app
    hung = WorkerProcess("tests.apps.proc_app", env, "hung", tmp_path / "hung.log")
    try:
        wait_ready([hung], app.get_worker_status)
        result = procs.slow_pid.delay("h", 2.0)
        wait_until(lambda: lines(side_effects / "h.started") == 1, timeout=30)
        hung.signal(signal.SIGSTOP)
        wait_until(lambda: app.get_worker_status()["hung"]["status"] == "unresponsive", timeout=15)
        with running_workers(1, "tests.apps.proc_app", env, tmp_path, prefix="rescuer") as rescuers:
            rerun = result.get(timeout=60)
            assert rerun == rescuers[0].proc.pid
            assert any(f.worker == "hung" for f in app.worker_failures())
            hung.signal(signal.SIGCONT)
            # The resumed worker finishes its copy; its late outcome is refused.
            wait_until(lambda: lines(side_effects / "h.finished") == 2, timeout=30)
            hung.stop()
            assert hung.proc.returncode == 0
        assert app.AsyncResult(result.id).get(timeout=5) == rerun
        assert app.backend.snapshot().totals.succeeded == 1
    finally:
        hung.stop()


# --------------------------------------------------------------------------- client


def test_get_raises_broker_unavailable_for_a_refused_message_even_without_a_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from yadtq import BackendUnavailable, BrokerUnavailable

    app = YADTQ("refused", broker="memory://", backend="memory://")

    @app.task
    def lost() -> None: ...

    result = lost.delay()

    def down(*args: object, **kwargs: object) -> None:
        raise BackendUnavailable("backend down")

    monkeypatch.setattr(app.backend, "record", down)
    monkeypatch.setattr(app.backend, "get", down)
    monkeypatch.setattr(app.backend, "wait", down)
    hook = app.broker.on_delivery_error
    assert hook is not None
    hook(result.id, "Broker: Message size too large")  # the backend cannot be told...
    with pytest.raises(BrokerUnavailable, match="too large"):  # ...this process knows anyway
        result.get(timeout=5)
    assert isinstance(result.get(timeout=5, propagate=False), BrokerUnavailable)


# --------------------------------------------------------------------------- startup


def _cli_worker(env: dict[str, str], backend: str) -> subprocess.CompletedProcess[str]:
    env = dict(env, YADTQ_BACKEND_URL=backend)
    return subprocess.run([sys.executable, "-m", "yadtq.cli", "worker", "-A", "tests.apps.proc_app",
                           "-l", "warning"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_a_worker_whose_backend_does_not_answer_exits_with_one_line(
        env: dict[str, str], silent_port: int) -> None:
    started = time.monotonic()
    done = _cli_worker(env, f"redis://127.0.0.1:{silent_port}/0")
    assert done.returncode == 1
    assert time.monotonic() - started < 40  # START_TIMEOUT is 15 s; the rest is start-up on a busy box
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: worker ") and "cannot start" in last and "backend" in last


def test_a_worker_whose_backend_refuses_exits_with_one_line(env: dict[str, str]) -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _cli_worker(env, f"redis://127.0.0.1:{port}/0")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("Error: ")]
