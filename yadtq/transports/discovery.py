"""Finding a transport by its URL's scheme in the ``yadtq.brokers`` and ``yadtq.backends``
entry points, so a third-party package can add one (``base.create_broker`` and
``base.create_backend`` build them)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 10):  # the standard library's selects by group, and redis-py loads it
    from importlib.metadata import entry_points
else:
    from importlib_metadata import entry_points

from ..exceptions import ConfigurationError

BROKER_GROUP = "yadtq.brokers"
BACKEND_GROUP = "yadtq.backends"


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ConfigurationError(f"not a transport URL: {url!r}")
    return scheme


def load_transport(group: str, url: str) -> type[Any]:
    """The transport class registered for ``url``'s scheme in entry point ``group``."""
    scheme = _scheme(url)
    found = [ep for ep in entry_points(group=group) if ep.name == scheme]
    if not found:
        known = sorted({ep.name for ep in entry_points(group=group)})
        role = "broker" if group == BROKER_GROUP else "backend"
        raise ConfigurationError(
            f"no {role} transport for {scheme}:// (known: {', '.join(known) or 'none'})"
        )
    try:
        cls = found[0].load()
    except ImportError as exc:
        raise ConfigurationError(f"cannot load the {scheme}:// transport: {exc}") from exc
    return cls  # type: ignore[no-any-return]
