"""The task-details step of the backend contract, on every backend: calls are kept
bounded and read back, children are indexed under their parent, newest kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import pytest

from yadtq.envelope import Envelope
from yadtq.transports.base import ResultBackend
from yadtq.transports.details_store import (
    CALL_ARGS_LIMIT,
    CALL_TEXT_LIMIT,
    CHILDREN_LIMIT,
    DetailsBackend,
    call_of,
    encoded_call_of,
)

#: The two ways calls are saved: as a worker saves its starts, and from TaskCalls.
WAYS = ("save_started", "save_calls")


def save(backend: Any, envelopes: Sequence[Envelope], way: str) -> None:
    if way == "save_started":
        backend.save_started(envelopes)
    else:
        backend.save_calls([call_of(e) for e in envelopes])


def test_a_call_is_encoded_alike_from_its_envelope() -> None:
    envelopes = [Envelope(id="a", task="pkg.noop"),
                 Envelope(id="b", task="pkg.add", args=(2, "x" * 10_000, *range(30)),
                          kwargs={f"k{i}": i for i in range(25)}, parent_id="p", root_id="r"),
                 Envelope(id="c", task="pkg.kw", kwargs={"when": None})]
    for envelope in envelopes:
        assert encoded_call_of(envelope) == call_of(envelope).encode()


@pytest.mark.parametrize("way", WAYS)
def test_calls_are_kept_bounded(backend: ResultBackend, unique: str, way: str) -> None:
    assert isinstance(backend, DetailsBackend)
    envelope = Envelope(id=f"t-{unique}", task="pkg.add", args=(2, "x" * 10_000, *range(30)),
                        kwargs={"flag": True})
    save(backend, [envelope], way)
    (call,), (missing,) = backend.calls([envelope.id]), backend.calls([f"none-{unique}"])
    assert missing is None
    assert call is not None and call.name == "pkg.add" and call.args[0] == "2"
    assert len(call.args) == CALL_ARGS_LIMIT and len(call.args[1]) == CALL_TEXT_LIMIT
    assert call.kwargs == () or call.kwargs == (("flag", "True"),)
    assert call.omitted == 32 + 1 - CALL_ARGS_LIMIT - len(call.kwargs)
    assert backend.calls([]) == []


@pytest.mark.parametrize("way", WAYS)
def test_children_are_indexed_under_their_parent(backend_factory: Callable[..., ResultBackend],
                                                 unique: str, way: str) -> None:
    backend: Any = backend_factory()
    parent = f"p-{unique}"
    first = [Envelope(id=f"c{i}-{unique}", task="pkg.step", parent_id=parent, root_id=parent)
             for i in range(3)]
    save(backend, first, way)
    save(backend, [first[1]], way)  # started again (a retry): listed once
    assert backend.children(parent) == [e.id for e in first]
    assert backend.children(f"none-{unique}") == []
    (call,) = backend.calls([first[0].id])
    assert call.parent_id == parent and call.root_id == parent
    more = [Envelope(id=f"m{i:03d}-{unique}", task="pkg.step", parent_id=parent)
            for i in range(CHILDREN_LIMIT)]
    save(backend, more, way)
    kept = backend.children(parent)
    assert len(kept) == CHILDREN_LIMIT and kept[-1] == more[-1].id and first[0].id not in kept
    assert backend.children(parent, limit=2) == kept[-2:]
