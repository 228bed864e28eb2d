"""Task naming: run this file as a script, as a module, or import it; the names agree.

``python examples/naming_probe.py`` and ``python -m examples.naming_probe`` both print
the names a worker started with ``-A examples.naming_probe`` registers.
"""

from __future__ import annotations

from yadtq import YADTQ

app = YADTQ("naming")


@app.task
def double(x: int) -> int:
    return 2 * x


@app.task(name="custom.name")
def named(x: int) -> int:
    return x


if __name__ == "__main__":
    print(sorted(app.tasks))
