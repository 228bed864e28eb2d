"""Starting real ``yadtq worker`` processes for tests, and stopping them for sure."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, app: str, env: dict[str, str], name: str, logfile: Path,
                 extra: Sequence[str] = (), new_session: bool = False,
                 launcher: Sequence[str] = (sys.executable, "-m", "yadtq.cli")) -> None:
        self.name = name
        self.logfile = logfile
        #: The worker's stderr: a file, never a pipe nobody reads while the worker runs
        #: (a full pipe would block the worker at its next write).
        self.errfile = logfile.with_suffix(".stderr")
        cmd = [*launcher, "worker", "-A", app, "-n", name, "-l", "info",
               "--logfile", str(logfile), *extra]
        with open(self.errfile, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=new_session)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def errors(self) -> str:
        """What the worker wrote to stderr so far."""
        return self.errfile.read_text(errors="replace") if self.errfile.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test stopped it
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def worker_env(broker: str, backend: str, side_effects: Path, **settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "YADTQ_BROKER_URL": broker,
        "YADTQ_BACKEND_URL": backend,
        "YADTQ_TEST_SIDE_EFFECTS": str(side_effects),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    env.update({f"YADTQ_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def running_workers(count: int, app: str, env: dict[str, str], logdir: Path,
                    extra: Sequence[str] = (), prefix: str = "w") -> Iterator[list[WorkerProcess]]:
    workers = [WorkerProcess(app, env, f"{prefix}{n}", logdir / f"{prefix}{n}.log", extra)
               for n in range(count)]
    try:
        yield workers
    except BaseException:
        # Shown with the failure: what each worker logged, to tell what it was doing.
        for worker in workers:
            print(f"--- worker {worker.name}: log tail ---\n{worker.log()[-6000:]}"
                  f"--- worker {worker.name}: stderr tail ---\n{worker.errors()[-2000:]}")
        raise
    finally:
        for worker in workers:
            worker.stop()


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for_file_lines(path: Path, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while lines(path) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} has {lines(path)} lines, expected {count}")
        time.sleep(0.02)


def wait_ready(workers: Sequence[WorkerProcess], status_of: object, timeout: float = 30.0,
               names: Optional[Sequence[str]] = None) -> None:
    """Wait until every worker has heartbeated once (``status_of``: app.get_worker_status)."""
    wanted = set(names or [w.name for w in workers])
    deadline = time.monotonic() + timeout
    while True:
        for w in workers:
            if w.proc.poll() is not None:
                raise AssertionError(f"worker {w.name} exited with {w.proc.returncode}: {w.errors()[-2000:]}")
        status = status_of()  # type: ignore[operator]
        if all(n in status and status[n]["status"] == "alive" for n in wanted):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"workers not ready: {status}")
        time.sleep(0.05)


@contextmanager
def app_in_env(app: str, env: dict[str, str]) -> Iterator[Any]:
    """The test app module ``app`` reloaded under ``env``'s ``YADTQ_*`` settings (the
    client side of a run with real workers started with the same ``env``); its app is
    closed and the settings restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            if key.startswith("YADTQ_"):
                patch.setenv(key, value)
        module: ModuleType = importlib.reload(importlib.import_module(app))
        try:
            yield module
        finally:
            module.app.close()


@contextmanager
def ready_workers(count: int, module: Any, env: dict[str, str], logdir: Path,
                  extra: Sequence[str] = (), timeout: float = 90) -> Iterator[list[WorkerProcess]]:
    """``count`` workers of the app module ``module`` (see :func:`app_in_env`), once
    every one of them reports in."""
    with running_workers(count, module.__name__, env, logdir, extra) as workers:
        wait_ready(workers, module.app.get_worker_status, timeout=timeout)
        yield workers
