"""``yadtq dashboard``: a live web UI on Starlette + uvicorn (``pip install 'yadtq[dashboard]'``).

Everything it serves ships in this package (``static/``): no build step, no CDN.
Pages update from server-sent events (``/api/events``) without reloading.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any, Optional

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5555
#: Seconds open connections (live pages) get to close when the server stops.
SHUTDOWN_GRACE = 2


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: Optional[str]) -> None:
    """Refuse a bind beyond this machine without a token.

    Raises:
        ConfigurationError: ``host`` is not a loopback address and no token is set.
    """
    if token is not None and not token.strip():
        raise ConfigurationError("the dashboard token is empty")
    if not is_loopback(host) and not token:
        raise ConfigurationError(f"refusing to serve the dashboard on {host} without a token "
                                 "(--token or $YADTQ_DASHBOARD_TOKEN): anyone who reaches it could act "
                                 "on the cluster")


def check_port(host: str, port: int) -> None:
    """Refuse a port that cannot be bound now (uvicorn would say so in its own words, exit 3).

    Raises:
        ConfigurationError: the address is in use or not this machine's.
    """
    try:
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise ConfigurationError(f"cannot serve the dashboard on {host}:{port}: "
                                 f"{exc.strerror or exc}") from None


def create_app(app: YADTQ, token: Optional[str] = None) -> Any:
    """The dashboard of ``app`` as an ASGI application (see :mod:`yadtq.dashboard.web`).

    Raises:
        ConfigurationError: starlette is not installed.
    """
    try:
        from .web import create_app as build
    except ImportError as exc:
        raise ConfigurationError(
            f"the dashboard needs its extra: pip install 'yadtq[dashboard]' ({exc})") from None
    return build(app, token)


def serve(app: YADTQ, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          token: Optional[str] = None) -> None:
    """Serve the dashboard until interrupted.

    Raises:
        ConfigurationError: a bind beyond this machine without a token, missing extras,
            or the address cannot be bound.
    """
    check_bind(host, token)
    check_port(host, port)
    web = create_app(app, token)
    try:
        import uvicorn
    except ImportError:
        raise ConfigurationError("the dashboard needs its extra: pip install 'yadtq[dashboard]'") from None
    # Open event streams never end by themselves: give them a moment on Ctrl-C, not forever.
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=SHUTDOWN_GRACE)
    server = uvicorn.Server(config)
    logger.info("dashboard on http://%s:%d/", host, port)
    server.run()
    if getattr(server, "started", True) is False:
        raise ConfigurationError(f"cannot serve the dashboard on {host}:{port}")
