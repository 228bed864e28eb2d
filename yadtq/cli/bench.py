"""``yadtq bench``: measure submit rate, end-to-end throughput and round trip."""

from __future__ import annotations

import json
import os
from typing import Optional

import click
from rich.table import Table

from ..bench import run_bench
from ..exceptions import ConfigurationError
from ..settings import redact_url
from .render import stderr_console, stdout_console


@click.command()
@click.option("--broker", default=None, help="Broker URL (default: $YADTQ_BROKER_URL, else embedded SQLite).")
@click.option("--backend", default=None, help="Backend URL (default: $YADTQ_BACKEND_URL, else the broker's).")
@click.option("-n", "--tasks", default=20_000, show_default=True, type=click.IntRange(1),
              help="No-op tasks per throughput run.")
@click.option("-w", "--workers", default=2, show_default=True, type=click.IntRange(1),
              help="Worker processes.")
@click.option("-c", "--concurrency", default=8, show_default=True, type=click.IntRange(1),
              help="Tasks each worker runs at once.")
@click.option("--pool", type=click.Choice(["threads", "processes"]), default="threads", show_default=True)
@click.option("--latency-samples", default=1000, show_default=True, type=click.IntRange(1),
              help="Sequential add.delay(2, 3).get() calls for the round trip.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(broker: Optional[str], backend: Optional[str], tasks: int, workers: int, concurrency: int,
          pool: str, latency_samples: int, as_json: bool) -> None:
    """Benchmark the queue end to end with real worker processes.

    Measures .delay() per second, end-to-end no-op throughput with WORKERS
    processes, the round trip of add.delay(2, 3).get() (p50, p99), and idle
    worker memory. Example: yadtq bench --broker kafka://127.0.0.1:9092
    --backend redis://127.0.0.1:6379/0
    """
    broker = broker or os.environ.get("YADTQ_BROKER_URL")
    if broker is None:
        broker = "sqlite:///yadtq-bench.db"
    backend = backend or os.environ.get("YADTQ_BACKEND_URL") or (
        broker if broker.startswith(("sqlite", "memory")) else None)
    if backend is None:
        raise ConfigurationError("--backend is needed with a Kafka broker (e.g. redis://127.0.0.1:6379/0)")
    if broker.startswith("memory") or backend.startswith("memory"):
        raise ConfigurationError(
            "memory:// cannot be shared with worker processes; use sqlite:// or a server")
    console = stderr_console()
    report = run_bench(broker=broker, backend=backend, tasks=tasks, workers=workers,
                       concurrency=concurrency, pool=pool, latency_samples=latency_samples,
                       progress=lambda message: console.print(f"[dim]bench:[/] {message}"))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    table = Table(title=f"yadtq bench: {redact_url(broker)} + {redact_url(backend)}")
    table.add_column("measure")
    table.add_column("result", justify="right")
    table.add_row(".delay() (no worker running)", f"{report.delay_per_s:,.0f} /s")
    table.add_row(f"end to end, {workers} x {pool} x{concurrency}", f"{report.end_to_end_per_s:,.0f} tasks/s")
    table.add_row("round trip p50", f"{report.round_trip_p50_ms:.2f} ms")
    table.add_row("round trip p99", f"{report.round_trip_p99_ms:.2f} ms")
    table.add_row("worker RSS after the run", f"{report.idle_worker_rss_mb:.0f} MB")
    stdout_console().print(table)
    for note in report.notes:
        stdout_console().print(f"[dim]{note}[/]")
