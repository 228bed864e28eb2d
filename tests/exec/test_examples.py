"""The execution-control examples run as documented."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ..worker.procs import ROOT, running_workers, wait_ready, worker_env

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = worker_env(sqlite_url, sqlite_url, tmp_path)
    monkeypatch.setenv("YADTQ_BROKER_URL", sqlite_url)
    monkeypatch.setenv("YADTQ_BACKEND_URL", sqlite_url)
    return env


@pytest.fixture
def async_app(sqlite_env: dict[str, str]) -> Iterator[ModuleType]:
    module = importlib.reload(importlib.import_module("examples.async_app"))
    yield module
    module.app.close()


def test_async_example_runs_as_a_script(sqlite_env: dict[str, str], async_app: ModuleType,
                                        tmp_path: Path) -> None:
    with running_workers(1, "examples.async_app", sqlite_env, tmp_path,
                         ["--pool", "asyncio", "-c", "1000"]) as workers:
        wait_ready(workers, async_app.app.get_worker_status)
        done = subprocess.run([sys.executable, "examples/async_app.py"], cwd=ROOT, env=sqlite_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1000 tasks of 1 s each done" in done.stdout and "add(2, 3) = 5" in done.stdout


def test_fastapi_example_awaits_results(sqlite_env: dict[str, str], async_app: ModuleType,
                                        tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    module = importlib.reload(importlib.import_module("examples.fastapi_app"))

    async def client() -> None:
        transport = httpx.ASGITransport(app=module.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as http:
            answers = await asyncio.gather(*(http.post("/double", params={"x": i}) for i in range(20)))
            assert [a.json()["result"] for a in answers] == [2 * i for i in range(20)]
            sent = (await http.post("/double", params={"x": 4, "wait": "false"})).json()
            await async_app.app.AsyncResult(sent["id"]).aget(timeout=30)
            state = (await http.get(f"/tasks/{sent['id']}")).json()
            assert state == {"id": sent["id"], "state": "success", "result": 8}

    with running_workers(1, "examples.async_app", sqlite_env, tmp_path, ["--pool", "asyncio"]):
        asyncio.run(asyncio.wait_for(client(), 90))


def test_hooks_example_runs_as_a_script(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    with running_workers(1, "examples.hooks_app", sqlite_env, tmp_path, ["-c", "2"]) as workers:
        done = subprocess.run([sys.executable, "examples/hooks_app.py"], cwd=ROOT, env=sqlite_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "6 / 3 = 2.0" in done.stdout and "1 / 0 failed: division by zero" in done.stdout
    log = workers[0].log()
    assert "worker w0 ready" in log and "starting examples.hooks_app.divide(6, 3)" in log
    assert "examples.hooks_app.divide ended success" in log and "failed: division by zero" in log


def test_routing_example_runs_as_a_script(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    with running_workers(1, "examples.routing_app", sqlite_env, tmp_path, ["-Q", "reports,default"]):
        done = subprocess.run([sys.executable, "examples/routing_app.py"], cwd=ROOT, env=sqlite_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "report_daily -> report for 2030-01-01" in done.stdout
    assert "notify -> None (success)" in done.stdout and "queues: reports default" in done.stdout


def test_progress_example_runs_as_a_script(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    with running_workers(1, "examples.progress_app", sqlite_env, tmp_path):
        done = subprocess.run([sys.executable, "examples/progress_app.py"], cwd=ROOT, env=sqlite_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("PROGRESS {'done': ") for line in lines), lines
    assert lines[-2].startswith("success {'files': 60}") and lines[-1] == "resized 60"


def test_cancel_example_runs_as_a_script(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    with running_workers(1, "examples.cancel_app", sqlite_env, tmp_path) as workers:
        done = subprocess.run([sys.executable, "examples/cancel_app.py"], cwd=ROOT, env=sqlite_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "running: PROGRESS" in done.stdout and "after revoke: revoked" in done.stdout
    assert "get() raised Revoked" in done.stdout
    assert "revoked while running: stopping it" in workers[0].log()


def test_limits_example_runs_as_a_script(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    with running_workers(1, "examples.limits_app", sqlite_env, tmp_path, ["--pool", "processes",
                                                                         "-c", "2"]):
        done = subprocess.run([sys.executable, "examples/limits_app.py"], cwd=ROOT, env=sqlite_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "all 5 rows" and lines[1].startswith("partial: ")
    assert lines[2].startswith("stuck: ") and "time limit of 1" in lines[2]
