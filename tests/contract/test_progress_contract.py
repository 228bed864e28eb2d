"""The progress step of the backend contract, on every backend: the latest update of a
task wins, unknown tasks have none, forgetting a task drops it."""

from __future__ import annotations

from yadtq.envelope import pack, unpack
from yadtq.transports.base import Progress, ResultBackend


def test_latest_progress_wins_and_forget_drops_it(backend: ResultBackend, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    backend.record_progress([Progress(a, 0, "PROGRESS", pack({"done": 1}), 1.0)])
    backend.record_progress([Progress(a, 1, "DOWNLOADING", pack({"done": 2}), 2.0),
                             Progress(b, 0, "PROGRESS", None, 3.0)])
    found_a, found_b, missing = backend.get_progress([a, b, f"none-{unique}"])
    assert missing is None
    assert found_a is not None and (found_a.retries, found_a.state) == (1, "DOWNLOADING")
    assert found_a.meta is not None and unpack(found_a.meta) == {"done": 2} and found_a.timestamp == 2.0
    assert found_b == Progress(b, 0, "PROGRESS", None, 3.0)
    backend.forget([a])
    assert backend.get_progress([a, b])[0] is None and backend.get_progress([b])[0] is not None
    assert backend.get_progress([]) == []
