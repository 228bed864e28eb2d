"""The collector is paused for a bulk send and left as it was found."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from yadtq import YADTQ
from yadtq.collecting import collector_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_on_again_after(collector_on: None) -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_on_after_an_exception(collector_on: None) -> None:
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_program_stays_off(collector_on: None) -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_send_many_runs_with_the_collector_paused(collector_on: None) -> None:
    app = YADTQ("collecting", broker="memory://", backend="memory://")
    seen: list[bool] = []

    @app.task
    def noop() -> None:
        return None

    class Calls:
        def __iter__(self) -> Iterator[object]:
            seen.append(gc.isenabled())
            return iter([noop.s(), noop.s()])

    results = app.send_many(Calls())
    assert len(results) == 2 and seen == [False]
    assert gc.isenabled()
    app.close()


def test_a_plain_group_is_sent_with_the_collector_paused(collector_on: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from yadtq import group
    from yadtq.canvas import send

    app = YADTQ("collecting-group", broker="memory://", backend="memory://")
    seen: list[bool] = []
    real = send.send_plain_group

    def watched(*args: object) -> object:
        seen.append(gc.isenabled())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(send, "send_plain_group", watched)

    @app.task
    def noop() -> None:
        return None

    result = group(noop.s(), noop.s()).apply_async()
    assert len(result.results) == 2 and seen == [False]
    assert gc.isenabled()
    app.close()
