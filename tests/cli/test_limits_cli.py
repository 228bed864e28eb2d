"""Tasks held by a concurrency limit where a user looks: ``yadtq inspect limits``,
``yadtq inspect scheduled`` and ``yadtq monitor``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq import states

from .conftest import ROOT, Cli, wait_for

APP = "tests.apps.conc_app"


@pytest.fixture
def client(cli: Cli) -> Iterator[Any]:
    cli.env["YADTQ_TEST_GAUGE"] = str(cli.directory / "gauge.db")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("YADTQ_BROKER_URL", "YADTQ_BACKEND_URL", "YADTQ_TEST_GAUGE"):
            patch.setenv(name, cli.env[name])
        module = importlib.reload(importlib.import_module(APP))
        try:
            yield module
        finally:
            module.app.close()


@pytest.mark.timeout(180)
def test_inspect_and_monitor_show_who_holds_and_who_waits(cli: Cli, client: Any) -> None:
    cli.start_worker("-A", APP, "-c", "4", name="w1")
    results = [client.tenant_job.delay("acme", n, 10.0) for n in range(3)]  # long enough to look
    wait_for(lambda: sum(r.state == states.PROCESSING for r in results) == 2 or None, 60,
             "two tasks to hold the slots")
    wait_for(lambda: any(r.state == states.SCHEDULED for r in results) or None, 60,
             "the third to wait")
    listed = cli.run("inspect", "limits", "-A", APP, "--json")
    assert listed.returncode == 0, listed.stderr
    (key,) = json.loads(listed.stdout)["concurrency"]
    waiting = next(r.id for r in results if r.state == states.SCHEDULED)
    assert (key["task"], key["key"], key["limit"], key["running"]) == (
        "tests.apps.conc_app.tenant_job", "acme", 2, 2)
    assert key["waiting"] == [waiting] and key["waiting_count"] == 1
    assert {h["worker"] for h in key["holders"]} == {"w1"}
    table = cli.run("inspect", "limits", "-A", APP).stdout
    assert "Concurrency limits (1 keys in use)" in table and "2/2" in table and waiting in table
    scheduled = cli.run("inspect", "scheduled", "-A", APP).stdout
    assert "1 waiting for a concurrency slot" in scheduled
    snapshot = json.loads(cli.run("monitor", "-A", APP, "--json", "--interval", "0.1").stdout)
    assert [k["key"] for k in snapshot["concurrency"]] == ["acme"]
    assert "Concurrency limits" in cli.run("monitor", "-A", APP, "--once", "--interval", "0.1").stdout
    assert sorted(r.get(timeout=60) for r in results) == [0, 1, 2]
    assert json.loads(cli.run("inspect", "limits", "-A", APP, "--json").stdout)["concurrency"] == []


@pytest.mark.timeout(180)
def test_the_flow_example_keeps_each_tenant_within_its_limit(cli: Cli) -> None:
    cli.start_worker("-A", "examples.flow_app", "-c", "8")
    done = subprocess.run([sys.executable, "-m", "examples.flow_app", "concurrency"], cwd=ROOT,
                          env=cli.env, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert "per tenant: {'acme': 2, 'globex': 2, 'initech': 2}" in line, line
