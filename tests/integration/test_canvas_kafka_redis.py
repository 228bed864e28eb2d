"""Canvas on Kafka + Redis, with real ``yadtq worker`` processes."""

from __future__ import annotations

import importlib
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..worker import canvas_scenarios as scenarios
from ..worker.procs import WorkerProcess, running_workers, wait_ready, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.integration]
APP = "tests.apps.canvas_app"


class Setup:
    def __init__(self, module: Any, env: dict[str, str], logdir: Path) -> None:
        self.m = module
        self.env = env
        self.logdir = logdir


@pytest.fixture(scope="module")
def setup(kafka_bootstrap: str, redis_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    unique = uuid.uuid4().hex[:10]
    tmp = tmp_path_factory.mktemp("canvas-kafka")
    settings = {
        "default_queue": f"canvas-{unique}",
        "backend_options": json.dumps({"prefix": f"canvas-{unique}"}),
        # A killed worker's partitions move on, and its tasks run again, within seconds.
        "broker_options": json.dumps({"session.timeout.ms": 6000}),
        "heartbeat_interval": "1",
        "worker_unresponsive_after": "5",
        "partitions": "4",
    }
    env = worker_env(f"kafka://{kafka_bootstrap}", redis_url, tmp, **settings)
    env["YADTQ_TEST_REDIS"] = redis_url
    env["YADTQ_TEST_COUNTERS"] = f"canvas-{unique}:counters"
    with pytest.MonkeyPatch.context() as patch:
        for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_REDIS",
                    "YADTQ_TEST_COUNTERS", *(f"YADTQ_{k.upper()}" for k in settings)):
            patch.setenv(key, env[key])
        module = importlib.reload(importlib.import_module(APP))
        try:
            yield Setup(module, env, tmp)
        finally:
            module.app.close()


# First, before the module's steady workers start: only the driver's workers run it.
@pytest.mark.timeout(420)
def test_chord_of_1000_runs_its_callback_once_while_workers_are_sigkilled(setup: Setup) -> None:
    names = (f"kill{n}" for n in itertools.count())

    def spawn() -> WorkerProcess:
        name = next(names)
        return WorkerProcess(APP, setup.env, name, setup.logdir / f"{name}.log", ["-c", "4"])

    kills = scenarios.chord_survives_sigkills(setup.m, spawn, "kafka-chord-callback")
    assert kills >= 4  # 8 planned; a chord that finished first skips the rest


@pytest.fixture(scope="module")
def m(setup: Setup) -> Iterator[Any]:
    with running_workers(2, APP, setup.env, setup.logdir, ["-c", "4"]) as workers:
        wait_ready(workers, setup.m.app.get_worker_status, timeout=60)
        yield setup.m


@pytest.mark.timeout(180)
def test_chain_results_and_failure_propagation(m: Any) -> None:
    scenarios.chain_results_and_parent(m)
    scenarios.chain_failure_propagates(m)


@pytest.mark.timeout(180)
def test_group_ordering_and_reopening(m: Any) -> None:
    scenarios.group_keeps_submission_order(m, m.app)


@pytest.mark.timeout(180)
def test_link_error_receives_the_failed_id(m: Any) -> None:
    scenarios.link_and_link_error(m, "kafka")


@pytest.mark.timeout(180)
def test_nested_canvas(m: Any) -> None:
    scenarios.nested_canvas(m)


@pytest.mark.timeout(180)
def test_chord_error_and_lineage(m: Any) -> None:
    scenarios.chord_and_chord_error(m, "kafka")
    scenarios.lineage_is_set(m)
    scenarios.unregistered_member_fails_the_chord(m)
