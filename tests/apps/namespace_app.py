"""An app for the namespace tests: run once per namespace (``YADTQ_NAMESPACE``); each
task answers with the namespace of the worker that ran it."""

from __future__ import annotations

from yadtq import YADTQ

app = YADTQ("namespaces")
NAMESPACE = app.settings.namespace


@app.task
def whoami(x: int) -> list[object]:
    return [NAMESPACE, x]


@app.task(max_retries=0)
def fail() -> None:
    raise ValueError(f"failed in {NAMESPACE}")


@app.periodic_task(every=3600, name=f"tick-{NAMESPACE}")
def tick() -> str:
    return NAMESPACE
