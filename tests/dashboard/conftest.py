"""A live dashboard on a free port (uvicorn in a thread), and a small HTTP client for it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from tests.cli.conftest import cli  # noqa: F401 - the SQLite worker-process fixture, for the browser test
from tests.ports import free_port
from yadtq import YADTQ

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode()

    def json(self) -> Any:
        return json.loads(self.text)


class Client:
    """Requests to one dashboard (no redirects, errors returned as replies)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, *, headers: Optional[dict[str, str]] = None,
                json_body: Any = None) -> Reply:
        data = None if json_body is None else json.dumps(json_body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return Reply(reply.status, reply.read())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read())

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, headers: Optional[dict[str, str]] = None, json_body: Any = None) -> Reply:
        return self.request("POST", path, headers=headers, json_body=json_body)


@pytest.fixture
def serve_dashboard() -> Iterator[Callable[..., Client]]:
    """``serve_dashboard(app, token=None)``: a dashboard served until the test ends."""
    from yadtq.dashboard import create_app

    servers: list[tuple[Any, threading.Thread]] = []

    def start(app: YADTQ, token: Optional[str] = None) -> Client:
        port = free_port()
        config = uvicorn.Config(create_app(app, token), host="127.0.0.1", port=port, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.02)
        return Client(f"http://127.0.0.1:{port}")

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
