"""Canvas on the embedded SQLite transport, with real ``yadtq worker`` processes."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import canvas_scenarios as scenarios
from .procs import WorkerProcess, running_workers, wait_ready, worker_env

pytestmark = pytest.mark.slow
APP = "tests.apps.canvas_app"
#: Killed workers are found dead (and their tasks run again) within seconds.
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "4", "visibility_timeout": "6"}


class Setup:
    def __init__(self, module: Any, env: dict[str, str], logdir: Path) -> None:
        self.m = module
        self.env = env
        self.logdir = logdir


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("canvas-sqlite")
    effects = tmp / "effects"
    effects.mkdir()
    url = f"sqlite:///{tmp / 'yadtq.db'}"
    env = worker_env(url, url, effects, **FAST)
    env.pop("YADTQ_TEST_COUNTERS", None)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("YADTQ_TEST_COUNTERS", raising=False)
        for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_SIDE_EFFECTS",
                    *(f"YADTQ_{k.upper()}" for k in FAST)):
            patch.setenv(key, env[key])
        module = importlib.reload(importlib.import_module(APP))
        try:
            yield Setup(module, env, tmp)
        finally:
            module.app.close()


@pytest.fixture(scope="module")
def m(setup: Setup) -> Iterator[Any]:
    with running_workers(2, APP, setup.env, setup.logdir, ["-c", "4"]) as workers:
        wait_ready(workers, setup.m.app.get_worker_status, timeout=60)
        yield setup.m


# First, before the module's steady workers start: only the driver's workers run it.
@pytest.mark.timeout(420)
def test_chord_of_1000_runs_its_callback_once_while_workers_are_sigkilled(setup: Setup) -> None:
    names = (f"kill{n}" for n in itertools.count())

    def spawn() -> WorkerProcess:
        name = next(names)
        return WorkerProcess(APP, setup.env, name, setup.logdir / f"{name}.log", ["-c", "4"])

    kills = scenarios.chord_survives_sigkills(setup.m, spawn, "sqlite-chord-callback")
    assert kills >= 4  # 8 planned; a chord that finished first skips the rest


@pytest.mark.timeout(180)
def test_chain_results_and_failure_propagation(m: Any) -> None:
    scenarios.chain_results_and_parent(m)
    scenarios.chain_failure_propagates(m)


@pytest.mark.timeout(180)
def test_group_ordering_and_reopening(m: Any) -> None:
    scenarios.group_keeps_submission_order(m, m.app)


@pytest.mark.timeout(180)
def test_link_error_receives_the_failed_id(m: Any) -> None:
    scenarios.link_and_link_error(m, "sqlite")


@pytest.mark.timeout(180)
def test_nested_canvas(m: Any) -> None:
    scenarios.nested_canvas(m)


@pytest.mark.timeout(180)
def test_chord_and_chord_error(m: Any) -> None:
    scenarios.chord_and_chord_error(m, "sqlite")
    scenarios.lineage_is_set(m)
    scenarios.unregistered_member_fails_the_chord(m)
