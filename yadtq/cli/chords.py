"""How chords in progress are shown (``yadtq inspect chords`` and ``yadtq monitor``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from ..transports.canvas_store import GroupInfo
from .render import format_age


def chord_dict(chord: GroupInfo, now: float) -> dict[str, Any]:
    """One chord as JSON-ready data."""
    return {"id": chord.group_id, "done": chord.done, "size": chord.size, "state": chord.state,
            "callback_id": chord.callback_id, "created": chord.created,
            "age": max(0.0, now - chord.created)}


def chords_table(chords: Sequence[GroupInfo], now: float) -> Table:
    """Chords waiting for members, oldest first: id, members done, progress, callback, age."""
    table = Table(title=f"Chords in progress ({len(chords)})", title_justify="left",
                  title_style="bold", expand=False)
    table.add_column("id", no_wrap=True)
    table.add_column("done", justify="right")
    table.add_column("progress", justify="right")
    table.add_column("callback", no_wrap=True)
    table.add_column("started", justify="right")
    for chord in chords:
        share = chord.done / chord.size if chord.size else 1.0
        table.add_row(chord.group_id, f"{chord.done}/{chord.size}", f"{share:.0%}",
                      chord.callback_id or "-", format_age(now - chord.created))
    return table
