"""``yadtq worker``: load an app and consume its queues until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Optional

import click

from ..settings import redact_url
from .hints import embedded_database, refuse_duplicate_name, refuse_in_process_broker
from .loading import load_app
from .logs import FORMATS, configure_logging
from .options import app_option, queues_option, split_queues

if TYPE_CHECKING:
    from ..worker.main import Worker


@click.command("worker")
@app_option
@click.option("-n", "--name", help="Worker id (default: hostname.pid).")
@click.option("-c", "--concurrency", type=click.IntRange(min=1),
              help="Tasks run at once (default: 8 threads, one process per CPU, or 100 coroutines).")
@click.option("--pool", type=click.Choice(["threads", "processes", "asyncio"]), default="threads",
              show_default=True,
              help="Run tasks in threads, in child processes (needed for time_limit), or as "
                   "coroutines of an event loop (async def tasks; sync ones in a few threads).")
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), metavar="N",
              help="Process pool: replace a child after it ran N tasks.")
@click.option("--max-memory-per-child", type=click.FloatRange(min=0, min_open=True), metavar="MB",
              help="Process pool: replace a child, between tasks, once its resident memory "
                   "exceeds MB megabytes.")
@queues_option("Queues to consume (default: the app's default queue).")
@click.option("-l", "--loglevel", default="info", show_default=True, metavar="LEVEL",
              help="debug, info, warning, error or critical.")
@click.option("--logfile", type=click.Path(dir_okay=False), help="Log to this file instead of stderr.")
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="'text' lines, or one JSON object a line.")
@click.option("--metrics-port", type=click.IntRange(min=1, max=65535), metavar="PORT",
              help="Serve Prometheus metrics on http://0.0.0.0:PORT/metrics (needs yadtq[metrics]).")
def worker(app_path: str, name: Optional[str], concurrency: Optional[int], pool: str,
           max_tasks_per_child: Optional[int], max_memory_per_child: Optional[float],
           queues: tuple[str, ...], loglevel: str, logfile: Optional[str], log_format: str,
           metrics_port: Optional[int] = None) -> None:
    """Consume tasks from the app's queues and run them.

    Stops gracefully on SIGTERM or SIGINT: takes no new work, finishes the tasks in
    flight, then exits 0. A second signal exits at once.
    """
    from ..worker.collector import tune_for_worker
    from ..worker.main import Worker

    queue_names = split_queues(queues)
    level = configure_logging(loglevel, logfile, log_format)
    app = load_app(app_path)
    refuse_in_process_broker(app)
    runner = Worker(app, name=name, concurrency=concurrency, pool=pool, queues=queue_names or None,
                    app_path=app_path, max_tasks_per_child=max_tasks_per_child,
                    max_memory_per_child=max_memory_per_child)
    refuse_duplicate_name(app, runner.name)
    if metrics_port is not None:
        from ..metrics import serve_worker_metrics

        runner.stats.observer = serve_worker_metrics(app, metrics_port, runner.queues)
    if level < logging.WARNING and log_format == "text":  # JSON logs stay JSON from the first line
        _print_banner(runner)
    tune_for_worker()  # this process is a worker and nothing else (worker/collector.py)
    sys.exit(runner.run())


def _print_banner(runner: Worker) -> None:
    # rich only here: a worker run at -l warning never loads it (about 3 MB of its RSS).
    from rich.table import Table
    from rich.text import Text

    from .render import stderr_console

    app = runner.app
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("worker", Text(runner.name))
    grid.add_row("app", Text(app.name))
    grid.add_row("namespace", Text(app.settings.namespace))
    grid.add_row("queues", Text(", ".join(runner.queues)))
    grid.add_row("pool", f"{runner.pool_kind} x{runner.concurrency}")
    grid.add_row("broker", Text(redact_url(app.settings.broker_url)))
    grid.add_row("backend", Text(redact_url(app.settings.backend_url)))
    database = embedded_database(app)
    if database is not None:
        grid.add_row("database", Text(f"{database} (the embedded default, in the current directory)"))
    grid.add_row("tasks", Text("\n".join(sorted(app.tasks)) or "(none registered)"))
    console = stderr_console()
    console.print(Text("yadtq worker", style="bold cyan"))
    console.print(grid)
