"""Real ``yadtq worker`` processes on the embedded SQLite transport, a client in the test."""

from __future__ import annotations

import importlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from yadtq import YADTQ, NotRegistered, Revoked, SerializationError, states
from yadtq.transports.base import Message

from .helpers import wait_until
from .procs import lines, running_workers, wait_for_file_lines, wait_ready, worker_env

pytestmark = pytest.mark.slow
APP = "tests.apps.proc_app"
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "2", "visibility_timeout": "3"}


@pytest.fixture
def side_effects(tmp_path: Path) -> Path:
    path = tmp_path / "effects"
    path.mkdir()
    return path


@pytest.fixture
def env(sqlite_url: str, side_effects: Path) -> dict[str, str]:
    return worker_env(sqlite_url, sqlite_url, side_effects, **FAST)


@pytest.fixture
def client(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[YADTQ]:
    """The test app module, loaded in this process on the same database as the workers."""
    for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_SIDE_EFFECTS",
                *(f"YADTQ_{k.upper()}" for k in FAST)):
        monkeypatch.setenv(key, env[key])
    module = importlib.import_module(APP)
    module = importlib.reload(module)  # re-read the environment
    yield module.app
    module.app.close()


def test_500_tasks_across_two_workers(client: YADTQ, env: dict[str, str], tmp_path: Path) -> None:
    from tests.apps import proc_app

    with running_workers(2, APP, env, tmp_path, ["-c", "4"]) as workers:
        wait_ready(workers, client.get_worker_status)  # both polling before the 500 arrive
        results = [proc_app.add.delay(i, i) for i in range(500)]
        assert [r.get(timeout=60) for r in results] == [2 * i for i in range(500)]
        ran_on = {r.worker for r in results}
        assert ran_on == {w.name for w in workers}, ran_on


def test_retries_then_success(client: YADTQ, env: dict[str, str], tmp_path: Path,
                              side_effects: Path) -> None:
    from tests.apps import proc_app

    with running_workers(1, APP, env, tmp_path):
        result = proc_app.flaky.delay("flaky", 2)
        assert result.get(timeout=30) == "recovered"
    assert result.retries == 2 and lines(side_effects / "flaky") == 3


def test_retries_exhausted_reraise_the_remote_error(client: YADTQ, env: dict[str, str],
                                                    tmp_path: Path, side_effects: Path) -> None:
    from tests.apps import proc_app

    with running_workers(1, APP, env, tmp_path):
        result = proc_app.always_fails.delay("doomed")
        with pytest.raises(LookupError, match="nothing for doomed"):
            result.get(timeout=30)
    assert result.state == states.FAILED and result.retries == 3
    assert lines(side_effects / "doomed") == 4
    assert "LookupError" in (result.traceback or "")


def test_builtin_exception_types_are_preserved(client: YADTQ, env: dict[str, str], tmp_path: Path) -> None:
    from tests.apps import proc_app

    with running_workers(1, APP, env, tmp_path):
        with pytest.raises(ZeroDivisionError):
            proc_app.divide.delay(1, 0).get(timeout=30)
        assert proc_app.divide.delay(1, 4).get(timeout=30) == 0.25


def test_serialization_error_at_delay_time(client: YADTQ) -> None:
    from tests.apps import proc_app

    with pytest.raises(SerializationError):
        proc_app.add.delay(object(), 1)
    assert client.broker.depth("default") == 0


def test_countdown_is_respected(client: YADTQ, env: dict[str, str], tmp_path: Path) -> None:
    from tests.apps import proc_app

    with running_workers(1, APP, env, tmp_path) as workers:
        wait_ready(workers, client.get_worker_status)
        sent = time.time()
        result = proc_app.record_time.apply_async(("cd",), countdown=1.0)
        assert result.state == states.SCHEDULED
        ran_at = result.get(timeout=30)
    assert 1.0 <= ran_at - sent < 3.0


def test_revoke_before_run(client: YADTQ, env: dict[str, str], tmp_path: Path, side_effects: Path) -> None:
    from tests.apps import proc_app

    doomed = proc_app.record_time.apply_async(("revoked",), countdown=0.5)
    doomed.revoke()
    queued = proc_app.record_time.delay("queued-then-revoked")
    queued.revoke()
    with running_workers(1, APP, env, tmp_path):
        marker = proc_app.record_time.apply_async(("after",), countdown=1.0)
        marker.get(timeout=30)  # due after the revoked one: the worker has seen both
        wait_until(lambda: client.broker.depth("default") == 0, timeout=10)
    for result in (doomed, queued):
        assert result.state == states.REVOKED
        with pytest.raises(Revoked):
            result.get(timeout=1)
    assert not (side_effects / "revoked").exists() and not (side_effects / "queued-then-revoked").exists()


def test_sigkill_mid_task_runs_it_again(client: YADTQ, env: dict[str, str], tmp_path: Path,
                                        side_effects: Path) -> None:
    from tests.apps import proc_app

    with running_workers(1, APP, env, tmp_path, prefix="victim") as (victim,):
        result = proc_app.slow.delay("killed", 1.0)
        wait_for_file_lines(side_effects / "killed.started", 1)
        victim.signal(signal.SIGKILL)
        victim.wait(10)
    assert lines(side_effects / "killed.finished") == 0
    with running_workers(1, APP, env, tmp_path, prefix="rescuer"):
        assert result.get(timeout=60) == "slept 1.0"
    assert lines(side_effects / "killed.started") == 2
    assert lines(side_effects / "killed.finished") == 1
    assert result.worker == "rescuer0"


def test_sigterm_finishes_the_in_flight_task_and_exits_0(client: YADTQ, env: dict[str, str],
                                                         tmp_path: Path, side_effects: Path) -> None:
    from tests.apps import proc_app

    with running_workers(1, APP, env, tmp_path) as (worker,):
        result = proc_app.slow.delay("graceful", 1.0)
        wait_for_file_lines(side_effects / "graceful.started", 1)
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    assert result.state == states.SUCCESS and result.get(timeout=1) == "slept 1.0"
    assert lines(side_effects / "graceful.started") == 1
    assert client.get_worker_status()["w0"]["status"] == "offline"


def test_garbage_is_dead_lettered_and_the_next_task_runs(client: YADTQ, env: dict[str, str],
                                                         tmp_path: Path) -> None:
    from tests.apps import proc_app

    client.broker.publish([Message("default", b"\x00\x01 garbage \xff")])
    after = proc_app.add.delay(20, 22)
    with running_workers(1, APP, env, tmp_path):
        assert after.get(timeout=30) == 42
    dead = client.broker.dead_letters()
    assert [d.body for d in dead] == [b"\x00\x01 garbage \xff"]


def test_unknown_task_fails_with_not_registered(client: YADTQ, env: dict[str, str], tmp_path: Path) -> None:
    result = client.send_task("tests.apps.proc_app.no_such_task", (1, 2))
    with running_workers(1, APP, env, tmp_path), pytest.raises(NotRegistered, match="no_such_task"):
        result.get(timeout=30)
    assert result.state == states.FAILED
    assert any(d.headers.get("yadtq-id") == result.id.encode() for d in client.broker.dead_letters())
