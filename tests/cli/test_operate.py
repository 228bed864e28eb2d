"""Operator commands: ``yadtq revoke``, ``retry``, ``dlq``, ``control`` and ``inspect
registered|stats``, in process on memory:// and as subprocesses on SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from tests.apps import cli_app
from tests.cli.conftest import Cli, error_line, wait_for
from yadtq import YADTQ, states
from yadtq.cli import main
from yadtq.worker.main import Worker

pytestmark = pytest.mark.timeout(120)

APP = "tests.apps.cli_app"


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def wait_state(app: YADTQ, task_id: str, state: str) -> None:
    wait_for(lambda: app.AsyncResult(task_id).state == state, 30, f"task {task_id} to be {state}")


@pytest.fixture
def unregistered(memory_app: YADTQ) -> Iterator[str]:
    """``greet``'s full name, missing from the app (so workers dead-letter it) until the test ends."""
    name = cli_app.greet.name
    task = memory_app.tasks.pop(name)
    try:
        yield name
    finally:
        memory_app.tasks[name] = task


# --------------------------------------------------------------------------- revoke


def test_revoke_keeps_a_waiting_task_from_running(runner: CliRunner, memory_app: YADTQ) -> None:
    handle = cli_app.add.delay(2, 3)
    result = invoke(runner, "revoke", "-A", APP, handle.id)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{handle.id} revoked"
    worker = Worker(memory_app, name="revoker", concurrency=1).start()
    try:
        wait_state(memory_app, handle.id, states.REVOKED)
        probe = cli_app.add.delay(1, 1)  # the worker runs on: the revoked task was passed over
        assert probe.get(timeout=30) == 2
    finally:
        worker.stop(timeout=30)
    assert handle.state == states.REVOKED


def test_revoke_terminate_asks_the_live_workers(runner: CliRunner, memory_app: YADTQ,
                                                memory_worker: Worker) -> None:
    wait_for(lambda: memory_app.backend.workers(), 30, "the worker's heartbeat")
    result = invoke(runner, "revoke", "-A", APP, "--terminate", "some-task")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "some-task revoked (terminate)"
    assert memory_app.AsyncResult("some-task").state == states.REVOKED


# --------------------------------------------------------------------------- retry


def test_retry_runs_a_failed_task_again_with_its_arguments(
        runner: CliRunner, memory_app: YADTQ, memory_worker: Worker) -> None:
    handle = cli_app.explode.delay("boom-42")
    wait_state(memory_app, handle.id, states.FAILED)
    result = invoke(runner, "retry", "-A", APP, handle.id)
    assert result.exit_code == 0, result.output
    old, arrow, new = result.output.split()
    assert (old, arrow) == (handle.id, "->") and new != handle.id
    wait_state(memory_app, new, states.FAILED)
    record = memory_app.AsyncResult(new).info
    assert record is not None and record.error is not None
    assert record.error.message == "boom-42"  # the same call ran again
    assert record.name == cli_app.explode.name
    again = invoke(runner, "retry", "-A", APP, handle.id)
    assert again.exit_code == 1
    assert "is not kept" in error_line(again.stderr)


def test_retry_refuses_a_task_that_did_not_fail(runner: CliRunner, memory_app: YADTQ,
                                                memory_worker: Worker) -> None:
    handle = cli_app.add.delay(1, 2)
    assert handle.get(timeout=30) == 3
    result = invoke(runner, "retry", "-A", APP, handle.id)
    assert result.exit_code == 1
    assert error_line(result.stderr) == (f"Error: task {handle.id} is success: "
                                         "only failed tasks can be retried")
    unknown = invoke(runner, "retry", "-A", APP, "nope")
    assert "no task nope" in error_line(unknown.stderr)


def test_retry_failed_by_name_needs_yes_without_a_terminal(
        runner: CliRunner, memory_app: YADTQ, memory_worker: Worker) -> None:
    failing = [cli_app.explode.delay(f"x{i}") for i in range(2)] + [cli_app.divide.delay(1, 0)]
    for handle in failing:
        wait_state(memory_app, handle.id, states.FAILED)
    refused = invoke(runner, "retry", "-A", APP, "--failed", "--name", "explode")
    assert refused.exit_code == 1
    assert "--yes" in error_line(refused.stderr)
    result = invoke(runner, "retry", "-A", APP, "--failed", "--name", "explode", "--yes")
    assert result.exit_code == 0, result.output
    pairs = dict(line.split(" -> ") for line in result.stdout.splitlines())
    assert set(pairs) == {failing[0].id, failing[1].id}
    for new in pairs.values():
        wait_state(memory_app, new, states.FAILED)
    rest = invoke(runner, "retry", "-A", APP, "--failed", "--yes")
    # the divide, and the two retries (which failed again)
    assert {line.split(" -> ")[0] for line in rest.stdout.splitlines()} == {failing[2].id, *pairs.values()}


