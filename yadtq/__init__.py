"""yadtq: a Celery-style distributed task queue on Apache Kafka and Redis."""

from __future__ import annotations

from . import states
from .app import YADTQ
from .exceptions import (
    BackendUnavailable,
    BrokerUnavailable,
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
from .task import Signature, Task

__version__ = "0.1.0"

__all__ = [
    "YADTQ",
    "AsyncResult",
    "BackendUnavailable",
    "BrokerUnavailable",
    "ConfigurationError",
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
    "states",
]
