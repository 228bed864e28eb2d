"""Free ports for servers a test starts: ``scripts/free_ports.py``'s, below the
kernel's ephemeral range, so no client's outgoing connection takes one in the
moment between the choice and the server's bind."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "free_ports.py"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now, below the ephemeral range."""
    spec = importlib.util.spec_from_file_location("free_ports", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ports: list[int] = module.free_ports(count)
    return ports


def free_port() -> int:
    """One free port, below the ephemeral range."""
    return free_ports(1)[0]
