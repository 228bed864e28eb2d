"""A worker app whose backend fails once in a way no transport error covers: the first
``record`` of a ``victim`` success raises sqlite's "database is locked" while the file
``<YADTQ_TEST_SIDE_EFFECTS>/record-fault`` exists (the fault removes it)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from yadtq import YADTQ
from yadtq.transports.base import ScheduledMessage, StateChange

app = YADTQ("fault")


@app.task
def victim(n: int) -> int:
    path = Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / f"victim-{n}"
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return n


@app.task
def add(x: int, y: int) -> int:
    return x + y


def _take_fault() -> bool:
    try:
        os.remove(Path(os.environ["YADTQ_TEST_SIDE_EFFECTS"]) / "record-fault")
    except FileNotFoundError:
        return False
    return True


_backend = app.backend
_record = _backend.record


def _faulty_record(changes: Sequence[StateChange], scheduled: Sequence[ScheduledMessage] = ()) -> None:
    if any(c.state == "success" and c.name == victim.name for c in changes) and _take_fault():
        raise sqlite3.OperationalError("database is locked")
    _record(changes, scheduled)


_backend.record = _faulty_record  # type: ignore[method-assign]
