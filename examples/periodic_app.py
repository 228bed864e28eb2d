"""Periodic tasks: a heartbeat every 10 seconds, a report on a cron in Berlin time, and a
nightly cleanup declared with ``add_periodic_task``.

Run it (no beat process: every worker runs the ticker, each tick is enqueued once)::

    yadtq worker -A examples.periodic_app        # start one or several
    yadtq schedule list -A examples.periodic_app # last and next run of each schedule
    yadtq schedule pause report -A examples.periodic_app

Set ``YADTQ_BROKER_URL``/``YADTQ_BACKEND_URL`` for Kafka and Redis; without them it
uses the embedded SQLite default (``yadtq.db`` in the current directory).
"""

from __future__ import annotations

import logging
import time

from yadtq import YADTQ

app = YADTQ("periodic")
logger = logging.getLogger(__name__)


@app.periodic_task(every=10)
def heartbeat() -> float:
    """Every 10 seconds: return the time it ran."""
    now = time.time()
    logger.info("heartbeat at %.0f", now)
    return now


@app.periodic_task(cron="*/5 8-18 * * mon-fri", timezone="Europe/Berlin", name="report",
                   catch_up="none")
def office_hours_report() -> str:
    """Every 5 minutes in Berlin office hours; a report missed while no worker ran is skipped."""
    return "report sent"


@app.task
def cleanup(days: int) -> int:
    """Drop what is older than ``days`` days (here: pretend to)."""
    return days


# 03:00 in Berlin every night, on both sides of a daylight-saving change.
app.add_periodic_task("nightly-cleanup", cleanup.s(days=7), cron="0 3 * * *",
                      timezone="Europe/Berlin")
