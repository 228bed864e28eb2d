"""Free ports for servers a test starts: ``scripts/free_ports.py``'s, below the
kernel's ephemeral range, so no client's outgoing connection takes one in the
moment between the choice and the server's bind."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "free_ports.py"


@functools.cache
def _script() -> Any:
    """``scripts/free_ports.py``, loaded once."""
    spec = importlib.util.spec_from_file_location("free_ports", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now, below the ephemeral range."""
    ports: list[int] = _script().free_ports(count)
    return ports


def free_port() -> int:
    """One free port, below the ephemeral range."""
    return free_ports(1)[0]
