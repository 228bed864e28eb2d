"""Periodic specs: next-run computation (with daylight-saving changes), catch-up planning,
validation, and the ticker's claim on the in-memory backend."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from yadtq import YADTQ
from yadtq.exceptions import ConfigurationError
from yadtq.periodic import MIN_GRACE, Schedule, plan, tick_id
from yadtq.transports.periodic_store import periodic_store
from yadtq.worker.ticker import Ticker

pytestmark = pytest.mark.timeout(30)
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int, fold: int = 0) -> float:
    return datetime(*args, tzinfo=BERLIN, fold=fold).timestamp()  # type: ignore[arg-type,misc]


def ticks(schedule: Schedule, start: float, count: int) -> list[datetime]:
    out, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(datetime.fromtimestamp(moment, BERLIN))
    return out


def test_every_is_aligned_and_strictly_after() -> None:
    s = Schedule("s", "t", every=30)
    assert s.next_after(1000.0) == 1020.0
    assert s.next_after(1020.0) == 1050.0  # strictly after a tick
    assert s.next_after(1019.999) == 1020.0


def test_cron_daily_across_spring_forward_in_berlin() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that night.
    s = Schedule("s", "t", cron="30 2 * * *", timezone="Europe/Berlin")
    got = ticks(s, berlin(2026, 3, 28, 12, 0), 3)
    assert [(d.day, d.hour, d.minute) for d in got] == [(29, 3, 0), (30, 2, 30), (31, 2, 30)]
    # One tick per day, and the UTC offset changed in between.
    assert got[0].utcoffset() != datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN).utcoffset()


def test_cron_daily_across_fall_back_in_berlin_fires_once() -> None:
    # 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, the job once.
    s = Schedule("s", "t", cron="30 2 * * *", timezone="Europe/Berlin")
    got = ticks(s, berlin(2026, 10, 24, 12, 0), 2)
    assert [(d.day, d.hour, d.minute) for d in got] == [(25, 2, 30), (26, 2, 30)]
    assert got[1].timestamp() - got[0].timestamp() == 25 * 3600  # the day had 25 hours


def test_cron_interval_across_fall_back_fires_in_both_hours() -> None:
    s = Schedule("s", "t", cron="0 * * * *", timezone="Europe/Berlin")
    got = ticks(s, berlin(2026, 10, 25, 0, 30), 4)
    stamps = [d.timestamp() for d in got]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [3600, 3600, 3600]  # no gap, no double
    assert [d.hour for d in got] == [1, 2, 2, 3]


def test_cron_uses_the_named_timezone() -> None:
    utc = Schedule("u", "t", cron="0 3 * * *")
    local = Schedule("b", "t", cron="0 3 * * *", timezone="Europe/Berlin")
    start = berlin(2026, 7, 1, 12, 0)
    assert utc.next_after(start) - local.next_after(start) == 2 * 3600  # CEST is UTC+2


def test_plan_on_time_late_and_missed() -> None:
    s = Schedule("s", "t", every=10)
    assert plan(s, 100.0, 101.0).run_at == 100.0 and plan(s, 100.0, 101.0).next_run == 110.0
    # Late but within the grace: still enqueued, and the next tick is the following one.
    late = plan(s, 100.0, 100.0 + 9)
    assert (late.run_at, late.next_run, late.missed) == (100.0, 110.0, False)
    missed = plan(s, 100.0, 1000.5)
    assert (missed.run_at, missed.next_run, missed.missed) == (100.0, 1010.0, True)
    none = Schedule("n", "t", every=10, catch_up="none")
    skipped = plan(none, 100.0, 1000.5)
    assert (skipped.run_at, skipped.next_run) == (None, 1010.0)
    assert plan(Schedule("f", "t", every=0.5), 100.0, 100.0 + MIN_GRACE).run_at == 100.0


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"cron": "* * * * *", "every": 5}, "exactly one"),
    ({"every": 0}, "positive"),
    ({"every": float("nan")}, "positive"),
    ({"cron": "61 * * * *"}, "bad cron"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"every": 5, "catch_up": "all"}, "catch_up"),
])
def test_bad_specs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Schedule("s", "t", **kwargs)  # type: ignore[arg-type]


def test_spec_round_trip_and_tick_ids() -> None:
    s = Schedule("s", "mod.task", (1, "a"), {"k": [1, 2]}, cron="*/5 * * * *",
                 timezone="Europe/Berlin", catch_up="none", queue="q")
    assert Schedule.decode("s", s.encode()) == s
    with pytest.raises(ConfigurationError):
        Schedule.decode("s", b"\x00garbage")
    assert tick_id("s", 100.0) == tick_id("s", 100.0)
    assert len({tick_id("s", 100.0), tick_id("s", 110.0), tick_id("t", 100.0)}) == 3


def test_decorator_and_add_periodic_task_declare_schedules() -> None:
    app = YADTQ("p", broker="memory://", backend="memory://")

    @app.periodic_task(every=5, timezone="Europe/Berlin")
    def report() -> str:
        return "done"

    @app.task
    def cleanup(days: int) -> int:
        return days

    app.add_periodic_task("nightly", cleanup.s(days=7), cron="0 3 * * *")
    assert report() == "done"  # still a plain callable task
    assert app.periodic_schedules[report.name].every == 5.0
    nightly = app.periodic_schedules["nightly"]
    assert (nightly.task, nightly.kwargs, nightly.cron) == (cleanup.name, {"days": 7}, "0 3 * * *")
    with pytest.raises(ConfigurationError):
        app.periodic_task(cron="nope")(lambda: None)


def test_ticker_claims_each_tick_once_among_many_tickers() -> None:
    app = YADTQ("p", broker="memory://", backend="memory://")

    @app.periodic_task(every=3600, name="hourly")
    def hourly() -> None: ...

    tickers = [Ticker(app) for _ in range(5)]
    assert sum(t.turn() for t in tickers) == 0  # registered, nothing due yet
    store = periodic_store(app.backend)
    (entry,) = store.periodic_entries()
    assert entry.next_run > app.now()
    # Make it due now: every ticker looks; exactly one enqueues the tick.
    due_at = app.now() - 1
    store.pause_periodic("hourly", False, due_at)
    for t in tickers:
        t._next_look = 0.0
    assert sum(t.turn() for t in tickers) == 1
    due = app.backend.claim_due(None, 10, 30)
    assert [d.task_id for d in due] == [tick_id("hourly", due_at)]
    (info,) = app.periodic_tasks()
    assert info.last_task_id == due[0].task_id and info.next_run > app.now()
    # Paused: nothing is enqueued even when due.
    app.pause_periodic_task("hourly")
    store.pause_periodic("hourly", True, app.now() - 1)
    for t in tickers:
        t._next_look = 0.0
    assert sum(t.turn() for t in tickers) == 0
    assert app.periodic_tasks()[0].paused
    app.resume_periodic_task("hourly")
    assert app.periodic_tasks()[0].next_run > app.now()  # resumed from the next future tick


def test_workers_save_declared_schedules_idempotently() -> None:
    from yadtq.worker.ticker import register

    app = YADTQ("p", broker="memory://", backend="memory://")

    @app.task
    def job(n: int) -> int:
        return n

    app.add_periodic_task("a", job.s(1), every=60)
    app.add_periodic_task("b", job.s(2), every=60)
    store = periodic_store(app.backend)
    assert register(app, store) == 2
    assert register(app, store) == 0  # a second worker starting changes nothing
    app.pause_periodic_task("a")
    # The code changes "a" and no longer declares "b": "a" is updated (still paused),
    # "b" stays stored until removed.
    app.periodic_schedules.clear()
    app.add_periodic_task("a", job.s(1), cron="0 * * * *")
    assert register(app, store) == 1
    infos = {i.name: i for i in app.periodic_tasks()}
    assert infos["a"].schedule is not None and infos["a"].schedule.cron == "0 * * * *"
    assert infos["a"].paused and set(infos) == {"a", "b"}


def test_example_app_declares_its_schedules() -> None:
    from examples import periodic_app

    specs = periodic_app.app.periodic_schedules
    assert specs["report"].timezone == "Europe/Berlin" and specs["report"].catch_up == "none"
    assert specs["nightly-cleanup"].kwargs == {"days": 7}
    assert specs[periodic_app.heartbeat.name].every == 10.0
