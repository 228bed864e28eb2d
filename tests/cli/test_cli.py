"""The ``yadtq`` command line: help, bad input, and submit/status/result/purge in process.
Its rendering is in ``test_cli_rendering.py``, its runs against worker processes in
``test_cli_sqlite.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.apps import cli_app
from tests.cli.conftest import ROOT, Cli, error_line
from tests.cli.support import APP, TASKS_JSON, invoke, lines, table_rows
from yadtq import YADTQ
from yadtq.worker.main import Worker

# --------------------------------------------------------------------------- help and version

COMMAND_OPTIONS = {
    "worker": ["--app", "--name", "--concurrency", "--pool", "--queues", "--loglevel", "--logfile",
               "--log-format"],
    "submit": ["--app", "--kwargs", "--countdown", "--queue", "--key", "--file", "--wait", "--timeout"],
    "status": ["--app", "--json"],
    "result": ["--app", "--wait", "--timeout", "Exit status"],
    "purge": ["--app", "--queues", "--yes"],
}


def test_main_help_lists_commands(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    for command in COMMAND_OPTIONS:
        assert command in result.output


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS))
def test_command_help(runner: CliRunner, command: str) -> None:
    result = invoke(runner, command, "--help")
    assert result.exit_code == 0
    for option in COMMAND_OPTIONS[command]:
        assert option in result.output, option


def test_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version")
    assert result.exit_code == 0
    assert "yadtq" in result.output and "0." in result.output


@pytest.mark.parametrize("module", ["yadtq", "yadtq.cli"])
def test_python_dash_m(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: yadtq" in proc.stdout and "submit" in proc.stdout


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("app", "fragment"), [
    ("tests.apps.no_such_module", "cannot import"),
    ("tests.apps.cli_noapp", "no YADTQ app"),
    ("tests.apps.cli_app:missing", "no attribute 'missing'"),
    ("tests.apps.cli_app:Boom", "not a YADTQ app"),
    ("", "no app given"),
])
@pytest.mark.parametrize("command", [["status", "abc"], ["submit", "add", "1", "2"], ["worker"]])
def test_bad_app_is_one_line(cli: Cli, app: str, fragment: str, command: list[str]) -> None:
    proc = cli.run(command[0], "-A", app, *command[1:], timeout=30)
    assert proc.returncode == 1
    assert fragment in error_line(proc.stderr)
    assert proc.stdout == ""


def test_unknown_task_is_one_line(runner: CliRunner, memory_app: YADTQ) -> None:
    result = invoke(runner, "submit", "-A", APP, "nope", "1")
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "no task named 'nope'" in line and "add" in line
    assert memory_app.broker.depth("default") == 0


def test_wrong_arguments_are_refused_before_sending(runner: CliRunner, memory_app: YADTQ) -> None:
    result = invoke(runner, "submit", "-A", APP, "add", "1")
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "missing a required argument" in line and "usage: add x y" in line
    assert memory_app.broker.depth("default") == 0


def test_unregistered_dotted_name_is_sent_as_is(runner: CliRunner, memory_app: YADTQ) -> None:
    result = invoke(runner, "submit", "-A", APP, "other.project.task", "1")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.strip()) == 32
    assert memory_app.broker.depth("default") == 1


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "no such file"),
    ("[{\"task\": \"add\",", "invalid JSON"),
    ("{\"task\": \"add\"}", "expected a JSON list"),
    ("[{\"task\": \"add\", \"args\": [1, 2]}, 5]", "task #2 (index 1): expected an object"),
    ("[{\"args\": [1, 2]}]", "task #1 (index 0): \"task\" must be"),
    ("[{\"task\": \"add\", \"args\": 3}]", "\"args\" must be a list"),
    ("[{\"task\": \"add\", \"kwargs\": [1]}]", "\"kwargs\" must be an object"),
    ("[{\"task\": \"add\", \"countdown\": -1}]", "\"countdown\" must be"),
    ("[{\"task\": \"add\", \"args\": [1, 2], \"nope\": 1}]", "unknown field(s) nope"),
    ("[{\"task\": \"add\", \"args\": [1, 2]}, {\"task\": \"ad\"}]", "task #2 (index 1): no task named 'ad'"),
])
def test_bad_task_file_is_one_line(runner: CliRunner, memory_app: YADTQ, tmp_path: Path,
                                   content: str | None, fragment: str) -> None:
    path = tmp_path / "tasks.json"
    if content is not None:
        path.write_text(content)
    result = invoke(runner, "submit", "-A", APP, "--file", str(path), "--wait")
    assert result.exit_code == 1
    assert fragment in error_line(result.stderr)
    assert memory_app.broker.depth("default") == 0  # checked before anything is sent


@pytest.mark.parametrize("args", [
    ["submit", "-A", APP],  # neither TASK nor --file
    ["submit", "-A", APP, "add", "1", "--file", TASKS_JSON],
    ["submit", "-A", APP, "add", "1", "2", "--wiat"],
    ["submit", "-A", APP, "add", "1", "2", "--kwargs", "[1]"],
    ["status", "-A", APP],
    ["worker", "-A", APP, "--pool", "nonsense"],
    ["worker", "-A", APP, "-c", "0"],
])
def test_usage_errors_exit_2(runner: CliRunner, memory_app: YADTQ, args: list[str]) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    assert memory_app.broker.depth("default") == 0


def test_worker_bad_loglevel_is_one_line(runner: CliRunner) -> None:
    result = invoke(runner, "worker", "-A", APP, "-l", "chatty")
    assert result.exit_code == 1
    assert "unknown log level 'chatty'" in error_line(result.stderr)


def test_keyboard_interrupt_exits_130(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(path: str) -> YADTQ:
        raise KeyboardInterrupt

    monkeypatch.setattr("yadtq.cli.tasks.load_app", interrupted)
    result = invoke(runner, "status", "-A", APP, "abc")
    assert result.exit_code == 130
    assert "Traceback" not in result.stderr and "Error" not in result.stderr


# --------------------------------------------------------------------------- in-process (memory://)


@pytest.mark.usefixtures("memory_worker")
@pytest.mark.parametrize(("args", "expected"), [
    (["add", "2", "3"], "5"),
    (["sub", "5", "-3"], "8"),
    (["add", "--kwargs", "{\"x\": 1, \"y\": 2}"], "3"),
    (["add", "(1,)", "(2,)"], "[1, 2]"),
    (["add", "[1]", "[\"a\"]"], "[1, \"a\"]"),
    (["greet", "bob"], "\"hello bob\""),
    (["greet", "\"42\""], "\"hello 42\""),
    (["tests.apps.cli_app.add", "1", "1"], "2"),
])
def test_submit_wait_prints_result(runner: CliRunner, args: list[str], expected: str) -> None:
    result = invoke(runner, "submit", "-A", APP, *args, "--wait", "--timeout", "10")
    assert result.exit_code == 0, result.stderr
    task_id, value = lines(result.stdout)
    assert len(task_id) == 32
    assert value == expected


@pytest.mark.usefixtures("memory_worker")
@pytest.mark.parametrize(("args", "fragment"), [
    (["divide", "1", "0"], "Error: ZeroDivisionError: division by zero"),
    (["explode", "kaboom"], "Error: tests.apps.cli_app.Boom: kaboom"),
])
def test_submit_wait_failed_task(runner: CliRunner, args: list[str], fragment: str) -> None:
    result = invoke(runner, "submit", "-A", APP, *args, "--wait", "--timeout", "10")
    assert result.exit_code == 1
    assert error_line(result.stderr) == fragment
    assert len(result.stdout.strip()) == 32  # the id was printed first


def test_submit_wait_timeout(runner: CliRunner, memory_app: YADTQ) -> None:
    result = invoke(runner, "submit", "-A", APP, "add", "1", "2", "--timeout", "0.2")  # implies --wait
    assert result.exit_code == 1
    assert "not ready after 0.2 s" in error_line(result.stderr)


def test_status_and_result(runner: CliRunner, memory_app: YADTQ, memory_worker: Worker) -> None:
    done = cli_app.add.delay(2, 3)
    failed = cli_app.divide.delay(1, 0)
    done.get(timeout=10)
    failed.get(timeout=10, propagate=False)

    result = invoke(runner, "status", "-A", APP, done.id, failed.id)
    assert result.exit_code == 0
    assert lines(result.stdout) == [f"{done.id} success", f"{failed.id} failed"]

    result = invoke(runner, "status", "-A", APP, "--json", done.id)
    assert result.exit_code == 0
    [entry] = json.loads(result.stdout)
    assert entry["id"] == done.id and entry["state"] == "success"
    assert entry["task"] == "tests.apps.cli_app.add" and entry["worker"] == "cli-memory-worker"

    result = invoke(runner, "result", "-A", APP, done.id)
    assert (result.exit_code, result.stdout) == (0, "5\n")

    result = invoke(runner, "result", "-A", APP, failed.id)
    assert result.exit_code == 1
    assert error_line(result.stderr) == "Error: ZeroDivisionError: division by zero"


def test_result_not_finished(runner: CliRunner, memory_app: YADTQ) -> None:
    pending = cli_app.add.delay(1, 1)
    result = invoke(runner, "result", "-A", APP, pending.id)
    assert result.exit_code == 3
    assert result.stderr.strip() == f"{pending.id} is queued"

    result = invoke(runner, "result", "-A", APP, pending.id, "--timeout", "0.2")
    assert result.exit_code == 1
    assert "not ready" in error_line(result.stderr)

    worker = Worker(memory_app, name="late-worker", concurrency=1).start()
    try:
        result = invoke(runner, "result", "-A", APP, pending.id, "--wait", "--timeout", "10")
    finally:
        worker.stop(timeout=30)
    assert (result.exit_code, result.stdout) == (0, "2\n")


def test_purge_memory(runner: CliRunner, memory_app: YADTQ) -> None:
    for i in range(5):
        cli_app.add.delay(i, i)
    cli_app.add.apply_async((1, 1), queue="other")

    result = invoke(runner, "purge", "-A", APP)  # no terminal to confirm on
    assert result.exit_code == 1
    assert "--yes" in error_line(result.stderr)
    assert memory_app.broker.depth("default") == 5

    result = invoke(runner, "purge", "-A", APP, "--yes")
    assert (result.exit_code, result.stdout) == (0, "purged 5 tasks\n")
    assert memory_app.broker.depth("default") == 0
    assert memory_app.broker.depth("other") == 1

    result = invoke(runner, "purge", "-A", APP, "-y", "-Q", "default,other")
    assert result.exit_code == 0
    assert lines(result.stdout) == ["default: 0", "other: 1", "purged 1 task"]


def test_bulk_submit_memory(runner: CliRunner, memory_app: YADTQ, tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([
        {"task": "add", "args": [1, 2]},
        {"task": "greet", "kwargs": {"name": "ann"}},
        {"task": "tests.apps.cli_app.sub", "args": [1, 2], "countdown": 0},
        {"task": "divide", "args": [1, 0]},
    ]))
    result = invoke(runner, "submit", "-A", APP, "--file", str(path))
    assert result.exit_code == 0, result.stderr
    ids = lines(result.stdout)
    assert len(ids) == 4 and memory_app.broker.depth("default") == 4

    worker = Worker(memory_app, name="bulk-worker", concurrency=2).start()
    try:
        result = invoke(runner, "submit", "-A", APP, "--file", str(path), "--wait", "--timeout", "10")
    finally:
        worker.stop(timeout=30)
    assert result.exit_code == 1
    assert lines(result.stderr)[-1] == "Error: 1 of 4 tasks failed"
    rows = table_rows(result.stdout)
    assert all(len(row[0]) == 32 for row in rows.values())  # each task's whole id
    assert rows[1][1:] == ["add", "1, 2", "success", "3"]
    assert rows[2][1:] == ["greet", "name=\"ann\"", "success", "\"hello ann\""]
    assert rows[3][1:] == ["tests.apps.cli_app.sub", "1, 2", "success", "-1"]
    assert rows[4][1:] == ["divide", "1, 0", "failed", "ZeroDivisionError: division by zero"]
    assert "4 tasks: 3 success, 1 failed" in result.stdout


def test_bulk_submit_timeout_shows_unfinished(runner: CliRunner, memory_app: YADTQ, tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{"task": "add", "args": [1, 2]}]))
    result = invoke(runner, "submit", "-A", APP, "--file", str(path), "--wait", "--timeout", "0.2")
    assert result.exit_code == 1
    assert lines(result.stderr)[-1] == "Error: 1 of 1 tasks not finished after 0.2 s"
    (task_id, *row) = table_rows(result.stdout)[1]
    assert row == ["add", "1, 2", "queued", ""]
    assert f"not finished: {task_id}" in result.stderr  # to follow it up
