"""How tasks held by a flow-control limit are shown (``yadtq inspect limits`` and
``yadtq monitor``): each concurrency key with the tasks holding its slots and those
waiting, and the tasks waiting in the schedule for a rate-limit slot."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import click
from rich.table import Table

from ..flow import WAIT_RATE_LIMIT
from ..transports.slots_store import ConcurrencyBackend, SlotHolder, SlotKeyInfo, slot_key_dict
from .render import format_age, stdout_console

if TYPE_CHECKING:
    from ..app import YADTQ
    from ..transports.base import TaskSummary

#: Most holders and waiting ids a table cell lists.
CELL_IDS = 3


def concurrency_keys(app: YADTQ, limit: int) -> list[SlotKeyInfo]:
    """The concurrency keys with holders or waiting tasks (none on a backend without slots)."""
    backend = app.backend
    return backend.concurrency_slots(limit) if isinstance(backend, ConcurrencyBackend) else []


def worker_names(app: YADTQ) -> dict[str, str]:
    """Worker name by instance, to say who holds a slot."""
    return {w.instance: w.worker for w in app.backend.workers()}


def _holder(holder: SlotHolder, names: Mapping[str, str]) -> str:
    if not holder.instance:
        return f"{holder.task_id} (handed over, not started yet)"
    return f"{holder.task_id} on {names.get(holder.instance, holder.instance)}"


def concurrency_table(infos: Sequence[SlotKeyInfo], names: Mapping[str, str], now: float) -> Table:
    """Concurrency keys: task, key, slots taken of the limit, who holds them, who waits."""
    table = Table(title=f"Concurrency limits ({len(infos)} keys in use)", title_justify="left",
                  title_style="bold", expand=False)
    for column in ("task", "key", "running", "holders", "waiting", "next to run"):
        table.add_column(column, justify="right" if column in ("running", "waiting") else "left")
    for info in infos:
        holders = [_holder(h, names) + f", {format_age(now - h.since)}"
                   for h in info.holders[:CELL_IDS]]
        if len(info.holders) > CELL_IDS:
            holders.append(f"... {len(info.holders) - CELL_IDS} more")
        table.add_row(info.name, info.value or "(whole task)", f"{len(info.holders)}/{info.limit}",
                      "\n".join(holders) or "-", str(info.waiting_count),
                      "\n".join(info.waiting[:CELL_IDS]) or "-")
    return table


def rate_waiting(scheduled: Sequence[TaskSummary]) -> list[tuple[str, str, int]]:
    """(task, limit, how many) of the scheduled tasks waiting on a rate limit."""
    counts: Counter[tuple[str, str]] = Counter()
    for task in scheduled:
        reason = task.reason or ""
        if reason.startswith(WAIT_RATE_LIMIT):
            counts[(task.name or "?", reason[len(WAIT_RATE_LIMIT):].strip())] += 1
    return [(name, limit, n) for (name, limit), n in sorted(counts.items())]


def rate_table(rows: Sequence[tuple[str, str, int]]) -> Table:
    """Tasks waiting in the schedule for a rate-limit slot, per task."""
    table = Table(title="Waiting on rate limits (among the scheduled tasks listed)",
                  title_justify="left", title_style="bold", expand=False)
    table.add_column("task")
    table.add_column("rate limit")
    table.add_column("waiting", justify="right")
    for name, limit, count in rows:
        table.add_row(name, limit, str(count))
    return table



def print_limits(app: YADTQ, limit: int, as_json: bool) -> None:
    """``yadtq inspect limits``: concurrency keys in use, then rate-limit waits."""
    now = app.now()
    keys = concurrency_keys(app, limit)
    names = worker_names(app) if keys else {}
    rates = rate_waiting(app.backend.snapshot(limit).scheduled_tasks)
    if as_json:
        click.echo(json.dumps({
            "concurrency": [slot_key_dict(k, names, now) for k in keys],
            "rate": [{"task": n, "rate_limit": r, "waiting": c} for n, r, c in rates]}, indent=2))
        return
    console = stdout_console()
    console.print(concurrency_table(keys, names, now))
    if rates:
        console.print(rate_table(rates))
