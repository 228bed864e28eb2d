"""Free TCP ports on 127.0.0.1 for the servers the scripts and tests start.

    python3 scripts/free_ports.py N [PLUS]

prints N distinct ports, space separated; with PLUS, port + PLUS is free too (a
Redis Cluster node's bus port is its port + 10000).

The ports are below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``),
where outgoing connections take their local ports. A port chosen there (``bind(0)``
hands out exactly those) is free when chosen, but a client connecting anywhere in
the seconds before the server binds it (a Kafka broker's JVM takes that long) can
take it, and the server then fails with "address already in use".
"""

from __future__ import annotations

import random
import socket
import sys

#: The lowest port handed out (below: well-known and commonly configured ports).
LOWEST = 10000
#: Linux's default ephemeral range, when /proc does not say.
DEFAULT_EPHEMERAL = (32768, 60999)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(word) for word in f.read().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def free_ports(count: int, plus: int = 0) -> list[int]:
    """``count`` distinct ports free now, each with ``port + plus`` free too, outside the
    ephemeral range (below it, or above it where there is no room below)."""
    low, high = ephemeral_range()
    if low - 1 - plus - LOWEST >= 2000:
        first, last = LOWEST, low - 1 - plus
    else:
        first, last = high + 1, 65535 - plus
    held: list[socket.socket] = []
    found: list[int] = []
    taken: set[int] = set()
    try:
        for _ in range(100 * count):
            if len(found) == count:
                break
            port = random.randint(first, last)
            wanted = {port, port + plus}
            if wanted & taken:
                continue
            pair = []
            try:
                for p in sorted(wanted):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    pair.append(s)
                    s.bind(("127.0.0.1", p))
            except OSError:
                for s in pair:
                    s.close()
                continue
            held += pair
            taken |= wanted
            found.append(port)
    finally:
        for s in held:
            s.close()
    if len(found) < count:
        raise SystemExit(f"free_ports: found only {len(found)} of {count} free ports in {first}..{last}")
    return found


if __name__ == "__main__":
    print(" ".join(map(str, free_ports(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))))
