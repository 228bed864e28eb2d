"""The in-memory backend's periodic schedules (``PeriodicStore``; ``periodic_store.py``):
a dict of entries under the backend's condition."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Optional

from .periodic_store import PeriodicEntry, PeriodicStore
from .types import ScheduledMessage


class MemoryPeriodic(PeriodicStore):
    """Mixed into :class:`~yadtq.transports.memory.MemoryBackend`; uses its condition and
    schedule."""

    _cond: threading.Condition
    _schedule: dict[tuple[str, float], tuple[ScheduledMessage, float]]

    def _periodic(self) -> dict[str, PeriodicEntry]:
        """name -> stored schedule (call with the condition held)."""
        table: Optional[dict[str, PeriodicEntry]] = getattr(self, "_periodic_table", None)
        if table is None:
            table = {}
            self._periodic_table = table
        return table

    def save_periodic(self, name: str, spec: bytes, next_run: float) -> bool:
        with self._cond:
            table = self._periodic()
            entry = table.get(name)
            if entry is not None and entry.spec == spec:
                return False
            table[name] = (PeriodicEntry(name, spec, next_run) if entry is None
                           else replace(entry, spec=spec, next_run=next_run))
            return True

    def periodic_entries(self) -> list[PeriodicEntry]:
        with self._cond:
            return sorted(self._periodic().values(), key=lambda e: e.name)

    def due_periodic(self, now: Optional[float] = None) -> list[PeriodicEntry]:
        now = time.time() if now is None else now
        with self._cond:
            return sorted((e for e in self._periodic().values() if not e.paused and e.next_run <= now),
                          key=lambda e: e.next_run)

    def advance_periodic(self, name: str, expected: float, next_run: float,
                         tick: Optional[ScheduledMessage]) -> bool:
        now = time.time()
        with self._cond:
            table = self._periodic()
            entry = table.get(name)
            if entry is None or entry.paused or entry.next_run != expected or expected > now:
                return False
            entry = replace(entry, next_run=next_run)
            if tick is not None:
                self._schedule[(tick.task_id, tick.due)] = (tick, 0.0)
                entry = replace(entry, last_run=tick.due, last_task_id=tick.task_id)
            table[name] = entry
            return True

    def pause_periodic(self, name: str, paused: bool, next_run: Optional[float] = None) -> bool:
        with self._cond:
            table = self._periodic()
            entry = table.get(name)
            if entry is None:
                return False
            table[name] = replace(entry, paused=paused,
                                  next_run=entry.next_run if next_run is None else next_run)
            return True

    def remove_periodic(self, name: str) -> bool:
        with self._cond:
            return self._periodic().pop(name, None) is not None
