"""The ``yadtq`` command line against worker processes on sqlite://: submit, bulk files,
status, logs, purge, signals, and the demo script."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from examples import math_app
from tests.cli.conftest import ROOT, Cli, error_line, wait_for
from tests.cli.support import MATH, TASKS_JSON, lines, table_rows
from yadtq.cli.render import format_value

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
