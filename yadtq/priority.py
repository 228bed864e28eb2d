"""Task priorities (DESIGN.md section 12): levels 0..9, higher first, default 0.

A task's priority travels twice: in the envelope's ``options["priority"]`` (what the
worker reads) and in the message header ``yadtq-priority`` (what a broker routes by
without decoding the body). Both are left out for the default level, so default
traffic is byte for byte what it was before priorities existed.

SQLite and memory order each queue by the exact level. Kafka maps the levels onto a
few *lanes* per queue (:data:`LANES`), each a topic of its own, consumed high lane
first (``kafka_consumer.py``); within one lane, tasks keep their arrival order.
See docs/flow-control.md, section "Priorities".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from .exceptions import ConfigurationError

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 0
#: The message header carrying a non-default priority (ASCII digits).
HEADER_PRIORITY = "yadtq-priority"
#: Kafka lanes of a queue, lowest first: (lowest level, highest level) of each. Lane 0 is
#: the queue's own topic, so a queue whose tasks all have the default level has no other.
LANES: tuple[tuple[int, int], ...] = ((0, 3), (4, 6), (7, 9))

_HEADER_VALUES = {str(level).encode(): level for level in range(MIN_PRIORITY, MAX_PRIORITY + 1)}


def check_priority(value: Any, owner: str) -> int:
    """``value`` as a priority level.

    Raises:
        ConfigurationError: not an integer from 0 to 9 (``owner`` names where it was given).
    """
    if isinstance(value, bool) or not isinstance(value, int) or not (
            MIN_PRIORITY <= value <= MAX_PRIORITY):
        raise ConfigurationError(f"{owner}: priority must be an integer from {MIN_PRIORITY} to "
                                 f"{MAX_PRIORITY} (higher runs first), not {value!r:.40}")
    return value


def valid_priority(value: Any) -> bool:
    """Whether a decoded envelope's ``options["priority"]`` is acceptable (absent or 0..9)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool)
                             and MIN_PRIORITY <= value <= MAX_PRIORITY)


def priority_of(headers: Mapping[str, bytes]) -> int:
    """The priority a message's headers carry (the default when absent or malformed)."""
    raw = headers.get(HEADER_PRIORITY)
    if raw is None:
        return DEFAULT_PRIORITY
    return _HEADER_VALUES.get(bytes(raw), DEFAULT_PRIORITY)


def header_value(priority: Optional[int]) -> Optional[bytes]:
    """The ``yadtq-priority`` header value for ``priority`` (``None``: the default, no header)."""
    if not priority:
        return None
    return str(priority).encode()


def lane_of(priority: int) -> int:
    """The Kafka lane (index into :data:`LANES`) carrying ``priority``."""
    for index in range(len(LANES) - 1, 0, -1):
        if priority >= LANES[index][0]:
            return index
    return 0


def lane_label(lane: int) -> str:
    """How the monitor names a lane: ``"0-3"``."""
    low, high = LANES[lane]
    return f"{low}-{high}"
