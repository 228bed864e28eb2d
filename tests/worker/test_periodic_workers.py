"""Periodic tasks with real ``yadtq worker`` processes, on SQLite and on Kafka + Redis:
three workers enqueue each tick once, a paused schedule does not fire, and ticks missed
while no worker ran are caught up once (``catch_up="once"``) or skipped (``"none"``)."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from yadtq import YADTQ
from yadtq.periodic import tick_id
from yadtq.transports.periodic_store import periodic_store

from .helpers import wait_until
from .procs import running_workers, wait_ready, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
APP = "tests.apps.periodic_app"
FAST = {"heartbeat_interval": "0.5", "worker_unresponsive_after": "3"}


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.redis])])
def setup(request: pytest.FixtureRequest, tmp_path: Path, unique: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[YADTQ, dict[str, str], Path]]:
    effects = tmp_path / "effects"
    effects.mkdir()
    settings = dict(FAST)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'yadtq.db'}"
        broker, backend = url, url
    else:
        broker = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
        backend = str(request.getfixturevalue("redis_url"))
        settings.update(default_queue=f"periodic-{unique}", partitions="2",
                        backend_options=json.dumps({"prefix": f"periodic-{unique}"}))
    env = worker_env(broker, backend, effects, **settings)
    for key in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_SIDE_EFFECTS",
                *(f"YADTQ_{k.upper()}" for k in settings)):
        monkeypatch.setenv(key, env[key])
    module = importlib.reload(importlib.import_module(APP))
    yield module.app, env, effects
    module.app.close()


def ids(effects: Path, name: str) -> list[str]:
    path = effects / name
    return path.read_text().split() if path.exists() else []


def test_ticks_once_across_three_workers_pause_and_catch_up(
        setup: tuple[YADTQ, dict[str, str], Path], tmp_path: Path) -> None:
    app, env, effects = setup
    store = periodic_store(app.backend)
    # Missed for three hours before any worker ran: stored before the workers start
    # (with the spec they declare, so their start-up save leaves next_run alone).
    missed = (app.now() // 3600 - 3) * 3600
    for name in ("catch-once", "catch-none"):
        store.save_periodic(name, app.periodic_schedules[name].encode(), missed)
    with running_workers(3, APP, env, tmp_path) as workers:
        wait_ready(workers, app.get_worker_status)
        wait_until(lambda: len(set(ids(effects, "tick"))) >= 5, timeout=90, interval=0.2)
        # Caught up: "once" ran its first missed tick once; "none" moved on without running.
        wait_until(lambda: ids(effects, "catch-once"), timeout=30, interval=0.2)
        infos = {i.name: i for i in app.periodic_tasks()}
        assert ids(effects, "catch-once") == [tick_id("catch-once", missed)]
        assert infos["catch-once"].last_run == missed and infos["catch-once"].next_run > app.now()
        assert infos["catch-none"].last_run is None and infos["catch-none"].next_run > app.now()
        assert ids(effects, "catch-none") == []
        # Paused: no tick is claimed any more, whichever worker looks.
        app.pause_periodic_task("tick")
        paused_last = {i.name: i for i in app.periodic_tasks()}["tick"].last_task_id
        wait_until(lambda: paused_last in ids(effects, "tick"), timeout=30, interval=0.2)
        ran = ids(effects, "tick")
        time.sleep(3)  # three ticks' worth of time for a paused schedule to (wrongly) fire
        assert ids(effects, "tick") == ran
        assert {i.name: i for i in app.periodic_tasks()}["tick"].last_task_id == paused_last
    # Every execution was a distinct tick, each the id of one tick time: none twice.
    assert len(ran) == len(set(ran)) >= 5
