"""Configuration from an object, task routes and ``ignore_result``.

Run a worker for each queue, then send::

    yadtq worker -A examples.routing_app -Q reports -c 2
    yadtq worker -A examples.routing_app
    python examples/routing_app.py

Settings could equally come from a module: ``app.config_from_object("myproject.yadtq_settings")``.
"""

from __future__ import annotations

from yadtq import YADTQ


class Settings:
    """Lower-case names are settings; they override ``YADTQ_*`` environment variables."""

    task_routes = {
        "examples.routing_app.report_*": "reports",  # a glob
        "examples.routing_app.notify": "default",  # an exact name
    }
    result_expires = 3600


app = YADTQ("routing")
app.config_from_object(Settings)


@app.task
def report_daily(day: str) -> str:
    return f"report for {day}"


@app.task(ignore_result=True)
def notify(user: str) -> str:
    return f"mail sent to {user}"  # not stored: get() returns None


if __name__ == "__main__":
    report = report_daily.delay("2030-01-01")
    note = notify.delay("ada")
    print("report_daily ->", report.get(timeout=30))
    print("notify ->", note.get(timeout=30), f"({note.state})")
    print("queues:", report.info.queue if report.info else "?", note.info.queue if note.info else "?")
