"""The ``yadtq`` command line's rendering: arguments, values, worker tables and log formats."""

from __future__ import annotations

import io
import json
import logging

import pytest
from rich.console import Console

from tests.cli.conftest import wait_for
from yadtq import YADTQ, ConfigurationError
from yadtq.cli.logs import JsonFormatter, parse_level
from yadtq.cli.render import format_age, format_call, format_error, format_value, print_worker_table
from yadtq.cli.tasks import parse_arg
from yadtq.worker.main import Worker

# --------------------------------------------------------------------------- rendering and logs


def test_parse_arg() -> None:
    assert parse_arg("2") == 2
    assert parse_arg("-3.5") == -3.5
    assert parse_arg("true") is True
    assert parse_arg("[1, \"a\"]") == [1, "a"]
    assert parse_arg("(1, 2)") == (1, 2)
    assert parse_arg("None") is None
    assert parse_arg("bob") == "bob"
    assert parse_arg("\"42\"") == "42"
    assert parse_arg("a b") == "a b"


def test_formatters() -> None:
    assert format_age(3.7) == "3s ago"
    assert format_age(125) == "2m 5s ago"
    assert format_age(7300) == "2h 1m ago"
    assert format_age(-1) == "0s ago"
    assert format_value(5) == "5"
    assert format_value("x") == "\"x\""
    assert format_value({1, 2}) == "{1, 2}"
    assert format_call((1, "a"), {"z": None}) == "1, \"a\", z=null"
    assert format_error("builtins.ValueError", "bad\nvalue") == "ValueError: bad value"
    assert format_error("pkg.Boom", "") == "pkg.Boom"


def test_print_worker_table() -> None:
    out = io.StringIO()
    now = 1_000_000.0
    print_worker_table({
        "w-alive": {"status": "alive", "last_heartbeat": now - 3, "tasks_done": 7, "tasks_failed": 1,
                    "active": 2},
        "w-gone": {"status": "offline", "last_heartbeat": now - 125, "tasks_done": 0,
                   "tasks_failed": 0, "active": 0},
    }, console=Console(file=out, width=120), now=now)
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in out.getvalue().splitlines() if line.startswith("│")}
    assert rows["w-alive"] == ["alive", "3s ago", "7", "1", "2"]
    assert rows["w-gone"] == ["offline", "2m 5s ago", "0", "0", "0"]


def test_display_worker_status(memory_app: YADTQ, memory_worker: Worker,
                               capsys: pytest.CaptureFixture[str]) -> None:
    wait_for(lambda: memory_app.get_worker_status(), 10, "a heartbeat")
    memory_app.display_worker_status()
    out = capsys.readouterr().out
    assert "cli-memory-worker" in out and "alive" in out


def test_json_formatter() -> None:
    record = logging.LogRecord("yadtq.worker", logging.INFO, __file__, 1, "task %s done", ("x",), None)
    record.task_id = "abc"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "task x done" and entry["level"] == "INFO"
    assert entry["logger"] == "yadtq.worker" and entry["task_id"] == "abc"
    assert "task" not in entry and entry["ts"].endswith("+00:00")


def test_parse_level() -> None:
    assert parse_level("info") == logging.INFO
    assert parse_level("WARNING") == logging.WARNING
    assert parse_level("15") == 15
    with pytest.raises(ConfigurationError, match="unknown log level"):
        parse_level("loud")
