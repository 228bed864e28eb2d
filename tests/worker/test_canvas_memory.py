"""Canvas on memory://, with an in-process worker (``tests/apps/canvas_app.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from yadtq.worker.main import Worker

from . import canvas_scenarios as scenarios


@pytest.fixture(scope="module")
def m() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("YADTQ_TEST_COUNTERS", "YADTQ_TEST_SIDE_EFFECTS"):
            patch.delenv(name, raising=False)
        patch.setenv("YADTQ_BROKER_URL", "memory://")
        patch.setenv("YADTQ_BACKEND_URL", "memory://")
        module = importlib.reload(importlib.import_module("tests.apps.canvas_app"))
        worker = Worker(module.app, name="canvas-worker", concurrency=4).start()
        try:
            yield module
        finally:
            worker.stop()
            module.app.close()


def test_chain_results_and_parent(m: Any) -> None:
    scenarios.chain_results_and_parent(m)


def test_chain_failure_propagates(m: Any) -> None:
    scenarios.chain_failure_propagates(m)


def test_group_keeps_submission_order(m: Any) -> None:
    scenarios.group_keeps_submission_order(m, m.app)


def test_link_and_link_error(m: Any) -> None:
    scenarios.link_and_link_error(m, "mem")


def test_nested_canvas(m: Any) -> None:
    scenarios.nested_canvas(m)


def test_chord_and_chord_error(m: Any) -> None:
    scenarios.chord_and_chord_error(m, "mem")


def test_parent_and_root_ids(m: Any) -> None:
    scenarios.lineage_is_set(m)


def test_eager_mode_runs_a_canvas_in_the_caller() -> None:
    from yadtq import YADTQ, ChordError, chain, chord, group

    app = YADTQ("eager", eager=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(max_retries=0)
    def boom() -> None:
        raise KeyError("boom")

    assert chain(add.s(1, 2), add.s(3)).apply_async().get(timeout=1) == 6
    assert group(add.s(i, i) for i in range(3)).apply_async().get(timeout=1) == [0, 2, 4]
    assert chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get(timeout=1) == 6
    with pytest.raises(ChordError):
        chord([add.s(1, 1), boom.s()], tsum.s()).apply_async().get(timeout=1)
    app.close()


def test_an_expired_member_fails_its_chord_and_chain_instead_of_leaving_them_pending(m: Any) -> None:
    from datetime import datetime, timedelta

    from yadtq import ChordError, Revoked, chain, chord

    past = datetime.now() - timedelta(seconds=5)
    c = chord([m.add.s(1, 1), m.add.s(2, 2).set(expires=past)], m.tsum.s()).apply_async()
    with pytest.raises(ChordError, match=c.parent.results[1].id):
        c.get(timeout=10)
    r = chain(m.add.s(1, 1), m.add.s(2).set(expires=past), m.add.s(3)).apply_async()
    with pytest.raises(Revoked):
        r.get(timeout=10)


def test_a_chord_without_members_calls_back_with_an_empty_list(m: Any) -> None:
    from yadtq import chord

    c = chord([], m.tsum.s()).apply_async()
    assert c.get(timeout=10) == 0
    assert m.app.backend.open_chords() == []


def test_a_member_revoked_before_it_ran_fails_its_chord_and_chain(m: Any) -> None:
    from yadtq import ChordError, Revoked, chain, chord

    c = chord([m.add.s(1, 1), m.add.s(2, 2).set(countdown=1)], m.tsum.s()).apply_async()
    c.parent.results[1].revoke()
    with pytest.raises(ChordError, match=c.parent.results[1].id):
        c.get(timeout=20)
    r = chain(m.add.s(1, 1).set(countdown=1), m.add.s(2)).apply_async()
    r.parent.revoke()
    with pytest.raises(Revoked):
        r.get(timeout=20)
