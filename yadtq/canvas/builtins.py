"""Tasks every app has for its canvas: ``yadtq.chunk`` runs one chunk of ``task.chunks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..task import Task, TaskOptions
from .signature import CHUNK_TASK

if TYPE_CHECKING:
    from ..app import YADTQ


def register_builtins(app: YADTQ) -> None:
    """Register the canvas's own tasks (not under a short name, so they shadow nothing)."""

    def chunk(task_name: str, items: list[Any]) -> list[Any]:
        """Call ``task_name`` with each item's arguments, in this one task; their results."""
        task = app.resolve(task_name)
        return [task.run(*item) for item in items]

    task: Task[Any, list[Any]] = Task(app, chunk, TaskOptions(name=CHUNK_TASK, max_retries=0))
    task.__name__ = CHUNK_TASK  # its short name is its full name: it takes no user task's short name
    app.tasks[CHUNK_TASK] = task
