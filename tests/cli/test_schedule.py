"""``yadtq schedule list|add|pause|resume|remove|run``: in-process on memory transports,
and in subprocesses with a real worker on SQLite."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from yadtq import YADTQ
from yadtq.cli import main

from .conftest import Cli, error_line, wait_for

pytestmark = pytest.mark.timeout(180)
APP = ("-A", "examples.math_app")
MEM = ("-A", "tests.apps.cli_app")


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


def listed_in(runner: CliRunner) -> dict[str, dict[str, object]]:
    result = invoke(runner, "schedule", "list", *MEM, "--json")
    assert result.exit_code == 0, result.output
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def listed(cli: Cli) -> dict[str, dict[str, object]]:
    result = cli.run("schedule", "list", *APP, "--json")
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_schedule_commands_manage_the_stored_schedules(runner: CliRunner, memory_app: YADTQ) -> None:
    assert invoke(runner, "schedule", "list", *MEM).stdout.strip() == "no periodic schedules"
    add = ("schedule", "add", *MEM, "nightly", "add", "1", "--kwargs", '{"y": 2}',
           "--cron", "0 3 * * *", "--timezone", "Europe/Berlin")
    added = invoke(runner, *add)
    assert added.exit_code == 0 and added.stdout.startswith("nightly: saved"), added.output
    assert invoke(runner, *add).stdout.startswith("nightly: unchanged")
    nightly = listed_in(runner)["nightly"]
    assert (nightly["task"], nightly["args"], nightly["kwargs"], nightly["timezone"], nightly["paused"]) \
        == ("tests.apps.cli_app.add", [1], {"y": 2}, "Europe/Berlin", False)
    table = invoke(runner, "schedule", "list", *MEM).stdout
    assert "nightly" in table and "Europe/Berlin" in table and "never" in table
    assert invoke(runner, "schedule", "pause", *MEM, "nightly").exit_code == 0
    assert listed_in(runner)["nightly"]["paused"] is True
    assert memory_app.periodic_tasks()[0].paused
    assert invoke(runner, "schedule", "resume", *MEM, "nightly").exit_code == 0
    assert listed_in(runner)["nightly"]["paused"] is False
    assert invoke(runner, "schedule", "remove", *MEM, "nightly").exit_code == 0
    assert listed_in(runner) == {}


def test_monitor_and_inspect_show_schedules(runner: CliRunner, memory_app: YADTQ) -> None:
    invoke(runner, "schedule", "add", *MEM, "often", "add", "1", "2", "--every", "30")
    invoke(runner, "schedule", "pause", *MEM, "often")
    snapshot = json.loads(invoke(runner, "monitor", *MEM, "--json", "--interval", "0.1").stdout)
    (often,) = snapshot["schedules"]
    assert (often["name"], often["every"], often["paused"], often["last_run"]) == ("often", 30.0, True, None)
    assert "often" in invoke(runner, "monitor", *MEM, "--once", "--interval", "0.1").stdout
    inspected = json.loads(invoke(runner, "inspect", "schedules", *MEM, "--json").stdout)
    assert [(i["name"], i["task"]) for i in inspected] == [("often", "tests.apps.cli_app.add")]
    table = invoke(runner, "inspect", "schedules", *MEM).stdout
    assert "often" in table and "paused" in table and "every 30 s" in table


@pytest.mark.parametrize("args, fragment", [
    (["pause", "ghost"], "no periodic schedule named 'ghost'"),
    (["resume", "ghost"], "no periodic schedule named 'ghost'"),
    (["remove", "ghost"], "no periodic schedule named 'ghost'"),
    (["run", "ghost"], "no periodic schedule named 'ghost'"),
    (["add", "x", "add", "1", "2", "--cron", "61 * * * *"], "bad cron expression"),
    (["add", "x", "add", "1", "2", "--cron", "* * * * *", "--timezone", "Mars/Base"], "unknown timezone"),
    (["add", "x", "add", "1", "--every", "5"], "missing a required argument"),
    (["add", "x", "nosuch", "--every", "5"], "no task named 'nosuch'"),
])
def test_bad_input_is_one_line(runner: CliRunner, memory_app: YADTQ, args: list[str],
                               fragment: str) -> None:
    result = invoke(runner, "schedule", args[0], *MEM, *args[1:])
    assert result.exit_code == 1
    assert fragment in error_line(result.stderr)


def test_usage_errors_exit_2(runner: CliRunner, memory_app: YADTQ) -> None:
    neither = invoke(runner, "schedule", "add", *MEM, "x", "add", "1", "2")
    both = invoke(runner, "schedule", "add", *MEM, "x", "add", "1", "2", "--every", "1",
                  "--cron", "* * * * *")
    assert neither.exit_code == both.exit_code == 2
    assert "exactly one of --cron or --every" in neither.stderr


def test_a_worker_fires_an_added_schedule_and_run_enqueues_now(cli: Cli) -> None:
    cli.start_worker(*APP, "-l", "info")
    assert cli.run("schedule", "add", *APP, "fast", "add", "2", "3", "--every", "1").returncode == 0
    task_id = wait_for(lambda: listed(cli)["fast"]["last_task_id"], 60, "a tick of 'fast'")
    result = cli.run("result", *APP, str(task_id), "--wait", "--timeout", "60")
    assert result.returncode == 0 and result.stdout.strip() == "5", result.stderr
    cli.run("schedule", "pause", *APP, "fast")
    ran = cli.run("schedule", "run", *APP, "fast")
    assert ran.returncode == 0, ran.stderr
    now = cli.run("result", *APP, ran.stdout.strip(), "--wait", "--timeout", "60")
    assert now.stdout.strip() == "5"
