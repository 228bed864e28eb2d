"""What the command line tests share: the apps they name and readers of its output."""

from __future__ import annotations

from click.testing import CliRunner, Result

from tests.cli.conftest import ROOT
from yadtq.cli import main

APP = "tests.apps.cli_app"
MATH = "examples.math_app"
TASKS_JSON = str(ROOT / "examples" / "tasks.json")


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def table_rows(text: str) -> dict[int, list[str]]:
    """Rows of a printed rich table whose first cell is a number: ``{n: [cells after it]}``."""
    rows: dict[int, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells[1:]
    return rows
