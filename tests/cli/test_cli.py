"""The ``yadtq`` command line: help, errors, submit/status/result/purge, worker, demo."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from examples import math_app
from tests.apps import cli_app
from tests.cli.conftest import ROOT, Cli, error_line, wait_for
from yadtq import YADTQ, ConfigurationError
from yadtq.cli import main
from yadtq.cli.logs import JsonFormatter, parse_level
from yadtq.cli.render import format_age, format_call, format_error, format_value, print_worker_table
from yadtq.cli.tasks import parse_arg
from yadtq.worker.main import Worker

APP = "tests.apps.cli_app"
MATH = "examples.math_app"
TASKS_JSON = str(ROOT / "examples" / "tasks.json")


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def table_rows(text: str) -> dict[int, list[str]]:
    """Rows of a printed rich table whose first cell is a number: ``{n: [cells after it]}``."""
    rows: dict[int, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells[1:]
    return rows


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


# --------------------------------------------------------------------------- subprocesses (sqlite://)


def test_submit_wait_against_worker(served_cli: Cli) -> None:
    proc = served_cli.run("submit", "-A", MATH, "add", "2", "3", "--wait", "--timeout", "30")
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout)[-1] == "5"


def test_bulk_file_against_worker(served_cli: Cli) -> None:
    proc = served_cli.run("submit", "-A", MATH, "--file", TASKS_JSON, "--wait", "--timeout", "60")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines(proc.stderr)[-1] == "Error: 1 of 20 tasks failed"
    rows = table_rows(proc.stdout)
    entries = json.loads(Path(TASKS_JSON).read_text())
    assert sorted(rows) == list(range(1, len(entries) + 1))
    for number, entry in enumerate(entries, start=1):
        _id, task, _args, state, shown = rows[number]
        assert task == entry["task"]
        fn = getattr(math_app, entry["task"])
        try:
            expected = format_value(fn(*entry.get("args", []), **entry.get("kwargs", {})))
        except ZeroDivisionError:
            assert (state, shown) == ("failed", "ZeroDivisionError: division by zero")
        else:
            assert (state, shown) == ("success", expected)
    assert "20 tasks: 19 success, 1 failed" in proc.stdout


def test_status_and_result_against_worker(served_cli: Cli) -> None:
    good = served_cli.run("submit", "-A", MATH, "multiply", "6", "7", "--wait", "--timeout", "30")
    bad = served_cli.run("submit", "-A", MATH, "divide", "1", "0")
    assert good.returncode == 0 and bad.returncode == 0, good.stderr + bad.stderr
    good_id, bad_id = lines(good.stdout)[0], lines(bad.stdout)[0]

    proc = served_cli.run("result", "-A", MATH, bad_id, "--wait", "--timeout", "30")
    assert proc.returncode == 1
    assert error_line(proc.stderr) == "Error: ZeroDivisionError: division by zero"

    proc = served_cli.run("status", "-A", MATH, good_id, bad_id)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc.stdout) == [f"{good_id} success", f"{bad_id} failed"]

    proc = served_cli.run("result", "-A", MATH, good_id)
    assert (proc.returncode, proc.stdout) == (0, "42\n")


def test_worker_json_log_has_task_succeeded(served_cli: Cli) -> None:
    proc = served_cli.run("submit", "-A", MATH, "sub", "9", "4", "--wait", "--timeout", "30")
    assert proc.returncode == 0, proc.stderr
    task_id = lines(proc.stdout)[0]
    logfile = served_cli.directory / "served.jsonl"

    def succeeded() -> dict[str, Any] | None:
        entries = [json.loads(line) for line in logfile.read_text().splitlines() if line.strip()]
        return next((e for e in entries if task_id in e["message"] and "succeeded" in e["message"]),
                    None)

    entry = wait_for(succeeded, 15, "the task's success in the JSON log")
    assert entry["level"] == "INFO" and entry["logger"].startswith("yadtq.")
    assert set(entry) >= {"ts", "level", "logger", "message"}


def test_purge_queued_tasks(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "five.json"
    path.write_text(json.dumps([{"task": "add", "args": [i, i]} for i in range(5)]))
    proc = cli.run("submit", "-A", MATH, "--file", str(path))
    assert proc.returncode == 0, proc.stderr
    assert len(lines(proc.stdout)) == 5

    proc = cli.run("purge", "-A", MATH)
    assert proc.returncode == 1
    assert "--yes" in error_line(proc.stderr)

    proc = cli.run("purge", "-A", MATH, "--yes")
    assert (proc.returncode, proc.stdout) == (0, "purged 5 tasks\n"), proc.stderr
    proc = cli.run("purge", "-A", MATH, "--yes")
    assert proc.stdout == "purged 0 tasks\n"


@pytest.mark.parametrize(("answer", "expected", "code"), [("y", "purged 5 tasks", 0), ("n", "Aborted!", 1)])
def test_purge_asks_on_a_terminal(cli: Cli, tmp_path: Path, answer: str, expected: str, code: int) -> None:
    pexpect = pytest.importorskip("pexpect")
    path = tmp_path / "five.json"
    path.write_text(json.dumps([{"task": "add", "args": [i, i]} for i in range(5)]))
    assert cli.run("submit", "-A", MATH, "--file", str(path)).returncode == 0
    child = pexpect.spawn(sys.executable, ["-m", "yadtq.cli", "purge", "-A", MATH], cwd=str(ROOT),
                          env=cli.env, encoding="utf-8", timeout=30)
    try:
        child.expect_exact("Drop every task waiting in default? [y/N]")
        child.sendline(answer)
        child.expect_exact(expected)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == code


def test_worker_sigterm_exits_0(cli: Cli) -> None:
    worker = cli.start_worker("-A", MATH, "-c", "2", "-Q", "default,extra", name="sigterm")
    proc = cli.run("submit", "-A", MATH, "add", "1", "1", "--queue", "extra", "--wait", "--timeout", "30")
    assert lines(proc.stdout)[-1] == "2", proc.stderr
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0
    log = (cli.directory / "sigterm.log").read_text()
    assert "SIGTERM received" in log and "worker sigterm left" in log
    output = (cli.directory / "sigterm.out").read_text()
    assert "yadtq worker" in output and "extra" in output  # the banner, on stderr
    assert "Traceback" not in output


def test_worker_no_banner_at_warning(cli: Cli) -> None:
    worker = cli.start_worker("-A", MATH, "-l", "warning", name="quiet", wait_ready=False)
    proc = cli.run("submit", "-A", MATH, "add", "2", "2", "--wait", "--timeout", "30")
    assert lines(proc.stdout)[-1] == "4", proc.stderr
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0
    assert (cli.directory / "quiet.out").read_text() == ""
    assert "INFO" not in (cli.directory / "quiet.log").read_text()


@pytest.mark.slow
@pytest.mark.timeout(330)
def test_demo_script(tmp_path: Path) -> None:
    """``bash scripts/demo.sh`` in a fresh virtualenv, as on a new machine (it pip-installs
    yadtq and its dependencies there, leaving this checkout's own install alone)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YADTQ_", "PYTHON"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PYTHON=str(bindir / "python"), TMPDIR=str(tmp_path), COLUMNS="200")
    assert shutil.which("bash")
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip install" in proc.stdout  # it really installed, into the virtualenv
    rows = table_rows(proc.stdout)
    assert len(rows) >= 20
    assert rows[2][3:] == ["success", "42"]
    assert "ZeroDivisionError: division by zero" in proc.stdout
    assert "demo-worker-1" in proc.stdout and "offline" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert time.monotonic() - started < 300
