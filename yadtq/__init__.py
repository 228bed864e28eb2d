"""yadtq: a Celery-style distributed task queue on Apache Kafka and Redis."""

from __future__ import annotations

from ._interrupt import quiet_interrupts_at_start

quiet_interrupts_at_start()  # first: the yadtq command's imports below can take a moment

from . import states  # noqa: E402
from .app import YADTQ  # noqa: E402
from .canvas import GroupResult, Signature, chain, chord, group  # noqa: E402
from .exceptions import (  # noqa: E402
    BackendUnavailable,
    BrokerUnavailable,
    ChordError,
    ConfigurationError,
    NotRegistered,
    Retry,
    Revoked,
    SerializationError,
    SoftTimeLimitExceeded,
    TaskError,
    TimeoutError,
    YADTQError,
)
from .result import AsyncResult  # noqa: E402
from .task import Task  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "YADTQ",
    "AsyncResult",
    "BackendUnavailable",
    "BrokerUnavailable",
    "ChordError",
    "ConfigurationError",
    "GroupResult",
    "NotRegistered",
    "Retry",
    "Revoked",
    "SerializationError",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskError",
    "TimeoutError",
    "YADTQError",
    "__version__",
    "chain",
    "chord",
    "group",
    "states",
]
