"""Canvas scenarios run on every transport with real workers (``tests/apps/canvas_app.py``).

Each takes the app module as the workers import it and asserts what a user sees.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any, Callable

import pytest

from yadtq import ChordError, GroupResult, chain, chord, group

from .helpers import wait_until
from .procs import WorkerProcess

TIMEOUT = 60.0


def chain_results_and_parent(m: Any) -> None:
    r = chain(m.add.s(2, 3), m.mul.s(10)).apply_async()
    assert r.get(timeout=TIMEOUT) == 50
    assert r.parent is not None and r.parent.get(timeout=TIMEOUT) == 5
    assert (m.add.s(1, 1) | m.mul.s(3) | m.add.si(4, 4)).delay().get(timeout=TIMEOUT) == 8


def chain_failure_propagates(m: Any) -> None:
    r = chain(m.add.s(1, 2), m.fail.s(), m.add.s(1), m.add.s(2)).apply_async()
    with pytest.raises(ValueError, match=r"failing on purpose with \(3,\)"):
        r.get(timeout=TIMEOUT)
    with pytest.raises(ValueError):  # the step after the failure failed with it, never ran
        r.parent.get(timeout=TIMEOUT)
    assert r.parent.parent.failed() and r.parent.parent.parent.successful()


def group_keeps_submission_order(m: Any, app: Any) -> None:
    g = group(m.add.s(i, i) for i in range(20)).apply_async()
    assert isinstance(g, GroupResult)
    assert g.get(timeout=TIMEOUT) == [2 * i for i in range(20)]
    assert g.ready() and g.successful() and g.completed_count() == 20
    assert [r.id for r in g.results] == [r.id for r in app.GroupResult(str(g)).results]
    assert app.GroupResult(g.id).get(timeout=TIMEOUT) == [2 * i for i in range(20)]
    assert m.add.starmap([(1, 2), (3, 4)]).apply_async().get(timeout=TIMEOUT) == [3, 7]
    assert m.add.chunks([(i, 1) for i in range(5)], 2).apply_async().get(timeout=TIMEOUT) == [
        [1, 2], [3, 4], [5]]


def link_and_link_error(m: Any, key: str) -> None:
    ok = m.add.apply_async((2, 3), link=m.note.s(f"{key}-ok"), link_error=m.note.s(f"{key}-err"))
    assert ok.get(timeout=TIMEOUT) == 5
    bad = m.fail.apply_async((7,), link=m.note.s(f"{key}-ok"), link_error=m.note.s(f"{key}-err"))
    with pytest.raises(ValueError):
        bad.get(timeout=TIMEOUT)
    wait_until(lambda: m.counted(f"{key}-err:{bad.id}") == 1, TIMEOUT)  # got the failed id
    wait_until(lambda: m.counted(f"{key}-ok:5") == 1, TIMEOUT)
    assert m.counted(f"{key}-err:{ok.id}") == 0 and m.counted(f"{key}-ok:None") == 0


def nested_canvas(m: Any) -> None:
    # A group inside a chain (followed by a step: a chord), a chain inside a group,
    # and a chord whose callback is a chain.
    r = chain(m.add.s(1, 2), group(m.mul.s(2), m.mul.s(3)), m.tsum.s()).apply_async()
    assert r.get(timeout=TIMEOUT) == 15
    g = group(chain(m.add.s(1, 1), m.mul.s(2)), chain(m.add.s(2, 2), m.mul.s(3)),
              m.add.s(0, 1)).apply_async()
    assert g.get(timeout=TIMEOUT) == [4, 12, 1]
    c = chord([m.add.s(1, 1), m.add.s(2, 2)], chain(m.tsum.s(), m.mul.s(10))).apply_async()
    assert c.get(timeout=TIMEOUT) == 60
    last = chain(m.add.s(1, 1), group(m.mul.s(5), m.mul.s(6))).apply_async()
    assert isinstance(last, GroupResult) and last.get(timeout=TIMEOUT) == [10, 12]


def chord_and_chord_error(m: Any, key: str) -> None:
    c = chord([m.add.s(i, i) for i in range(10)], m.counted_sum.s(f"{key}-sum")).apply_async()
    assert c.get(timeout=TIMEOUT) == 90
    assert m.counted(f"{key}-sum") == 1
    bad = chord([m.add.s(1, 1), m.fail.s(), m.add.s(2, 2)], m.counted_sum.s(f"{key}-bad")).apply_async()
    with pytest.raises(ChordError) as info:
        bad.get(timeout=TIMEOUT)
    failed_member = bad.parent.results[1].id
    assert failed_member in str(info.value)
    assert m.counted(f"{key}-bad") == 0


def lineage_is_set(m: Any) -> None:
    r = chain(m.lineage.s(), m.lineage.s()).apply_async()
    assert r.get(timeout=TIMEOUT) == [r.parent.id, r.parent.id]
    assert r.parent.get(timeout=TIMEOUT) == [None, r.parent.id]
    g = group(m.lineage.s(), m.lineage.s()).apply_async()
    assert g.get(timeout=TIMEOUT) == [[g.id, g.id], [g.id, g.id]]


def chord_survives_sigkills(m: Any, spawn: Callable[[], WorkerProcess], key: str,
                            size: int = 1000, kills: int = 8, timeout: float = 300.0) -> int:
    """A chord of ``size`` members while a driver SIGKILLs a serving worker (and starts a
    new one) each time another ``size / (kills + 2)`` members are done, up to ``kills``
    times: its callback runs exactly once. Returns how many workers were killed."""
    rng = random.Random()
    workers = [spawn() for _ in range(3)]
    everyone = list(workers)
    killed = 0
    step = size // (kills + 2)
    try:
        c = chord([m.nap_add.s(i, 1) for i in range(size)], m.counted_sum.s(key)).apply_async()
        header = c.parent
        deadline = time.monotonic() + timeout
        while killed < kills:
            info = header.info()
            assert info is not None
            # Kills stop before the last members, so the callback's own run is never killed
            # (a task whose worker dies while running it runs again: docs/semantics.md).
            if info.state != "open":
                break
            assert time.monotonic() < deadline, f"chord stuck at {info.done}/{size}"
            status = m.app.get_worker_status()
            # Only workers that started consuming: killing one still importing tests little.
            serving = [w for w in workers if status.get(w.name, {}).get("status") == "alive"]
            if info.done < step * (killed + 1) or not serving:
                time.sleep(0.1)
                continue
            victim = rng.choice(serving)
            workers.remove(victim)
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            killed += 1
            workers.append(spawn())
            everyone.append(workers[-1])
        assert c.get(timeout=timeout) == sum(i + 1 for i in range(size))
        time.sleep(1.0)  # a second run of the callback, if any, would show up by now
        assert m.counted(key) == 1
        assert header.completed_count() == size
        return killed
    finally:
        for worker in everyone:
            worker.stop()


def unregistered_member_fails_the_chord(m: Any) -> None:
    """A member no worker knows is dead-lettered, and fails its chord (no hang)."""
    name = "tests.apps.canvas_app.only_on_the_client"
    ghost = m.app.tasks.get(name) or m.app.task(name=name)(lambda x: x)
    bad = chord([m.add.s(1, 1), ghost.s(1)], m.tsum.s()).apply_async()
    with pytest.raises(ChordError, match=bad.parent.results[1].id):
        bad.get(timeout=TIMEOUT)
