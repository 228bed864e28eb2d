"""Every exception yadtq raises, under one root: :class:`YADTQError`."""

from __future__ import annotations

import builtins
from typing import Any, Optional


class YADTQError(Exception):
    """Root of every yadtq exception."""


class ConfigurationError(YADTQError):
    """A setting, URL or command-line option is invalid."""


class SerializationError(YADTQError):
    """A value cannot be carried by the wire format (raised at ``.delay()``)."""


class ProtocolError(YADTQError):
    """A message is malformed, of an unknown version, or fails its signature check."""


class NotRegistered(YADTQError):
    """The task name is not registered with the app."""


class TaskError(YADTQError):
    """A task failed with an exception type that cannot be rebuilt locally.

    Carries the remote type name, message and traceback.
    """

    def __init__(self, type_name: str, message: str, traceback: Optional[str] = None) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = traceback


class TimeoutError(YADTQError, builtins.TimeoutError):
    """Waiting for a result took longer than the timeout."""


class TimeLimitExceeded(YADTQError):
    """A task ran longer than its ``time_limit`` and was killed."""


class WorkerLostError(YADTQError):
    """The process running a task died under it (killed by a signal or the OOM killer);
    the attempt is retried within ``max_retries``."""


class SoftTimeLimitExceeded(YADTQError):
    """Raised inside a task that ran longer than its ``soft_time_limit``: it may catch it
    and clean up. Not retried automatically."""


class Retry(YADTQError):
    """Raised by ``self.retry()`` inside a bound task to schedule another attempt."""

    def __init__(
        self,
        exc: Optional[BaseException] = None,
        countdown: Optional[float] = None,
        max_retries: Optional[int] = None,
    ) -> None:
        super().__init__(f"retry requested: {exc!r}" if exc else "retry requested")
        self.exc = exc
        self.countdown = countdown
        self.max_retries = max_retries


class Revoked(YADTQError):
    """The task was revoked or expired before it ran."""


class ChordError(YADTQError):
    """A chord's callback did not run: one of its members failed (the message names it)."""


class GroupNotFound(YADTQError, LookupError):
    """No group is stored under this id (never stored, or expired with its results)."""


class BrokerUnavailable(YADTQError):
    """The broker cannot be reached or refused an operation."""


class DeadLetterRefused(BrokerUnavailable):
    """The broker refused a dead letter for good (not for its size and not for an outage:
    say an authorization or a topic policy): sending it again as it is cannot succeed."""


class BackendUnavailable(YADTQError):
    """The result backend cannot be reached or refused an operation."""


def rebuild_exception(
    type_name: str, message: str, args: Any, traceback: Optional[str]
) -> BaseException:
    """Rebuild a remote exception: builtin types as themselves, others as :class:`TaskError`."""
    module, _, qualname = type_name.rpartition(".")
    if module in ("builtins", ""):
        cls = getattr(builtins, qualname, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                exc = cls(*args) if isinstance(args, (list, tuple)) else cls(message)
            except Exception:
                exc = cls(message)
            if traceback:
                exc.remote_traceback = traceback  # type: ignore[attr-defined]
            return exc
    if module == __name__ and qualname in _OWN:
        return _OWN[qualname](message)
    return TaskError(type_name, message, traceback)


_OWN: dict[str, type[YADTQError]] = {
    "NotRegistered": NotRegistered,
    "SerializationError": SerializationError,
    "ProtocolError": ProtocolError,
    "TimeLimitExceeded": TimeLimitExceeded,
    "SoftTimeLimitExceeded": SoftTimeLimitExceeded,
    "WorkerLostError": WorkerLostError,
    "Revoked": Revoked,
    "ChordError": ChordError,
    "BrokerUnavailable": BrokerUnavailable,
    "BackendUnavailable": BackendUnavailable,
}
