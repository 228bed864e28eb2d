"""``revoke(terminate=True)`` stops running tasks on every pool (DESIGN.md §13): the state
is ``revoked`` at once and stays so, the task is never retried, ``get()`` raises
``Revoked``, and the worker goes on."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from yadtq import Revoked, states

from ..worker.helpers import wait_until
from ..worker.procs import ROOT, running_workers, wait_ready
from .conftest import APP, Stack

pytestmark = pytest.mark.slow

CASES = {
    # pool: (task, the side effect proving it was stopped, or None to check the pool child)
    "threads": ("spin", "stopped"),
    "processes": ("sleeper", None),
    "asyncio": ("async_sleeper", "cancelled"),
}


@pytest.mark.parametrize("pool", list(CASES))
def test_terminate_a_running_task(stack: Stack, pool: str) -> None:
    if stack.name == "kafka" and pool == "threads":
        pytest.skip("stopping is the pool's; Kafka + Redis run the processes and asyncio cases")
    m = stack.module
    name, proof = CASES[pool]
    with running_workers(1, APP, stack.env, stack.logdir, ["--pool", pool, "-c", "2"]) as workers:
        wait_ready(workers, m.app.get_worker_status)
        result = getattr(m, name).delay("victim")
        wait_until(lambda: stack.effect_lines("victim.started"), timeout=30)
        wait_until(lambda: result.state != states.QUEUED, timeout=30)
        result.revoke(terminate=True)
        assert result.state == states.REVOKED  # at once: recorded by the call itself
        with pytest.raises(Revoked):
            result.get(timeout=1)
        if proof is not None:
            wait_until(lambda: stack.effect_lines(f"victim.{proof}"), timeout=10)
        else:
            child = int(stack.effect_lines("victim.started")[0])
            wait_until(lambda: not _alive(child), timeout=10)
        assert m.add.delay(2, 2).get(timeout=30) == 4  # the worker goes on
        time.sleep(0.5)  # give a wrongly scheduled retry a chance to show
        assert result.state == states.REVOKED and result.retries == 0
    assert stack.effect_lines("victim.started") == stack.effect_lines("victim.started")[:1]
    assert not stack.effect_lines("victim.finished")


def test_cooperative_thread_task_and_the_cli(stack: Stack) -> None:
    if stack.name == "kafka":
        pytest.skip("the CLI talks to the backend only; SQLite covers it")
    m = stack.module
    with running_workers(1, APP, stack.env, stack.logdir, ["-c", "2"]) as workers:
        wait_ready(workers, m.app.get_worker_status)
        result = m.polite.delay("nice")
        wait_until(lambda: stack.effect_lines("nice.started"), timeout=30)
        wait_until(lambda: result.state == states.PROCESSING, timeout=30)
        done = subprocess.run([sys.executable, "-m", "yadtq.cli", "revoke", "-A", APP, result.id,
                               "--terminate"], cwd=ROOT, env=stack.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"{result.id} revoked (terminate)"
        assert result.state == states.REVOKED
        wait_until(lambda: stack.effect_lines("nice.stopped"), timeout=10)
        time.sleep(0.3)
        assert result.state == states.REVOKED


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process: its ``/proc`` entry exists and is not a zombie.
    A process reaped while its entry is read raises ESRCH (ProcessLookupError), not
    ENOENT, so any OSError means gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
