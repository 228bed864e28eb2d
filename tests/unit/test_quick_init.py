"""quick_init: the quicker __init__ builds the same frozen records as dataclasses' own."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Optional

import pytest

from yadtq.quick_init import quick_init
from yadtq.transports.base import Claim, Delivery, ErrorInfo, StateChange, TaskRecord
from yadtq.worker.executor import Outcome


@dataclasses.dataclass(frozen=True)
class Reference:
    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    note: Optional[str] = None


@quick_init
@dataclasses.dataclass(frozen=True)
class Quick:
    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    note: Optional[str] = None


def fields_of(record: object) -> dict[str, object]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]


@pytest.mark.parametrize("args, kwargs", [
    (("a",), {}),
    (("a", 3), {}),
    (("a",), {"note": "n", "count": 2}),
    ((), {"name": "a", "tags": ["x"]}),
])
def test_the_same_fields_as_the_generated_init(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    assert fields_of(Quick(*args, **kwargs)) == fields_of(Reference(*args, **kwargs))  # type: ignore[arg-type]


def test_the_same_signature_and_errors() -> None:
    assert str(inspect.signature(Quick)) == str(inspect.signature(Reference))
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a", 1, [], None, "one too many")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a", nme="typo")  # type: ignore[call-arg]


def test_a_default_factory_runs_for_each_instance() -> None:
    first, second = Quick("a"), Quick("b")
    assert first.tags == [] and first.tags is not second.tags
    given = ["x"]
    assert Quick("a", tags=given).tags is given


def test_still_frozen_equal_replaceable_and_picklable() -> None:
    record = Quick("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.count = 2  # type: ignore[misc]
    assert record == Quick("a", 1) and record != Quick("a", 2)
    assert dataclasses.replace(record, count=5) == Quick("a", 5)
    assert pickle.loads(pickle.dumps(record)) == record
    assert repr(record) == "Quick(name='a', count=1, tags=[], note=None)"


def test_refused_where_the_generated_init_does_more() -> None:
    with pytest.raises(TypeError, match="not a frozen dataclass"):
        quick_init(dataclasses.dataclass(type("Plain", (), {"__annotations__": {"x": "int"}})))

    class Later:
        x: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="needs the __init__"):
        quick_init(dataclasses.dataclass(frozen=True)(Later))


def test_the_records_made_per_task_use_it() -> None:
    """Each keeps its fields, defaults and factories (the contract's records; a client
    reads a ``TaskRecord`` for each result)."""
    delivery = Delivery(b"body", "q")
    assert (delivery.headers, delivery.key, delivery.token) == ({}, None, None)
    assert delivery.headers is not Delivery(b"body", "q").headers
    claim = Claim("id", "t", "q", 0, "inst", "w", 1.5)
    assert claim.created == 0.0 and claim == Claim("id", "t", "q", 0, "inst", "w", 1.5, 0.0)
    assert hash(claim) == hash(Claim("id", "t", "q", 0, "inst", "w", 1.5))
    change = StateChange("id", "failure", 2.0, error=ErrorInfo("E", "m"))
    assert (change.worker, change.retries, change.dead_lettered, change.undelivered) == (
        None, None, False, False)
    outcome = Outcome("id", "success", 1.0, 3.0, result=b"r")
    assert outcome.runtime == 2.0 and outcome.error is None and outcome.retry_eta is None
    record = TaskRecord("id", "success", result=b"r", history=(("success", 4.0, "w"),))
    assert (record.name, record.retries, record.error, record.updated) == (None, 0, None, 4.0)
    assert record == TaskRecord("id", "success", None, None, b"r", None, 0, None, None, None,
                                (("success", 4.0, "w"),))
    for cls in (Delivery, Claim, StateChange, Outcome, TaskRecord):
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
