"""A chord's progress where a user looks: ``yadtq inspect chords`` and ``yadtq monitor``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq import chord

from .conftest import ROOT, Cli

APP = "tests.apps.canvas_app"


@pytest.fixture
def client(cli: Cli) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("YADTQ_TEST_COUNTERS", "YADTQ_TEST_SIDE_EFFECTS"):
            patch.delenv(name, raising=False)
        patch.setenv("YADTQ_BROKER_URL", cli.env["YADTQ_BROKER_URL"])
        patch.setenv("YADTQ_BACKEND_URL", cli.env["YADTQ_BACKEND_URL"])
        module = importlib.reload(importlib.import_module(APP))
        try:
            yield module
        finally:
            module.app.close()


@pytest.mark.timeout(180)
def test_inspect_and_monitor_show_a_chord_in_progress(cli: Cli, client: Any) -> None:
    c = chord([client.add.s(i, i) for i in range(3)], client.tsum.s()).apply_async()
    listed = cli.run("inspect", "chords", "-A", APP, "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["id"] == c.parent.id and entry["callback_id"] == c.id
    assert (entry["done"], entry["size"], entry["state"]) == (0, 3, "open")
    table = cli.run("inspect", "chords", "-A", APP)
    assert "Chords in progress (1)" in table.stdout and "0/3" in table.stdout
    monitor = cli.run("monitor", "-A", APP, "--once", "--interval", "0.1")
    assert monitor.returncode == 0, monitor.stderr
    assert "Chords in progress" in monitor.stdout and c.parent.id in monitor.stdout
    snapshot = json.loads(cli.run("monitor", "-A", APP, "--json", "--interval", "0.1").stdout)
    assert [ch["id"] for ch in snapshot["chords"]] == [c.parent.id]

    cli.start_worker("-A", APP, "-c", "2")
    assert c.get(timeout=60) == 6
    assert json.loads(cli.run("inspect", "chords", "-A", APP, "--json").stdout) == []
    info = client.app.GroupResult(c.parent.id).info()
    assert (info.done, info.state) == (3, "fired")


@pytest.mark.timeout(180)
def test_the_canvas_example_runs(cli: Cli) -> None:
    cli.start_worker("-A", "examples.canvas_app", "-c", "4")
    result = subprocess.run([sys.executable, "-m", "examples.canvas_app"], cwd=ROOT, env=cli.env,
                            capture_output=True, text=True, timeout=150, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "chain(add(2, 3), multiply(10))       = 50" in out
    assert "chord(add(i, i)..., total)          = 90" in out
    assert "add(1, 2) | group(*2, *3) | total  = 15" in out
    assert "-> ChordError: chord" in out
    assert "[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]" in out
