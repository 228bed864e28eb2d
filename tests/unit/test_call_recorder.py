"""The worker's background saver of started calls (``yadtq/worker/details.py``): it saves
once per interval, and sooner when ``SAVE_SOON`` calls wait or the worker stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from yadtq import YADTQ
from yadtq.envelope import Envelope
from yadtq.worker import details
from yadtq.worker.details import CallRecorder

#: Longest a test waits for a save that should come at once.
WAIT = 10.0


@pytest.fixture()
def app() -> Iterator[YADTQ]:
    app = YADTQ("calls", broker="memory://", backend="memory://")
    yield app
    app.close()


@pytest.fixture()
def recorder(app: YADTQ, monkeypatch: pytest.MonkeyPatch) -> Iterator[CallRecorder]:
    # An interval no test waits out: every save seen below came early.
    monkeypatch.setattr(details, "SAVE_INTERVAL", 60.0)
    stop = threading.Event()
    recorder = CallRecorder(app, stop)
    yield recorder
    stop.set()
    recorder.wake()


def _started(recorder: CallRecorder, first: int, count: int) -> list[str]:
    ids = [f"task-{n}" for n in range(first, first + count)]
    recorder.started([Envelope(id=task_id, task="calls.add", args=(n, 1)) for n, task_id in enumerate(ids)])
    return ids


def _saved(app: YADTQ, ids: Sequence[str]) -> int:
    return sum(call is not None for call in app.backend.calls(ids))  # type: ignore[attr-defined]


def _wait_saved(app: YADTQ, ids: Sequence[str]) -> int:
    deadline = time.monotonic() + WAIT
    while _saved(app, ids) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _saved(app, ids)


def test_fewer_than_save_soon_wait_for_the_interval(app: YADTQ, recorder: CallRecorder) -> None:
    ids = _started(recorder, 0, details.SAVE_SOON - 1)
    time.sleep(0.5)
    assert _saved(app, ids) == 0


def test_save_soon_calls_are_saved_without_waiting_for_the_interval(
        app: YADTQ, recorder: CallRecorder) -> None:
    ids = _started(recorder, 0, details.SAVE_SOON - 1)
    ids += _started(recorder, details.SAVE_SOON - 1, 1)
    assert _wait_saved(app, ids) == details.SAVE_SOON
    call = app.backend.calls([ids[3]])[0]  # type: ignore[attr-defined]
    assert call is not None and call.name == "calls.add" and call.args == ("3", "1")


def test_a_busy_worker_saves_in_steps(app: YADTQ, recorder: CallRecorder) -> None:
    first = _started(recorder, 0, details.SAVE_SOON)
    assert _wait_saved(app, first) == len(first)
    second = _started(recorder, details.SAVE_SOON, details.SAVE_SOON + 10)
    assert _wait_saved(app, second) == len(second)


def test_wake_saves_what_waits_and_a_stopped_recorder_ends(
        app: YADTQ, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(details, "SAVE_INTERVAL", 60.0)
    stop = threading.Event()
    recorder = CallRecorder(app, stop)
    ids = _started(recorder, 0, 3)
    thread = recorder._thread
    assert thread is not None
    stop.set()
    recorder.wake()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert _saved(app, ids) == 3
