"""Settings: defaults, ``YADTQ_*`` environment reading, broker/backend URL shortcuts."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, cast
from urllib.parse import urlsplit, urlunsplit

from .exceptions import ConfigurationError
from .namespace import DEFAULT_NAMESPACE, check_namespace

ENV_PREFIX = "YADTQ_"
#: The embedded default used when no broker or backend is configured.
DEFAULT_URL = "sqlite:///yadtq.db"


@dataclass
class Settings:
    """Every app setting; each also reads from ``YADTQ_<NAME>`` in the environment."""

    broker_url: str = ""
    backend_url: str = ""
    default_queue: str = "default"
    #: Prefix of every topic, consumer group, Redis key and SQLite table the app uses
    #: (``namespace.py``): apps with different namespaces share servers without meeting.
    namespace: str = DEFAULT_NAMESPACE
    #: Seconds a stored result (and a dedupe key) lives.
    result_expires: float = 86400.0
    #: Largest encoded result a task may return; a larger one fails the task (0: no limit).
    result_max_bytes: int = 16 * 1024 * 1024
    #: Partitions of the topics yadtq creates (Kafka).
    partitions: int = 8
    replication_factor: int = 1
    #: Pass-through client settings (e.g. librdkafka's for Kafka).
    broker_options: dict[str, Any] = field(default_factory=dict)
    backend_options: dict[str, Any] = field(default_factory=dict)
    #: HMAC key; when set, unsigned or forged messages are rejected.
    secret_key: Optional[str] = None
    heartbeat_interval: float = 5.0
    #: A worker silent this long is ``unresponsive``.
    worker_unresponsive_after: float = 15.0
    #: Seconds after its last heartbeat (offline or silent) a worker is pruned from the registry.
    worker_retention: float = 86400.0
    #: Seconds a SQLite delivery stays invisible before another worker may take it.
    visibility_timeout: float = 300.0
    #: Seconds a stopping worker waits for in-flight tasks.
    shutdown_timeout: float = 30.0
    #: How many failures the worker failure history keeps.
    failure_history: int = 100
    #: Task defaults.
    max_retries: int = 3
    retry_delay: float = 1.0
    retry_backoff_max: float = 600.0
    #: Run tasks in the caller on ``.delay()`` (with an in-memory backend), for tests.
    eager: bool = False
    #: Task name or glob (``fnmatch``) -> queue, for tasks sent without a queue.
    task_routes: dict[str, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
#: Every setting's name.
FIELDS = frozenset(_FIELDS)


def _default_of(fld: dataclasses.Field[Any]) -> Any:
    if fld.default_factory is not dataclasses.MISSING:
        return fld.default_factory()
    return fld.default


def _convert(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, dict):
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
    except ValueError as exc:
        raise ConfigurationError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from None
    return raw


def coerce(name: str, value: Any) -> Any:
    """``value`` for setting ``name`` from a configuration object: text is converted as
    the environment's is; other values must have the setting's type.

    Raises:
        ConfigurationError: a value of the wrong type.
    """
    default = _default_of(_FIELDS[name])
    if isinstance(value, str) and default is not None and not isinstance(default, str):
        return _convert(name, value, default)
    if value is None or default is None:
        return value
    expected: tuple[type, ...] = (int, float) if isinstance(default, float) else (type(default),)
    if isinstance(default, dict):
        expected = (Mapping,)
    if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(default, bool)):
        raise ConfigurationError(f"setting {name} must be a {type(default).__name__}, got {value!r}")
    return dict(cast("Mapping[str, Any]", value)) if isinstance(default, dict) else value


def load_settings(
    *,
    broker: Optional[str] = None,
    backend: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from defaults, the environment, then explicit arguments.

    Accepts the seed-style shortcuts ``broker_ip``/``broker_port`` (Kafka) and
    ``backend_ip``/``backend_port`` (Redis).

    Raises:
        ConfigurationError: an unknown setting or a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, fld in _FIELDS.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            default = _default_of(fld)
            values[name] = _convert(name, raw, default)

    broker_ip = overrides.pop("broker_ip", None)
    broker_port = overrides.pop("broker_port", 9092)
    backend_ip = overrides.pop("backend_ip", None)
    backend_port = overrides.pop("backend_port", 6379)
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
    values.update({k: v for k, v in overrides.items() if v is not None})

    if broker_ip:
        values["broker_url"] = f"kafka://{broker_ip}:{broker_port}"
    if backend_ip:
        values["backend_url"] = f"redis://{backend_ip}:{backend_port}/0"
    if broker:
        values["broker_url"] = broker
    if backend:
        values["backend_url"] = backend
    values.setdefault("broker_url", DEFAULT_URL)
    values.setdefault("backend_url", DEFAULT_URL)
    settings = Settings(**values)
    _validate(settings)
    return settings


def explicit_settings(broker: Optional[str], backend: Optional[str],
                      arguments: Mapping[str, Any]) -> frozenset[str]:
    """The settings that arguments to ``YADTQ(...)`` set (shortcuts included)."""
    names = {name for name, value in arguments.items() if value is not None and name in _FIELDS}
    if broker or arguments.get("broker_ip"):
        names.add("broker_url")
    if backend or arguments.get("backend_ip"):
        names.add("backend_url")
    return frozenset(names)


def eager_in_memory(settings: Settings) -> Settings:
    """``settings``, with an eager app's transports in memory whatever URLs were given."""
    if settings.eager:
        return settings.replace(broker_url="memory://", backend_url="memory://")
    return settings


def validate(settings: Settings) -> None:
    """Check a whole :class:`Settings`.

    Raises:
        ConfigurationError: a bad value.
    """
    _validate(settings)


def _validate(settings: Settings) -> None:
    for name in ("broker_url", "backend_url"):
        url = getattr(settings, name)
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(f"{name} must be a URL like 'scheme://...', got {url!r}")
    check_namespace(settings.namespace)
    if settings.partitions < 1:
        raise ConfigurationError("partitions must be at least 1")
    if settings.max_retries < 0:
        raise ConfigurationError("max_retries must not be negative")
    if settings.heartbeat_interval <= 0:
        raise ConfigurationError("heartbeat_interval must be positive")
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in settings.task_routes.items()):
        raise ConfigurationError("task_routes must map task names or globs to queue names")
    if settings.result_max_bytes < 0:
        raise ConfigurationError("result_max_bytes must not be negative (0: no limit)")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for banners and logs)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