# --------------------------------------------------------------------------- dlq


def test_dlq_lists_shows_and_requeues_a_dead_letter(
        runner: CliRunner, memory_app: YADTQ, memory_worker: Worker, unregistered: str) -> None:
    handle = memory_app.send_task(unregistered, ["bob"])
    wait_for(lambda: memory_app.broker.list_dead_letters(), 30, "the dead letter")
    assert memory_app.AsyncResult(handle.id).state == states.FAILED
    # This handle saw the task ready (failed): after the requeue it must see it run again.
    assert handle.state == states.FAILED
    assert isinstance(handle.get(timeout=5, propagate=False), Exception)
    listed = invoke(runner, "dlq", "list", "-A", APP, "--json")
    assert listed.exit_code == 0, listed.output
    (letter,) = json.loads(listed.output)
    assert letter["task_id"] == handle.id and letter["task"] == unregistered
    assert letter["reason"] == f"task {unregistered!r} is not registered"
    assert letter["call"] == '"bob"'
    table = invoke(runner, "dlq", "list", "-A", APP)
    assert handle.id in table.output and "not registered" in table.output
    shown = invoke(runner, "dlq", "show", "-A", APP, handle.id)
    assert f"reason:      task {unregistered!r} is not registered" in shown.output
    missing = invoke(runner, "dlq", "show", "-A", APP, "nope")
    assert error_line(missing.stderr) == "Error: no dead letter 'nope'"
    memory_app.tasks[unregistered] = cli_app.greet  # the fix is deployed
    requeued = invoke(runner, "dlq", "requeue", "-A", APP, letter["id"])
    assert requeued.exit_code == 0, requeued.output
    assert requeued.output.splitlines()[-1] == "requeued 1 dead letter"
    assert handle.get(timeout=30) == "hello bob"  # under its own id, not the earlier outcome
    assert handle.state == states.SUCCESS and handle.result == "hello bob"
    assert json.loads(invoke(runner, "dlq", "list", "-A", APP, "--json").output) == []


def test_dlq_requeue_all_and_purge_ask_first(
        runner: CliRunner, memory_app: YADTQ, memory_worker: Worker, unregistered: str) -> None:
    for i in range(2):
        memory_app.send_task(unregistered, [str(i)])
    wait_for(lambda: len(memory_app.broker.list_dead_letters()) == 2, 30, "two dead letters")
    usage = invoke(runner, "dlq", "requeue", "-A", APP)
    assert usage.exit_code == 2
    refused = invoke(runner, "dlq", "purge", "-A", APP)
    assert refused.exit_code == 1 and "--yes" in error_line(refused.stderr)
    requeued = invoke(runner, "dlq", "requeue", "-A", APP, "--all", "--yes")
    assert requeued.output.splitlines()[-1] == "requeued 2 dead letters"
    # still unregistered: dead-lettered again
    wait_for(lambda: len(memory_app.broker.list_dead_letters()) == 2, 30, "two dead letters again")
    purged = invoke(runner, "dlq", "purge", "-A", APP, "--yes")
    assert purged.output.strip() == "purged 2 dead letters"
    assert invoke(runner, "dlq", "list", "-A", APP).output.strip() == "no dead letters"


# --------------------------------------------------------------------------- control, inspect


def test_control_resizes_the_pool_and_shuts_the_worker_down(
        runner: CliRunner, memory_app: YADTQ, memory_worker: Worker) -> None:
    wait_for(lambda: memory_app.backend.workers(), 30, "the worker's heartbeat")
    grown = invoke(runner, "control", "pool-grow", "3", "-A", APP)
    assert grown.output.strip() == "sent pool-grow 3 to 1 worker: cli-memory-worker"
    wait_for(lambda: memory_worker.concurrency == 5, 30, "the pool to grow to 5")
    invoke(runner, "control", "pool-shrink", "2", "-A", APP, "--worker", "cli-memory-worker")
    wait_for(lambda: memory_worker.concurrency == 3, 30, "the pool to shrink to 3")
    assert cli_app.add.delay(2, 2).get(timeout=30) == 4
    unknown = invoke(runner, "control", "shutdown", "-A", APP, "--worker", "ghost")
    assert error_line(unknown.stderr) == "Error: no worker named 'ghost' (known: cli-memory-worker)"
    bad = invoke(runner, "control", "pool-grow", "0", "-A", APP)
    assert bad.exit_code == 2
    invoke(runner, "control", "shutdown", "-A", APP)
    wait_for(lambda: memory_worker._stopped.is_set(), 30, "the worker to stop")


