"""Flow control: a rate limit and a concurrency limit per key, across the whole cluster.

Run some workers, then this module as a script, on the same transports (the
embedded SQLite default ``yadtq.db`` in the current directory, or Kafka + Redis
through ``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL``)::

    yadtq worker -A examples.flow_app -c 4 &
    yadtq worker -A examples.flow_app -c 4 &
    python -m examples.flow_app              # both demonstrations
    python -m examples.flow_app concurrency  # only the concurrency limit (a few seconds)
    python -m examples.flow_app rate         # only the rate limit (about a minute)

Rate limit: however many workers run, at most 30 ``call_partner`` start in any
minute: the first 30 start at once, the next 10 wait in the schedule (``yadtq
inspect scheduled`` lists them) and start one minute after the first ones did.

Concurrency limit: ``export_report`` runs at most 2 at once per tenant, however
many workers and threads are free, while other tenants' exports run beside them;
the ones over the limit wait for a slot (``yadtq inspect limits`` lists them).
"""

from __future__ import annotations

import sys
import time

from yadtq import YADTQ

app = YADTQ("flow")


@app.task(rate_limit="30/m")
def call_partner(n: int) -> float:
    """Stands for a call to a partner's API that allows 30 calls a minute; returns when
    it started."""
    return time.time()


@app.task(concurrency_limit=2, concurrency_key="tenant")
def export_report(tenant: str, n: int) -> tuple[str, float, float]:
    """Stands for a heavy export that a tenant may run twice at once at most; returns
    (tenant, started, ended)."""
    started = time.time()
    time.sleep(1.0)
    return tenant, started, time.time()


def most_at_once(runs: list[tuple[float, float]]) -> int:
    """The most of these (start, end) intervals that overlap at any moment."""
    events = sorted([(s, 1) for s, _ in runs] + [(e, -1) for _, e in runs])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def show_concurrency() -> dict[str, int]:
    """Send 6 exports for each of 3 tenants and print how many of each ran at once."""
    results = [export_report.delay(tenant, n) for n in range(6) for tenant in ("acme", "globex", "initech")]
    runs: dict[str, list[tuple[float, float]]] = {}
    for tenant, started, ended in (r.get(timeout=180) for r in results):
        runs.setdefault(tenant, []).append((started, ended))
    most = {tenant: most_at_once(spans) for tenant, spans in sorted(runs.items())}
    every = most_at_once([span for spans in runs.values() for span in spans])
    print(f"most exports at once per tenant: {most}; of all tenants together: {every}")
    return most


def show_rate() -> None:
    """Send 40 calls and print when each batch started."""
    results = [call_partner.delay(n) for n in range(40)]
    starts = sorted(r.get(timeout=180) for r in results)
    first = starts[0]
    print(f"calls 1-30 started within {starts[29] - first:.1f} s of the first")
    print(f"calls 31-40 started {starts[30] - first:.1f} s to {starts[39] - first:.1f} s after it")


def main(which: str = "both") -> None:
    """Run the demonstrations: ``concurrency``, ``rate`` or ``both``."""
    if which in ("both", "concurrency"):
        show_concurrency()
    if which in ("both", "rate"):
        show_rate()


if __name__ == "__main__":
    # Send through the module as workers import it, so task names match theirs.
    from examples.flow_app import main as run

    run(sys.argv[1] if len(sys.argv) > 1 else "both")
