"""Redis Cluster and Sentinel setups for tests, run by ``scripts/redis-cluster.sh``.

Session fixtures in ``tests/conftest.py`` start one of each when a test asks for it and
stop it (by pid, in the script) at the end of the session, also after failures.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "redis-cluster.sh"


def available() -> bool:
    return bool(shutil.which("redis-server") and shutil.which("redis-cli"))


class Topology:
    """One started setup: its URL, its servers by role and port, and fault injection."""

    def __init__(self, kind: str, *args: str) -> None:
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix=f"yadtq-redis-{kind}-"))
        out = subprocess.run(["bash", str(SCRIPT), kind, str(self.dir / "run"), *args],
                             capture_output=True, text=True, timeout=180, check=False)
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"{SCRIPT.name} {kind} failed: {out.stderr.strip()}")
        self.url = out.stdout.strip().splitlines()[-1]

    def ports(self, role: str) -> list[int]:
        """Ports of the servers started as ``role`` (node, primary, replica, sentinel)."""
        lines = (self.dir / "run" / "ports").read_text().split("\n")
        return [int(p) for r, p in (line.split() for line in lines if line.strip()) if r == role]

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (its pid file stays: ``stop`` skips a dead pid)."""
        pid = int((self.dir / "run" / f"{port}.pid").read_text())
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "down", str(self.dir / "run")],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
