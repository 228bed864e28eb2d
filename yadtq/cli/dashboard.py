"""``yadtq dashboard``: serve the live web UI."""

from __future__ import annotations

from typing import Optional

import click

from ..dashboard import DEFAULT_HOST, DEFAULT_PORT, check_bind, check_port, serve
from .loading import load_app
from .logs import configure_logging
from .options import app_option
from .render import stderr_console


@click.command("dashboard")
@app_option
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to bind; anything but 127.0.0.1 needs a token.")
@click.option("--port", type=click.IntRange(min=1, max=65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on.")
@click.option("--token", envvar="YADTQ_DASHBOARD_TOKEN", show_envvar=True, metavar="TOKEN",
              help="Secret that every action (revoke, retry, requeue, purge, pause) needs.")
@click.option("-l", "--loglevel", default="warning", show_default=True, metavar="LEVEL",
              help="debug, info, warning, error or critical.")
def dashboard(app_path: str, host: str, port: int, token: Optional[str], loglevel: str) -> None:
    """Serve a live web UI of the cluster: queues, workers, tasks, schedules, dead letters.

    Pages update live (server-sent events) and offer actions: revoke, terminate,
    retry, requeue and purge dead letters, purge a queue, pause a schedule. With a
    token set, every action needs it (open the page as /?token=TOKEN, or enter it
    when asked). Prometheus metrics are on /metrics. Needs yadtq[dashboard].
    """
    check_bind(host, token)
    check_port(host, port)
    configure_logging(loglevel, None, "text")
    app = load_app(app_path)
    shown = f"[{host}]" if ":" in host else host
    stderr_console().print(f"yadtq dashboard for {app.name} on http://{shown}:{port}/"
                           + (" (actions need the token)" if token else ""), highlight=False)
    serve(app, host, port, token)
