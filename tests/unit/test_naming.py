"""Task names (DESIGN.md §13): a module run as a script names its tasks as a worker does;
two functions under one name are an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yadtq import YADTQ, ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
SHOW = "import {mod} as m; print(sorted(m.app.tasks))"


def _names(args: list[str]) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                           "YADTQ_BROKER_URL": "memory://",
                                           "YADTQ_BACKEND_URL": "memory://"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_module_run_as_main_names_tasks_as_the_worker_does() -> None:
    as_file = _names(["examples/naming_probe.py"])
    as_module = _names(["-m", "examples.naming_probe"])
    imported = _names(["-c", SHOW.format(mod="examples.naming_probe")])
    assert as_file == as_module == imported
    assert "examples.naming_probe.double" in as_file and "custom.name" in as_file


def test_two_tasks_under_one_name_is_an_error() -> None:
    app = YADTQ("dup", broker="memory://", backend="memory://")

    @app.task(name="same")
    def first() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="two tasks named 'same'"):
        @app.task(name="same")
        def second() -> int:
            return 2

    assert app.tasks["same"].fn is first.fn


def test_registering_the_same_function_again_replaces_it() -> None:
    app = YADTQ("again", broker="memory://", backend="memory://")

    def add(x: int, y: int) -> int:
        return x + y

    app.task(add)
    again = app.task(add)
    assert app.tasks[again.name] is again
