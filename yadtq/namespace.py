"""The app's namespace: every name two apps could otherwise share is derived here.

Several apps can share one Kafka cluster, one Redis and one SQLite file when their
``namespace`` settings differ (default ``"yadtq"``). Each transport takes its names
from the :class:`Naming` of its settings, never from module constants, so nothing
can keep the default namespace's names by accident:

- Kafka: topic and consumer group ``<namespace>.<queue>``, dead letters in
  ``<namespace>.dlq``;
- Redis: every key and channel starts with ``<namespace>:`` (``backend_options``
  ``prefix`` still wins when given);
- SQLite: the default namespace's tables are ``yadtq_<table>`` (the names every
  existing database file has); another namespace's are ``"<namespace>:<table>"``,
  a name no other namespace can produce, since ``:`` is not allowed in one;
- memory: each app's transports are its own objects, shared with nobody.

A namespace that is another one followed by ``.`` (``shop`` and ``shop.eu``) can
still meet it on Kafka (queue ``eu.x`` of ``shop`` is topic ``shop.eu.x``, like
queue ``x`` of ``shop.eu``): pick namespaces that do not nest that way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .settings import Settings

#: The namespace of an app that sets none.
DEFAULT_NAMESPACE = "yadtq"
#: Longest namespace accepted (Kafka topic names end at 249 characters).
MAX_NAMESPACE_LENGTH = 64
_VALID = re.compile(r"^[A-Za-z0-9._-]+$")
#: The queue name that is the dead-letter topic's own.
DLQ_NAME = "dlq"
#: Table names of the default namespace start with this (``sqlite/schema.py``).
SQLITE_DEFAULT_PREFIX = "yadtq_"


def check_namespace(value: object) -> str:
    """``value`` if it is a valid namespace: letters, digits, ``.``, ``_``, ``-``.

    Raises:
        ConfigurationError: anything else (one line naming the rule).
    """
    if (not isinstance(value, str) or not _VALID.match(value) or value in (".", "..")
            or len(value) > MAX_NAMESPACE_LENGTH):
        raise ConfigurationError(
            f"invalid namespace {value!r}: use 1-{MAX_NAMESPACE_LENGTH} letters, digits, '.', '_' or '-'")
    return value


@dataclass(frozen=True)
class Naming:
    """The names of one namespace's topics, groups, keys and tables."""

    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    @classmethod
    def of(cls, settings: Settings) -> Naming:
        """The naming of an app's settings."""
        return cls(settings.namespace)

    @property
    def is_default(self) -> bool:
        """Whether this is the default namespace (``yadtq``)."""
        return self.namespace == DEFAULT_NAMESPACE

    # -- Kafka
    def topic(self, queue: str) -> str:
        """The Kafka topic carrying ``queue``: ``<namespace>.<queue>``."""
        return f"{self.namespace}.{queue}"

    def group(self, queue: str) -> str:
        """The Kafka consumer group serving ``queue``: ``<namespace>.<queue>``."""
        return f"{self.namespace}.{queue}"

    @property
    def dlq_topic(self) -> str:
        """The Kafka dead-letter topic: ``<namespace>.dlq``."""
        return self.topic(DLQ_NAME)

    def queue_of(self, topic: str) -> Optional[str]:
        """The queue a topic of this namespace carries (``None``: not one of its queue topics)."""
        start = self.namespace + "."
        if not topic.startswith(start) or topic == self.dlq_topic or len(topic) == len(start):
            return None
        return topic[len(start):]

    # -- Redis
    @property
    def redis_prefix(self) -> str:
        """What every Redis key starts with, before its ``:``."""
        return self.namespace

    # -- SQLite
    def table(self, name: str) -> str:
        """The SQL name of table (or index) ``name`` (as spelled without ``yadtq_``)."""
        if self.is_default:
            return SQLITE_DEFAULT_PREFIX + name
        return f'"{self.namespace}:{name}"'

    def sqlite_rename(self, sql: str) -> str:
        """``sql`` written with the default namespace's table names, for this namespace."""
        if self.is_default:
            return sql
        return _rename(self.namespace, sql)


_TABLE = re.compile(r"\byadtq_(\w+)")


@lru_cache(maxsize=4096)
def _rename(namespace: str, sql: str) -> str:
    return _TABLE.sub(lambda m: f'"{namespace}:{m.group(1)}"', sql)
