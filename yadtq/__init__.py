"""yadtq: a Celery-style distributed task queue on Apache Kafka and Redis."""

from __future__ import annotations

from . import states
from .app import YADTQ
from .canvas import GroupResult, Signature, chain, chord, group
from .exceptions import (
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
from .result import AsyncResult
from .task import Task

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
