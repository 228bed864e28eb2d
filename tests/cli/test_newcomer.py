"""What trips up a newcomer (issue 12): bulk submits that can be followed up, a queue no
worker consumes, a bad backend URL, two workers under one name, the embedded database's
location."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.conftest import ROOT, Cli, error_line, wait_for
from yadtq import YADTQ
from yadtq.cli import main
from yadtq.worker.main import Worker

pytestmark = pytest.mark.timeout(120)

APP = "tests.apps.cli_app"


def test_bulk_submit_json_gives_every_id_state_and_result(
        runner: CliRunner, memory_app: YADTQ, memory_worker: Worker, tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{"task": "add", "args": [1, 2]}, {"task": "divide", "args": [1, 0]}]))
    result = runner.invoke(main, ["submit", "-A", APP, "--file", str(path), "--wait", "--timeout", "30",
                                  "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    done, failed = json.loads(result.stdout)
    assert len(done["id"]) == 32 and done["state"] == "success" and done["result"] == 3
    assert failed["state"] == "failed" and failed["error"] == "ZeroDivisionError: division by zero"
    assert memory_app.AsyncResult(done["id"]).get(timeout=5) == 3
    sent = runner.invoke(main, ["submit", "-A", APP, "--file", str(path), "--json"], catch_exceptions=False)
    assert [item["task"] for item in json.loads(sent.stdout)] == [
        "tests.apps.cli_app.add", "tests.apps.cli_app.divide"]
    usage = runner.invoke(main, ["submit", "-A", APP, "add", "1", "2", "--json"])
    assert usage.exit_code == 2


def test_submit_warns_when_no_live_worker_consumes_the_queue(runner: CliRunner, memory_app: YADTQ) -> None:
    result = runner.invoke(main, ["submit", "-A", APP, "add", "1", "2", "--queue", "reports"],
                           catch_exceptions=False)
    assert result.exit_code == 0
    assert "warning: no live worker consumes queue 'reports'" in result.stderr
    worker = Worker(memory_app, name="reports-worker", queues=["reports"]).start()
    try:
        wait_for(lambda: memory_app.backend.workers(), 30, "the worker's heartbeat")
        served = runner.invoke(main, ["submit", "-A", APP, "add", "1", "2", "--queue", "reports"],
                               catch_exceptions=False)
    finally:
        worker.stop(timeout=30)
    assert "warning" not in served.stderr


def test_submit_refuses_a_bad_backend_url(cli: Cli) -> None:
    cli.env["YADTQ_BACKEND_URL"] = "nope://somewhere"
    proc = cli.run("submit", "-A", "examples.math_app", "add", "1", "2")
    assert proc.returncode == 1
    assert error_line(proc.stderr).startswith("Error: no backend transport for nope://")
    assert proc.stdout == ""  # nothing was sent


def test_a_second_worker_under_a_live_name_is_refused(cli: Cli) -> None:
    cli.start_worker("-A", "examples.math_app", name="twin")
    proc = cli.run("worker", "-A", "examples.math_app", "-n", "twin", "-l", "warning", timeout=60)
    assert proc.returncode == 1
    assert error_line(proc.stderr).startswith("Error: a worker named 'twin' is already running (pid ")


def test_submit_and_worker_say_where_the_embedded_database_is(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "yadtq.cli", "submit", "-A", "examples.math_app", "add",
                           "1", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    where = os.path.realpath(tmp_path / "yadtq.db")
    assert f"note: using the embedded SQLite database {where}" in proc.stderr


def test_task_tables_fit_80_columns_with_every_column_readable() -> None:
    import io
    import time

    from rich.console import Console

    from yadtq.cli.views import failures_table
    from yadtq.transports.base import TaskSummary

    now = time.time()
    task = TaskSummary(task_id="0123456789abcdef0123456789abcdef", name="examples.math_app.divide",
                       worker="worker-1.example", timestamp=now - 5, error_type="builtins.ZeroDivisionError",
                       error_message="division by zero")
    out = io.StringIO()
    Console(file=out, width=80).print(failures_table([task], now))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "0123456789" in text  # the id shrinks to its start, not the others to 2-3 characters
    assert "examples.math" in text and "5s ago" in text and "ZeroDivisionEr" in text


def test_a_worker_process_on_memory_transports_is_refused(cli: Cli) -> None:
    proc = cli.run("worker", "-A", APP, "-n", "lonely")  # cli_app is on memory://
    assert proc.returncode == 1
    assert error_line(proc.stderr).startswith("Error: the app's broker is memory://, which lives inside")


def test_ctrl_c_at_a_confirmation_prompt_exits_130(runner: CliRunner, memory_app: YADTQ,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    def interrupted(*args: object, **kwargs: object) -> bool:
        try:  # what click.confirm does on Ctrl-C
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.Abort() from None

    def refused(*args: object, **kwargs: object) -> bool:
        raise click.Abort()  # what it does on "n"

    monkeypatch.setattr("yadtq.cli.options.interactive", lambda: True)
    monkeypatch.setattr("yadtq.cli.tasks.interactive", lambda: True)
    monkeypatch.setattr(click, "confirm", interrupted)
    for args in (["purge", "-A", APP], ["dlq", "purge", "-A", APP]):
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 130, (args, result.output)
    monkeypatch.setattr(click, "confirm", refused)
    assert runner.invoke(main, ["purge", "-A", APP]).exit_code == 1  # "no" stays an abort


def test_an_argument_the_wire_cannot_carry_is_named(runner: CliRunner, memory_app: YADTQ) -> None:
    result = runner.invoke(main, ["submit", "-A", APP, "add", "1", str(2 ** 70)], catch_exceptions=False)
    assert result.exit_code == 1
    assert error_line(result.stderr).startswith(f"Error: argument 2 ({2 ** 70}): ")
    assert memory_app.broker.depth("default") == 0


def test_json_logs_start_with_json(cli: Cli) -> None:
    cli.start_worker("-A", "examples.math_app", "--log-format", "json", name="jsonlogs",
                     logfile=cli.directory / "jsonlogs.jsonl")
    printed = (cli.directory / "jsonlogs.out").read_text()
    assert "yadtq worker" not in printed  # no plain-text banner
    first = (cli.directory / "jsonlogs.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["level"]


def test_shell_number_out_of_range_is_not_taken_for_an_id_prefix() -> None:
    import io

    from rich.console import Console

    from tests.apps import shell_app
    from yadtq.cli.shell import Shell, Submitted
    from yadtq.contrib.pytest import on_memory

    with on_memory(shell_app.app) as app:
        out, err = io.StringIO(), io.StringIO()
        shell = Shell(app, interactive=False, console=Console(file=out, width=200),
                      errors=Console(file=err, width=200))
        shell.session.append(Submitted(id="7" + "a" * 31, name="tests.apps.shell_app.add"))
        shell.onecmd("view 7")  # one task sent: #7 does not exist, though an id starts with 7
        assert "no task #7 in this session (1-1)" in err.getvalue()
        assert "7" + "a" * 31 not in out.getvalue()


def test_log_levels_are_coloured_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging

    from yadtq.cli.logs import TextFormatter, wants_colour

    record = logging.LogRecord("yadtq.worker", logging.WARNING, __file__, 1, "careful", None, None)
    assert "\033[33mWARNING\033[0m careful" not in TextFormatter().format(record)
    assert "] \033[33mWARNING\033[0m yadtq.worker: careful" in TextFormatter(colour=True).format(record)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(Terminal()) and not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(Terminal())


def test_the_plugin_worker_isolates_an_app_on_real_transports(pytester: pytest.Pytester,
                                                              tmp_path: Path) -> None:
    database = tmp_path / "real.db"
    pytester.makeconftest(f"""
