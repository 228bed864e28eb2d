"""The dashboard's web app on Starlette: static pages, a JSON API, server-sent events.

Reads are open to whoever reaches the bind address (127.0.0.1 by default; any other
needs a token to start at all). Actions are ``POST /api/...`` requests that carry
the header ``X-Yadtq-Token`` when a token is set, and always the header
``X-Yadtq-Action`` (a plain cross-site form cannot set a header, so no other site can
make a visitor's browser act on a local dashboard).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import operations, states
from ..exceptions import ConfigurationError, YADTQError
from ..metrics import CONTENT_TYPE, ClusterCollector, exposition, new_registry
from . import data

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "x-yadtq-token"
ACTION_HEADER = "x-yadtq-action"
#: Seconds between two server-sent snapshots.
EVENT_INTERVAL = 1.0
TASK_STATES = (states.PROCESSING, states.RETRYING, states.SCHEDULED, states.SUCCESS, states.FAILED)

Handler = Callable[[Request], Awaitable[Response]]


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(value, status_code=status)


def _error(message: str, status: int) -> JSONResponse:
    return _json({"error": message}, status)


def create_app(app: YADTQ, token: Optional[str] = None) -> Starlette:
    """The dashboard for ``app`` as an ASGI application.

    Args:
        app: the yadtq app whose cluster to show.
        token: when set, every action needs it (header ``X-Yadtq-Token``).
    """
    cache = data.SnapshotCache(app)
    registry = new_registry()
    registry.register(ClusterCollector(app, totals=True))

    def action(fn: Callable[[Request, dict[str, Any]], Any]) -> Handler:
        async def handle(request: Request) -> Response:
            if request.headers.get(ACTION_HEADER) is None:
                return _error(f"actions need the {ACTION_HEADER} header", 400)
            if token is not None and not hmac.compare_digest(
                    request.headers.get(TOKEN_HEADER, "").encode(), token.encode()):
                return _error("this dashboard needs its token for actions", 403)
            try:
                body = await request.json() if await request.body() else {}
            except ValueError:
                return _error("the request body is not JSON", 400)
            if not isinstance(body, dict):
                return _error("the request body must be a JSON object", 400)
            try:
                return _json(await run_in_threadpool(fn, request, body))
            except ConfigurationError as exc:
                return _error(str(exc), 400)
            except YADTQError as exc:
                return _error(str(exc), 503)
        return handle

    def read(fn: Callable[[Request], Any]) -> Handler:
        async def handle(request: Request) -> Response:
            try:
                value = await run_in_threadpool(fn, request)
            except YADTQError as exc:
                return _error(str(exc), 503)
            if isinstance(value, Response):
                return value
            return _json(value)
        return handle

    # ------------------------------------------------------------------ reads
    def overview(request: Request) -> Any:
        return data.overview(app, cache.get())

    def config(request: Request) -> Any:
        return {"app": app.name, "token_required": token is not None, "states": list(TASK_STATES)}

    def task(request: Request) -> Any:
        found = data.task_detail(app, request.path_params["task_id"])
        if found is None:
            return _error("no such task (unknown, not yet seen by a worker, or expired)", 404)
        return found

    def search(request: Request) -> Any:
        query = request.query_params.get("q", "")
        state = request.query_params.get("state", "")
        return {"tasks": data.search(cache.get(), query, state)}

    def dead(request: Request) -> Any:
        try:
            return {"dead_letters": data.dead_letters(app), "supported": True}
        except ConfigurationError as exc:
            return {"dead_letters": [], "supported": False, "error": str(exc)}

    def metrics(request: Request) -> Any:
        return Response(exposition(registry), media_type=CONTENT_TYPE)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n\n"
            while not await request.is_disconnected():
                try:
                    snapshot = await run_in_threadpool(cache.get)
                    payload = json.dumps(data.overview(app, snapshot))
                    yield f"event: snapshot\ndata: {payload}\n\n".encode()
                except YADTQError as exc:
                    yield f"event: failure\ndata: {json.dumps(str(exc))}\n\n".encode()
                await asyncio.sleep(EVENT_INTERVAL)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # ------------------------------------------------------------------ actions
    def revoke(request: Request, body: dict[str, Any]) -> Any:
        task_id = request.path_params["task_id"]
        asked = operations.revoke(app, task_id, terminate=bool(body.get("terminate")))
        return {"revoked": task_id, "asked": asked}

    def retry(request: Request, body: dict[str, Any]) -> Any:
        task_id = request.path_params["task_id"]
        return {"task_id": task_id, "new_id": operations.retry(app, task_id)}

    def requeue(request: Request, body: dict[str, Any]) -> Any:
        ids = body.get("ids")
        if ids is None:
            done = operations.requeue_dead_letters(app)
        elif isinstance(ids, list) and all(isinstance(i, str) for i in ids):
            done = operations.requeue_dead_letters(app, operations.find_dead_letters(app, ids))
        else:
            raise ConfigurationError("ids must be a list of dead-letter ids")
        return {"requeued": [d.id for d in done]}

    def purge_dead(request: Request, body: dict[str, Any]) -> Any:
        return {"purged": app.broker.purge_dead_letters()}

    def purge_queue(request: Request, body: dict[str, Any]) -> Any:
        queue = request.path_params["queue"]
        return {"queue": queue, "purged": app.purge(queue)}

    def pause(request: Request, body: dict[str, Any]) -> Any:
        name = request.path_params["name"]
        paused = bool(body.get("paused", True))
        change = getattr(app, "pause_periodic_task" if paused else "resume_periodic_task", None)
        if change is None:
            raise ConfigurationError("this yadtq has no periodic schedules to pause")
        change(name)
        return {"schedule": name, "paused": paused}

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/api/overview", read(overview)),
        Route("/api/config", read(config)),
        Route("/api/tasks", read(search)),
        Route("/api/tasks/{task_id}", read(task)),
        Route("/api/dead-letters", read(dead)),
        Route("/api/events", events),
        Route("/metrics", read(metrics)),
        Route("/api/tasks/{task_id}/revoke", action(revoke), methods=["POST"]),
        Route("/api/tasks/{task_id}/retry", action(retry), methods=["POST"]),
        Route("/api/dead-letters/requeue", action(requeue), methods=["POST"]),
        Route("/api/dead-letters/purge", action(purge_dead), methods=["POST"]),
        Route("/api/queues/{queue}/purge", action(purge_queue), methods=["POST"]),
        Route("/api/schedules/{name}/pause", action(pause), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
