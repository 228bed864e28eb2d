"""``config_from_object``, ``task_routes``, ``ignore_result`` and autodiscovery (DESIGN.md §13)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq import YADTQ, ConfigurationError
from yadtq.cli.loading import load_app
from yadtq.config import route
from yadtq.envelope import decode
from yadtq.worker.main import Worker


@pytest.fixture
def app() -> Iterator[YADTQ]:
    app = YADTQ("cfg", broker="memory://", backend="memory://")
    yield app
    app.close()


class Config:
    default_queue = "from-object"
    result_expires = "120"  # text converts like the environment's
    UPPER_CASE = "ignored"

    def helper(self) -> None: ...


def test_from_a_module_path_an_object_and_a_dict(app: YADTQ) -> None:
    app.config_from_object("tests.apps.discovered.settings")
    assert app.settings.result_expires == 3600 and app.settings.retry_delay == 0.5
    assert app.settings.task_routes["tests.apps.discovered.tasks.ping"].startswith("fast")
    app.config_from_object(Config)
    assert app.settings.default_queue == "from-object" and app.settings.result_expires == 120.0
    app.config_from_object({"max_retries": 7})
    assert app.settings.max_retries == 7

    @app.task
    def later() -> None: ...

    assert later.options.max_retries == 7  # task defaults follow the configuration


def test_a_module_object_works(app: YADTQ) -> None:
    module = types.ModuleType("conf")
    module.heartbeat_interval = 2.5  # type: ignore[attr-defined]
    module.os = types  # type: ignore[attr-defined]  # modules among the names are skipped
    app.config_from_object(module)
    assert app.settings.heartbeat_interval == 2.5


def test_overrides_the_environment_but_not_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YADTQ_DEFAULT_QUEUE", "from-env")
    monkeypatch.setenv("YADTQ_MAX_RETRIES", "9")
    app = YADTQ("cfg", broker="memory://", backend="memory://", max_retries=1)
    app.config_from_object({"default_queue": "from-config", "max_retries": 5,
                            "backend_url": "sqlite:///never.db"})
    assert app.settings.default_queue == "from-config"
    assert app.settings.max_retries == 1 and app.settings.backend_url == "memory://"


@pytest.mark.parametrize(("config", "message"), [
    ({"no_such_setting": 1}, "unknown setting"),
    ({"max_retries": "lots"}, "YADTQ_MAX_RETRIES"),
    ({"task_routes": ["not", "a", "dict"]}, "task_routes must be a dict"),
    ("tests.apps.no_such_module", "cannot import"),
])
def test_bad_configuration_is_a_clear_error(app: YADTQ, config: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        app.config_from_object(config)


def test_routes_by_name_then_glob_in_order() -> None:
    routes = {"shop.charge": "payments", "shop.*": "shop", "*": "catch-all"}
    assert route(routes, "shop.charge") == "payments"
    assert route(routes, "shop.refund") == "shop"
    assert route(routes, "mail.send") == "catch-all"
    assert route({}, "x") is None


def test_routes_apply_to_delay_apply_async_and_send_task(app: YADTQ) -> None:
    app.config_from_object({"task_routes": {"reports.*": "slow", "ping": "fast"}})

    @app.task(name="reports.monthly")
    def monthly() -> None: ...

    @app.task(name="reports.pinned", queue="own")
    def pinned() -> None: ...

    @app.task(name="ping")
    def ping() -> None: ...

    def queue_of(result: Any) -> str:
        for queue in ("slow", "fast", "own", "default", "explicit"):
            found = app.broker.peek(queue)
            if found is not None and decode(found.body).id == result.id:
                app.broker.purge(queue)
                return queue
        raise AssertionError("not sent")

    assert queue_of(monthly.delay()) == "slow"
    assert queue_of(ping.apply_async()) == "fast"
    assert queue_of(app.send_task("reports.monthly")) == "slow"
    assert queue_of(app.send_task("reports.unknown")) == "slow"  # by name, without the code
    assert queue_of(monthly.apply_async(queue="explicit")) == "explicit"  # an explicit queue wins
    assert queue_of(pinned.delay()) == "own"  # so does the task's own queue option


@pytest.mark.timeout(30)
def test_ignore_result_stores_nothing_but_success(app: YADTQ) -> None:
    @app.task(ignore_result=True)
    def big() -> str:
        return "x" * 1000

    worker = Worker(app, concurrency=1).start()
    try:
        result = big.delay()
        assert result.get(timeout=10) is None
        assert result.state == "success" and result.info is not None and result.info.result is None
    finally:
        worker.stop(10)


def test_a_package_autodiscovers_its_tasks_modules() -> None:
    app = load_app("tests.apps.discovered")
    assert {"tests.apps.discovered.tasks.ping", "tests.apps.discovered.reports.tasks.slow_report",
            "tests.apps.discovered.tasks.fire_and_forget"} <= set(app.tasks)
    assert app.settings.task_routes  # read from its settings module


def test_autodiscover_tasks_reports_a_broken_tasks_module(app: YADTQ, tmp_path: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text("raise RuntimeError('oops')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"brokenpkg\.tasks failed: RuntimeError: oops"):
        app.autodiscover_tasks(["brokenpkg"])
