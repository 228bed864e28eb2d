"""CLI fixtures: CliRunner on the in-process ``tests.apps.cli_app`` (memory://), and
real ``python -m yadtq.cli`` subprocesses sharing a SQLite database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import pytest
from click.testing import CliRunner

from tests.apps import cli_app
from yadtq import YADTQ
from yadtq.contrib.pytest import on_memory
from yadtq.worker.main import Worker

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(condition: Callable[[], Optional[T]], timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def error_line(stderr: str) -> str:
    """The one ``Error: ...`` line a failing command prints (asserting that is all it printed,
    besides ``warning:``/``note:`` lines such as submit's warning about a queue no worker consumes)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith(("warning: ", "note: "))]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    return lines[0]


class Cli:
    """Runs ``python -m yadtq.cli`` in subprocesses against one SQLite database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        url = f"sqlite:///{directory / 't.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
        env.update(YADTQ_BROKER_URL=url, YADTQ_BACKEND_URL=url, COLUMNS="200",
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
        self.env = env
        self.workers: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "yadtq.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start_worker(self, *args: str, name: str = "cli-worker", logfile: Optional[Path] = None,
                     wait_ready: bool = True) -> subprocess.Popen[bytes]:
        """Start ``yadtq worker`` and (at log level info) wait until it logs that it joined."""
        logfile = logfile or self.directory / f"{name}.log"
        output = open(self.directory / f"{name}.out", "wb")  # noqa: SIM115 - closed below
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "yadtq.cli", "worker", "-n", name, "--logfile", str(logfile),
                 *args], cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT)
        finally:
            output.close()
        self.workers.append(proc)
        if not wait_ready:
            return proc
        wait_for(lambda: proc.poll() is not None or (logfile.exists() and " joined: " in logfile.read_text()),
                 30, f"worker {name} to start")
        assert proc.poll() is None, (self.directory / f"{name}.out").read_text()
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.workers = []


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """Subprocess commands on a fresh SQLite database (no worker started)."""
    runner = Cli(tmp_path)
    try:
        yield runner
    finally:
        runner.stop_workers()


@pytest.fixture(scope="module")
def served_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """Subprocess commands with one ``examples.math_app`` worker running (JSON logs)."""
    runner = Cli(tmp_path_factory.mktemp("served"))
    runner.start_worker("-A", "examples.math_app", "-c", "4", "--log-format", "json",
                        name="served", logfile=runner.directory / "served.jsonl")
    try:
        yield runner
    finally:
        runner.stop_workers()


@pytest.fixture
def runner() -> CliRunner:
    """A CliRunner keeping stderr apart from stdout (click 8.1 and 8.2+)."""
    kwargs: dict[str, Any] = {"env": {"COLUMNS": "200", "YADTQ_APP": None}}
    try:
        return CliRunner(mix_stderr=False, **kwargs)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner(**kwargs)


@pytest.fixture
def memory_app() -> Iterator[YADTQ]:
    """``tests.apps.cli_app``'s app on fresh in-memory transports (what ``-A`` loads)."""
    with on_memory(cli_app.app) as app:
        yield app


@pytest.fixture
def memory_worker(memory_app: YADTQ) -> Iterator[Worker]:
    """A worker thread serving ``memory_app``."""
    worker = Worker(memory_app, name="cli-memory-worker", concurrency=2).start()
    try:
        yield worker
    finally:
        worker.stop(timeout=30)
