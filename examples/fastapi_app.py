"""A FastAPI app that sends yadtq tasks and awaits their results without blocking its loop.

Install and run (a worker in one terminal, the API in another)::

    pip install 'yadtq[fastapi]' uvicorn
    yadtq worker -A examples.async_app --pool asyncio
    uvicorn examples.fastapi_app:api

    curl -X POST 'http://127.0.0.1:8000/double?x=21'        # waits for the result
    curl -X POST 'http://127.0.0.1:8000/double?x=21&wait=0' # returns the task id at once
    curl http://127.0.0.1:8000/tasks/<id>
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

from examples.async_app import app, slow_double
from yadtq import TimeoutError as ResultTimeout

api = FastAPI(title="yadtq example")


@api.post("/double")
async def double(x: int, seconds: float = 0.1, wait: bool = True) -> dict[str, Any]:
    """Send ``slow_double(x)``; with ``wait``, await its result (woken by notification)."""
    result = await slow_double.adelay(x, seconds)
    if not wait:
        return {"id": result.id, "state": result.state}
    try:
        value = await result.aget(timeout=30)
    except ResultTimeout:
        raise HTTPException(504, f"task {result.id} not finished in 30 s") from None
    return {"id": result.id, "result": value}


@api.get("/tasks/{task_id}")
async def task_state(task_id: str) -> dict[str, Any]:
    """The state of a task, and its result once it succeeded."""
    result = app.AsyncResult(task_id)
    state = result.state
    return {"id": task_id, "state": state,
            "result": result.result if state == "success" else None}
