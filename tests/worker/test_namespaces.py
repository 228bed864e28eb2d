"""Two apps with the same queue and worker names side by side on one Kafka + Redis and
on one SQLite file, told apart only by their ``namespace``: neither sees the other's
tasks, workers, schedules, dead letters or stats."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from yadtq import YADTQ
from yadtq.exceptions import ConfigurationError
from yadtq.namespace import Naming
from yadtq.settings import load_settings
from yadtq.transports.base import Message

from .procs import running_workers, worker_env

APP = "tests.apps.namespace_app"
WHOAMI = f"{APP}.whoami"
FAIL = f"{APP}.fail"

pytestmark = pytest.mark.timeout(240)


def _wait(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.redis])])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        return url, url
    kafka = request.getfixturevalue("kafka_bootstrap")
    return f"kafka://{kafka}", request.getfixturevalue("redis_url")


def test_two_namespaces_share_servers_without_meeting(urls: tuple[str, str], unique: str,
                                                      tmp_path: Path) -> None:
    broker, backend = urls
    names = {"a": f"nsa-{unique}", "b": f"nsb-{unique}"}
    counts = {"a": 5, "b": 3}
    apps = {side: YADTQ(side, broker=broker, backend=backend, namespace=ns, partitions=2)
            for side, ns in names.items()}
    try:
        # Both send to the queue "default" before any worker runs: a worker of the other
        # namespace would take them.
        sent = {side: [apps[side].send_task(WHOAMI, (i,)) for i in range(counts[side])]
                for side in apps}
        failed = {side: apps[side].send_task(FAIL) for side in apps}
        for side, app in apps.items():
            app.broker.publish([Message("default", b"\xc1 not a task from " + side.encode())])
            app.flush(10)
        envs = {side: worker_env(broker, backend, tmp_path, namespace=ns, heartbeat_interval="1",
                                 partitions="2") for side, ns in names.items()}
        with running_workers(1, APP, envs["a"], tmp_path, prefix="wa"), \
                running_workers(1, APP, envs["b"], tmp_path, prefix="wb"):
            for side in apps:
                ns = names[side]
                assert [r.get(timeout=90) for r in sent[side]] == [[ns, i] for i in range(counts[side])]
                with pytest.raises(ValueError, match=f"failed in {ns}"):
                    failed[side].get(timeout=60)
            other = {"a": apps["b"], "b": apps["a"]}
            for side, app in apps.items():
                # tasks: the other app does not know this one's ids
                assert {other[side].AsyncResult(r.id).state for r in sent[side]} == {"queued"}
                # workers (same -n prefix, different namespaces)
                worker, schedule = f"w{side}0", f"tick-{names[side]}"
                _wait(lambda app=app, w=worker: set(app.get_worker_status()) == {w}, 60,
                      f"only worker {worker} in {side}")
                # schedules saved by the worker at start
                _wait(lambda app=app, s=schedule: [p.name for p in app.periodic_tasks()] == [s],
                      60, f"only the schedule of {side}")
                # dead letters
                _wait(lambda app=app: app.broker.list_dead_letters(), 60, f"a dead letter in {side}")
                letters = app.broker.list_dead_letters()
                assert [d.body for d in letters] == [b"\xc1 not a task from " + side.encode()]
                assert letters[0].queue == "default"
                # stats
                totals = app.backend.snapshot().totals  # a dead letter counts as failed too
                assert (totals.succeeded, totals.failed, totals.dead_lettered) == (counts[side], 2, 1)
                assert app.broker.depth("default") == 0
    finally:
        for app in apps.values():
            app.close()


def test_sqlite_default_namespace_keeps_its_table_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'names.db'}"
    plain, other = YADTQ(broker=url, backend=url), YADTQ(broker=url, backend=url, namespace="shop-1.eu")
    try:
        for app in (plain, other):
            app.backend.workers()
            app.broker.depth("default")
    finally:
        plain.close()
        other.close()
    with sqlite3.connect(tmp_path / "names.db") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"yadtq_tasks", "yadtq_messages", "shop-1.eu:tasks", "shop-1.eu:messages"} <= tables
    assert not {t for t in tables if not t.startswith(("yadtq_", "shop-1.eu:", "sqlite_"))}


def test_memory_apps_never_share_anything() -> None:
    a, b = YADTQ(broker="memory://", backend="memory://"), YADTQ(broker="memory://", backend="memory://")
    a.broker.publish([Message("default", b"x")])
    assert (a.broker.depth("default"), b.broker.depth("default")) == (1, 0)


@pytest.mark.parametrize("bad", ["", "a b", "a:b", "ns/1", "é", ".", "x" * 65])
def test_bad_namespace_is_a_one_line_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid namespace") as info:
        load_settings(environ={}, namespace=bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="invalid namespace"):
        load_settings(environ={"YADTQ_NAMESPACE": bad or " "})


def test_naming_of_each_transport() -> None:
    naming = Naming("billing")
    assert (naming.topic("default"), naming.group("default"), naming.dlq_topic) == (
        "billing.default", "billing.default", "billing.dlq")
    assert naming.queue_of("billing.emails") == "emails"
    assert naming.queue_of("billing.dlq") is None and naming.queue_of("yadtq.emails") is None
    assert naming.table("tasks") == '"billing:tasks"' and Naming().table("tasks") == "yadtq_tasks"
    assert load_settings(environ={}).namespace == "yadtq"


def test_redis_prefix_defaults_to_the_namespace_and_an_explicit_one_wins() -> None:
    from yadtq.transports.redis import RedisBackend

    url = "redis://127.0.0.1:1/0"  # never connected to
    named = RedisBackend(url, load_settings(environ={}, backend=url, namespace="billing"))
    explicit = RedisBackend(url, load_settings(environ={}, backend=url, namespace="billing",
                                               backend_options={"prefix": "mine"}))
    assert named.key("task:", "t") == "billing:task:t"
    assert explicit.key("task:", "t") == "mine:task:t"


def test_namespace_cannot_change_under_a_transport_in_use() -> None:
    app = YADTQ(broker="memory://", backend="memory://")
    app.config_from_object({"namespace": "early"})
    assert app.settings.namespace == "early"
    app.broker.depth("default")
    with pytest.raises(ConfigurationError, match="transport already in use"):
        app.config_from_object({"namespace": "late"})


def test_the_monitor_says_which_namespace_it_shows() -> None:
    import io

    from rich.console import Console

    from yadtq.cli.monitor import render
    from yadtq.monitor import take_snapshot

    app = YADTQ(broker="memory://", backend="memory://", namespace="billing")
    snapshot = take_snapshot(app)
    assert snapshot.to_dict()["namespace"] == "billing"
    out = io.StringIO()
    Console(file=out, width=120).print(render(snapshot))
    assert "namespace billing" in out.getvalue()
