"""Task details kept for people (the dashboard's task page): what a backend implements.

A worker saves, for each attempt it starts, the task's call (a bounded text form of
its arguments) and its place in a canvas (parent and root ids); a task with a parent
is also added to its parent's children index. Both expire with the results
(``result_expires``) and are bounded (:data:`CALL_TEXT_LIMIT`, :data:`CHILDREN_LIMIT`),
so they cost the same however long the cluster runs. ``memory.py`` is the reference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Optional

from ..envelope import pack, unpack
from ..exceptions import ProtocolError

if TYPE_CHECKING:
    from ..envelope import Envelope

#: Longest text kept for one argument (its ``repr``, cut).
CALL_TEXT_LIMIT = 200
#: Most positional and keyword arguments kept for one call (the rest are counted).
CALL_ARGS_LIMIT = 20
#: Children kept per parent: the newest.
CHILDREN_LIMIT = 100


@dataclass(frozen=True)
class TaskCall:
    """How a task was called, as people read it: bounded ``repr`` texts, never values."""

    task_id: str
    name: str
    args: tuple[str, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()
    #: Arguments left out beyond :data:`CALL_ARGS_LIMIT`.
    omitted: int = 0
    parent_id: Optional[str] = None
    root_id: Optional[str] = None

    def encode(self) -> bytes:
        return _encode(self.task_id, self.name, list(self.args), [list(kv) for kv in self.kwargs],
                       self.omitted, self.parent_id, self.root_id)

    @classmethod
    def decode(cls, blob: bytes) -> Optional[TaskCall]:
        """The call stored as ``blob`` (``None`` if unreadable)."""
        try:
            task_id, name, args, kwargs, omitted, parent_id, root_id = unpack(blob)
            return cls(str(task_id), str(name), tuple(str(a) for a in args),
                       tuple((str(k), str(v)) for k, v in kwargs), int(omitted), parent_id, root_id)
        except (ProtocolError, TypeError, ValueError):
            return None


def _text(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a user type whose __repr__ fails
        text = f"<unprintable {type(value).__name__}: {exc}>"
    return text if len(text) <= CALL_TEXT_LIMIT else text[:CALL_TEXT_LIMIT - 3] + "..."


def _encode(task_id: str, name: str, args: list[str], kwargs: list[list[str]], omitted: int,
            parent_id: Optional[str], root_id: Optional[str]) -> bytes:
    """The stored form of a call (:meth:`TaskCall.decode` reads it)."""
    return pack([task_id, name, args, kwargs, omitted, parent_id, root_id])


def _bounded(envelope: Envelope) -> tuple[list[str], list[list[str]], int]:
    """An envelope's argument texts, keyword pairs and how many were left out."""
    args, kwargs = envelope.args, envelope.kwargs
    texts = [_text(a) for a in args[:CALL_ARGS_LIMIT]]
    pairs = [[k, _text(v)] for k, v in islice(kwargs.items(), CALL_ARGS_LIMIT)] if kwargs else []
    return texts, pairs, len(args) - len(texts) + len(kwargs) - len(pairs)


def call_of(envelope: Envelope) -> TaskCall:
    """The bounded call of an envelope."""
    texts, pairs, omitted = _bounded(envelope)
    return TaskCall(envelope.id, envelope.task, tuple(texts), tuple((k, v) for k, v in pairs),
                    omitted, envelope.parent_id, envelope.root_id)


def encoded_call_of(envelope: Envelope) -> bytes:
    """``call_of(envelope).encode()``, without building the :class:`TaskCall` (a worker
    saves one per attempt it starts)."""
    texts, pairs, omitted = _bounded(envelope)
    return _encode(envelope.id, envelope.task, texts, pairs, omitted, envelope.parent_id,
                   envelope.root_id)


class DetailsBackend(ABC):
    """The storage steps of task details (a backend may leave them out: the dashboard
    then shows arguments only for failed tasks and no children)."""

    @abstractmethod
    def save_calls(self, calls: Sequence[TaskCall]) -> None:
        """Store each call (replacing an earlier one of the task) and add each task with a
        parent to the parent's children (once, at its first start; the newest
        :data:`CHILDREN_LIMIT` kept), all expiring after ``result_expires``."""

    def save_started(self, envelopes: Sequence[Envelope]) -> None:
        """:meth:`save_calls` for the attempts a worker started (every start calls it): a
        backend that stores calls encoded may encode them straight from the envelopes."""
        self.save_calls([call_of(e) for e in envelopes])

    @abstractmethod
    def calls(self, task_ids: Sequence[str]) -> list[Optional[TaskCall]]:
        """The stored call of each task (``None``: none, or expired)."""

    @abstractmethod
    def children(self, parent_id: str, limit: int = CHILDREN_LIMIT) -> list[str]:
        """Ids of the tasks started with ``parent_id`` as their parent (the newest
        ``limit``), by when each first started, then by id."""


#: A call as stored encoded: ``(task id, parent id, encoded call)``.
EncodedCall = tuple[str, Optional[str], bytes]


class EncodedDetails(DetailsBackend):
    """Task details of a backend that stores each call encoded (Redis, SQLite): both
    saves come down to :meth:`_save_encoded`, the started ones encoded straight from
    their envelopes (no :class:`TaskCall` built per started task)."""

    def save_calls(self, calls: Sequence[TaskCall]) -> None:
        self._save_encoded([(c.task_id, c.parent_id, c.encode()) for c in calls])

    def save_started(self, envelopes: Sequence[Envelope]) -> None:
        self._save_encoded([(e.id, e.parent_id, encoded_call_of(e)) for e in envelopes])

    @abstractmethod
    def _save_encoded(self, calls: Sequence[EncodedCall]) -> None:
        """Store the encoded calls in one backend step, as :meth:`save_calls` says."""
