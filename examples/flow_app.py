"""Flow control: a task limited to 30 starts a minute across the whole cluster.

Run some workers, then this module as a script, on the same transports (the
embedded SQLite default ``yadtq.db`` in the current directory, or Kafka + Redis
through ``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL``)::

    yadtq worker -A examples.flow_app -c 4 &
    yadtq worker -A examples.flow_app -c 4 &
    python -m examples.flow_app

However many workers run, at most 30 ``call_partner`` start in any minute: the
first 30 start at once, the next 10 wait in the schedule (``yadtq inspect`` lists
them ``scheduled``) and start one minute after the first ones did.

Priorities: 400 ``export_row`` (default priority 0) are queued, then 3 ``page_oncall``
at priority 9; the pages start before the export backlog has drained (the monitor's
queue table shows the waiting tasks per priority meanwhile).
"""

from __future__ import annotations

import time

from yadtq import YADTQ

app = YADTQ("flow")


@app.task(rate_limit="30/m")
def call_partner(n: int) -> float:
    """Stands for a call to a partner's API that allows 30 calls a minute; returns when
    it started."""
    return time.time()


@app.task
def export_row(n: int) -> float:
    """Bulk work at the default priority (0): 20 ms each; returns when it started."""
    started = time.time()
    time.sleep(0.02)
    return started


@app.task(priority=9)
def page_oncall(n: int) -> float:
    """Urgent work: priority 9 (0..9, higher first) for every call; returns when it started."""
    return time.time()


def priorities() -> None:
    """Queue a backlog, then urgent tasks; print how far into the backlog they started."""
    backlog = [export_row.delay(n) for n in range(400)]
    pages = [page_oncall.delay(n) for n in range(3)]
    page_starts = [r.get(timeout=180) for r in pages]
    before = sum(1 for r in backlog if r.get(timeout=180) < max(page_starts))
    print(f"the 3 priority-9 pages started after {before} of the 400 queued exports")


def main() -> None:
    """Send 40 calls and print when each batch started; then the priorities demo."""
    results = [call_partner.delay(n) for n in range(40)]
    starts = sorted(r.get(timeout=180) for r in results)
    first = starts[0]
    print(f"calls 1-30 started within {starts[29] - first:.1f} s of the first")
    print(f"calls 31-40 started {starts[30] - first:.1f} s to {starts[39] - first:.1f} s after it")
    priorities()


if __name__ == "__main__":
    # Send through the module as workers import it, so task names match theirs.
    from examples.flow_app import main as run

    run()