import pytest
from yadtq import YADTQ

app = YADTQ("real", broker="sqlite:///{database}", backend="sqlite:///{database}")

@app.task
def add(x, y):
    return x + y

@pytest.fixture
def yadtq_app():
    return app  # overridden without on_memory
""")
    pytester.makepyfile("""
from conftest import add, app

def test_add(yadtq_worker):
    assert app.settings.broker_url == "memory://"
    assert add.delay(2, 3).get(timeout=10) == 5
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)
    assert not database.exists()  # the real database was never touched


def test_inspect_active_shows_what_the_sqlite_lease_has_left(tmp_path: Path) -> None:
    # A task whose worker was stopped hard stays "processing" until its message's lease
    # runs out: inspect active says how long that is.
    from yadtq import states
    from yadtq.transports.base import StateChange

    url = f"sqlite:///{tmp_path / 'lease.db'}"
    app = YADTQ(broker=url, backend=url, visibility_timeout=120)
    result = app.send_task("examples.math_app.add", (1, 2))
    consumer = app.broker.consumer(["default"])  # leases the message, like a worker
    assert len(consumer.fetch(1, 10)) == 1
    app.backend.record([StateChange(result.id, states.PROCESSING, app.now(), worker="gone",
                                    name="examples.math_app.add")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
    env.update(YADTQ_BROKER_URL=url, YADTQ_BACKEND_URL=url, COLUMNS="200",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))

    def inspect(*extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "yadtq.cli", "inspect", "active", "-A",
                               "examples.math_app", *extra], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    try:
        (active,) = json.loads(inspect("--json"))
        assert active["task_id"] == result.id and active["worker"] == "gone"
        assert time.time() < active["lease_expires"] <= time.time() + 120
        table = inspect()
        assert "lease left" in table and result.id in table
    finally:
        app.close()


@pytest.mark.parametrize("command", [["-c", "import sys; sys.argv[0] = '/usr/bin/yadtq'; import yadtq.cli; "
                                            "raise KeyboardInterrupt"],
                                     ["-m", "yadtq.cli", "--interrupt-now"]])
def test_ctrl_c_while_the_command_starts_prints_no_traceback(command: list[str], tmp_path: Path) -> None:
    # What an interrupt during the command's imports meets: no handler of the command yet.
    # ("--interrupt-now": a sitecustomize raises KeyboardInterrupt once yadtq is imported.)
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "if '--interrupt-now' in sys.argv:\n"
        "    import builtins\n"
        "    real = builtins.__import__\n"
        "    def hook(name, *args, **kwargs):\n"
        "        module = real(name, *args, **kwargs)\n"
        "        if name == 'click':\n"
        "            raise KeyboardInterrupt\n"
        "        return module\n"
        "    builtins.__import__ = hook\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), str(ROOT),
                                                                     os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode in (130, -2), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip() == "", proc.stderr


def test_yadtq_as_a_library_keeps_the_usual_traceback() -> None:
    proc = subprocess.run([sys.executable, "-c", "import yadtq; raise KeyboardInterrupt"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" in proc.stderr


@pytest.mark.usefixtures("memory_worker")
def test_submit_honours_double_dash(runner: CliRunner, memory_app: YADTQ) -> None:
    sent = runner.invoke(main, ["submit", "-A", APP, "greet", "--wait", "--", "-x"], catch_exceptions=False)
    assert sent.exit_code == 0, sent.stderr
    task_id = sent.stdout.split()[0]
    assert memory_app.AsyncResult(task_id).get(timeout=10) == "hello -x"
    refused = runner.invoke(main, ["submit", "-A", APP, "greet", "-x"])
    assert refused.exit_code == 2 and "put it after --" in refused.stderr


def test_submit_from_the_command_on_memory_transports_is_refused(cli: Cli) -> None:
    proc = cli.run("submit", "-A", APP, "add", "1", "2")  # cli_app is on memory://
    assert proc.returncode == 1 and proc.stdout == ""
    assert error_line(proc.stderr).startswith("Error: the app's broker is memory://, which lives inside")
