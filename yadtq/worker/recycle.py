"""When to replace a process-pool child: after N tasks, or once its memory grew too large.

``yadtq worker --pool processes --max-tasks-per-child N --max-memory-per-child MB``.
The pool asks after each task a child finished, before the child may take another:
a child is never replaced in the middle of a task, and the task it just ran has its
outcome already, so nothing is lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ..exceptions import ConfigurationError

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_mb(pid: int) -> Optional[float]:
    """Resident memory of process ``pid`` in megabytes (``None`` where ``/proc`` is missing)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Recycling:
    """The limits after which a child is replaced (``None``: no limit)."""

    max_tasks: Optional[int] = None
    #: Megabytes of resident memory.
    max_memory: Optional[float] = None

    def __post_init__(self) -> None:
        if self.max_tasks is not None and self.max_tasks < 1:
            raise ConfigurationError("max_tasks_per_child must be at least 1")
        if self.max_memory is not None and self.max_memory <= 0:
            raise ConfigurationError("max_memory_per_child must be positive")

    @property
    def active(self) -> bool:
        return self.max_tasks is not None or self.max_memory is not None

    def reason(self, pid: int, tasks: int) -> Optional[str]:
        """Why the child ``pid``, having run ``tasks`` tasks, must be replaced (``None``: it may go on)."""
        if self.max_tasks is not None and tasks >= self.max_tasks:
            return f"it ran {tasks} tasks (--max-tasks-per-child {self.max_tasks})"
        if self.max_memory is not None:
            used = resident_mb(pid)
            if used is not None and used > self.max_memory:
                return f"it uses {used:.0f} MB (--max-memory-per-child {self.max_memory:g})"
        return None