def test_control_without_live_workers_is_an_error(runner: CliRunner, memory_app: YADTQ) -> None:
    result = invoke(runner, "control", "shutdown", "-A", APP)
    assert result.exit_code == 1
    assert error_line(result.stderr) == "Error: no live worker to send it to"


def test_inspect_registered_and_stats(runner: CliRunner, memory_app: YADTQ, memory_worker: Worker) -> None:
    assert cli_app.add.delay(1, 1).get(timeout=30) == 2
    wait_for(lambda: memory_app.backend.workers(), 30, "the worker's heartbeat")
    registered = json.loads(invoke(runner, "inspect", "registered", "-A", APP, "--json").output)
    assert cli_app.add.name in registered["app"]
    assert registered["workers"]["cli-memory-worker"] == sorted(memory_app.tasks)
    table = invoke(runner, "inspect", "registered", "-A", APP).output
    assert cli_app.add.name in table and "cli-memory-worker" in table
    stats = json.loads(invoke(runner, "inspect", "stats", "-A", APP, "--json").output)
    assert stats["totals"]["succeeded"] >= 1
    (worker,) = stats["workers"]
    assert worker["worker"] == "cli-memory-worker" and worker["pool"] == "threads"
    text = invoke(runner, "inspect", "stats", "-A", APP).output
    assert "totals: succeeded" in text


# --------------------------------------------------------------------------- SQLite, across processes


def test_operator_commands_across_processes_on_sqlite(cli: Cli) -> None:
    cli.start_worker("-A", "examples.math_app", "-c", "2", name="ops")
    sent = cli.run("submit", "-A", "examples.math_app", "divide", "1", "0", "--wait")
    assert sent.returncode == 1
    task_id = sent.stdout.split()[0]
    retried = cli.run("retry", "-A", "examples.math_app", task_id)
    assert retried.returncode == 0, retried.stderr
    new = retried.stdout.split(" -> ")[1].strip()
    status = cli.run("result", "-A", "examples.math_app", new, "--timeout", "30")
    assert "ZeroDivisionError" in error_line(status.stderr)
    ghost = cli.run("submit", "-A", "examples.math_app", "examples.math_app.nope", "1")
    ghost_id = ghost.stdout.strip()
    wait_for(lambda: ghost_id in cli.run("dlq", "list", "-A", "examples.math_app").stdout, 30,
             "the dead letter")
    purged = cli.run("dlq", "purge", "-A", "examples.math_app", "--yes")
    assert purged.stdout.strip() == "purged 1 dead letter"
    stopped = cli.run("control", "shutdown", "-A", "examples.math_app")
    assert stopped.stdout.strip() == "sent shutdown to 1 worker: ops"
    assert cli.workers[0].wait(timeout=60) == 0


@pytest.mark.parametrize(("args", "options"), [
    (["revoke"], ["--terminate"]), (["retry"], ["--failed", "--name", "--yes"]),
    (["dlq", "list"], ["--json", "--limit"]), (["dlq", "requeue"], ["--all", "--yes"]),
    (["dlq", "purge"], ["--yes"]), (["control", "pool-shrink"], ["--worker", "--yes"]),
    (["dashboard"], ["--host", "--port", "--token", "YADTQ_DASHBOARD_TOKEN"]),
    (["worker"], ["--metrics-port"]),
])
def test_operator_command_help(runner: CliRunner, args: list[str], options: list[str]) -> None:
    result = invoke(runner, *args, "--help")
    assert result.exit_code == 0
    for option in options:
        assert option in result.output


def test_dashboard_refuses_a_public_bind_without_a_token(runner: CliRunner) -> None:
    result = invoke(runner, "dashboard", "-A", APP, "--host", "0.0.0.0")
    assert result.exit_code == 1
    assert error_line(result.stderr).startswith(
        "Error: refusing to serve the dashboard on 0.0.0.0 without a token")


def test_dashboard_on_a_busy_port_is_one_error_line(runner: CliRunner) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke(runner, "dashboard", "-A", APP, "--port", str(port))
    assert result.exit_code == 1
    assert error_line(result.stderr).startswith(f"Error: cannot serve the dashboard on 127.0.0.1:{port}: ")
