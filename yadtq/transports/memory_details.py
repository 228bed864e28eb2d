"""The in-memory backend's task details (``details_store.py``): the reference."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .details_store import CHILDREN_LIMIT, DetailsBackend, TaskCall

if TYPE_CHECKING:
    from ..settings import Settings


class MemoryDetails(DetailsBackend):
    """Mixed into :class:`~yadtq.transports.memory.MemoryBackend`."""

    settings: Settings

    def _details_state(self) -> tuple[threading.Lock, dict[str, tuple[TaskCall, float]],
                                      dict[str, tuple[dict[str, float], float]]]:
        state = self.__dict__.get("_details")
        if state is None:
            state = self.__dict__.setdefault("_details", (threading.Lock(), {}, {}))
        return state  # type: ignore[no-any-return]

    def save_calls(self, calls: Sequence[TaskCall]) -> None:
        lock, stored, children = self._details_state()
        now = time.time()
        expires = now + self.settings.result_expires
        with lock:
            for gone in [k for k, (_, at) in stored.items() if at < now]:
                del stored[gone]
            for gone in [k for k, (_, at) in children.items() if at < now]:
                del children[gone]
            for call in calls:
                stored[call.task_id] = (call, expires)
                if call.parent_id is not None:
                    ids, _ = children.get(call.parent_id, ({}, 0.0))
                    ids.setdefault(call.task_id, now)  # a retry started again keeps its place
                    if len(ids) > CHILDREN_LIMIT:
                        for oldest in _ordered(ids)[:len(ids) - CHILDREN_LIMIT]:
                            del ids[oldest]
                    children[call.parent_id] = (ids, expires)

    def calls(self, task_ids: Sequence[str]) -> list[Optional[TaskCall]]:
        lock, stored, _ = self._details_state()
        now = time.time()
        with lock:
            found = [stored.get(t) for t in task_ids]
        return [entry[0] if entry is not None and entry[1] >= now else None for entry in found]

    def children(self, parent_id: str, limit: int = CHILDREN_LIMIT) -> list[str]:
        lock, _, children = self._details_state()
        with lock:
            entry = children.get(parent_id)
            if entry is None or entry[1] < time.time():
                return []
            ids = _ordered(entry[0])
        return ids[-limit:] if limit > 0 else []


def _ordered(started: dict[str, float]) -> list[str]:
    """Child ids by first start, then id: the order every backend lists them in."""
    return sorted(started, key=lambda task_id: (started[task_id], task_id))
