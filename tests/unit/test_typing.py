"""Tasks are generic over their function: a type checker flags wrong calls to delay()."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

SAMPLE = Path(__file__).resolve().parent.parent / "typing" / "sample.py"


@pytest.mark.slow
def test_mypy_flags_exactly_the_marked_lines() -> None:
    stdout, stderr, _ = api.run(["--strict", "--no-incremental", "--cache-dir", "/dev/null",
                                 "--follow-imports", "silent", str(SAMPLE)])
    flagged = {int(line.split(":")[1]) for line in stdout.splitlines() if ": error:" in line}
    expected = {n for n, line in enumerate(SAMPLE.read_text().splitlines(), 1) if "# E:" in line}
    assert expected, "the sample marks no lines"
    assert flagged == expected, stdout + stderr
