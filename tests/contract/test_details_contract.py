"""The task-details step of the backend contract, on every backend: calls are kept
bounded and read back, children are indexed under their parent, newest kept."""

from __future__ import annotations

from typing import Any, Callable

from yadtq.envelope import Envelope
from yadtq.transports.base import ResultBackend
from yadtq.transports.details_store import (
    CALL_ARGS_LIMIT,
    CALL_TEXT_LIMIT,
    CHILDREN_LIMIT,
    DetailsBackend,
    call_of,
)


def test_calls_are_kept_bounded(backend: ResultBackend, unique: str) -> None:
    assert isinstance(backend, DetailsBackend)
    envelope = Envelope(id=f"t-{unique}", task="pkg.add", args=(2, "x" * 10_000, *range(30)),
                        kwargs={"flag": True})
    backend.save_calls([call_of(envelope)])
    (call,), (missing,) = backend.calls([envelope.id]), backend.calls([f"none-{unique}"])
    assert missing is None
    assert call is not None and call.name == "pkg.add" and call.args[0] == "2"
    assert len(call.args) == CALL_ARGS_LIMIT and len(call.args[1]) == CALL_TEXT_LIMIT
    assert call.kwargs == () or call.kwargs == (("flag", "True"),)
    assert call.omitted == 32 + 1 - CALL_ARGS_LIMIT - len(call.kwargs)
    assert backend.calls([]) == []


def test_children_are_indexed_under_their_parent(backend_factory: Callable[..., ResultBackend],
                                                 unique: str) -> None:
    backend: Any = backend_factory()
    parent = f"p-{unique}"
    first = [Envelope(id=f"c{i}-{unique}", task="pkg.step", parent_id=parent, root_id=parent)
             for i in range(3)]
    backend.save_calls([call_of(e) for e in first])
    backend.save_calls([call_of(first[1])])  # started again (a retry): listed once
    assert backend.children(parent) == [e.id for e in first]
    assert backend.children(f"none-{unique}") == []
    (call,) = backend.calls([first[0].id])
    assert call.parent_id == parent and call.root_id == parent
    more = [Envelope(id=f"m{i:03d}-{unique}", task="pkg.step", parent_id=parent)
            for i in range(CHILDREN_LIMIT)]
    backend.save_calls([call_of(e) for e in more])
    kept = backend.children(parent)
    assert len(kept) == CHILDREN_LIMIT and kept[-1] == more[-1].id and first[0].id not in kept
    assert backend.children(parent, limit=2) == kept[-2:]
