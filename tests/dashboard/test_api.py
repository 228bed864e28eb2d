"""The dashboard's HTTP API, served by uvicorn in process on memory://: reads, actions,
the token, and the bind rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable

import pytest

from tests.cli.conftest import wait_for
from tests.dashboard.conftest import Client
from yadtq import YADTQ, ConfigurationError, states
from yadtq.dashboard import check_bind
from yadtq.worker.main import Worker

Serve = Callable[..., Client]

pytestmark = pytest.mark.timeout(120)

ACT = {"X-Yadtq-Action": "1"}


@pytest.fixture
def app() -> Iterator[YADTQ]:
    app = YADTQ("dash", broker="memory://", backend="memory://", heartbeat_interval=0.2)

    @app.task(name="d.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="d.fail", max_retries=0)
    def fail(text: str) -> None:
        raise ValueError(text)

    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def worker(app: YADTQ) -> Iterator[Worker]:
    worker = Worker(app, name="dash-worker", concurrency=2).start()
    try:
        yield worker
    finally:
        worker.stop(timeout=30)


def test_pages_read_the_cluster(app: YADTQ, worker: Worker, serve_dashboard: Serve) -> None:
    done = app.send_task("d.add", (2, 3))
    assert done.get(timeout=30) == 5
    client = serve_dashboard(app)
    assert "yadtq dashboard" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    overview = client.get("/api/overview").json()
    assert overview["totals"]["succeeded"] == 1
    assert {"d.add", "d.fail"} <= set(overview["registered"])
    wait_for(lambda: client.get("/api/overview").json()["workers"], 30, "the worker")
    found = client.get(f"/api/tasks?q={done.id[-6:]}").json()["tasks"]
    assert [t["task_id"] for t in found] == [done.id]
    assert client.get("/api/tasks?q=d.add&state=failed").json()["tasks"] == []
    detail = client.get(f"/api/tasks/{done.id}").json()
    assert detail["state"] == states.SUCCESS and detail["result"] == "5"
    assert [h["state"] for h in detail["history"]] == [states.QUEUED, states.PROCESSING, states.SUCCESS]
    assert client.get("/api/tasks/nope").status_code == 404
    metrics = client.get("/metrics").text
    assert 'yadtq_tasks_total{state="success",task=""} 1.0' in metrics


def test_retry_and_revoke_from_the_api(app: YADTQ, worker: Worker, serve_dashboard: Serve) -> None:
    failed = app.send_task("d.fail", ("bad input",))
    wait_for(lambda: app.AsyncResult(failed.id).state == states.FAILED, 30, "the failure")
    client = serve_dashboard(app)
    detail = client.get(f"/api/tasks/{failed.id}").json()
    assert detail["retryable"] and detail["call"]["args"] == ["'bad input'"]
    assert detail["error"]["message"] == "bad input"
    reply = client.post(f"/api/tasks/{failed.id}/retry", headers=ACT)
    assert reply.status_code == 200, reply.text
    new_id = reply.json()["new_id"]
    wait_for(lambda: app.AsyncResult(new_id).state == states.FAILED, 30, "the retry to fail too")
    again = client.post(f"/api/tasks/{failed.id}/retry", headers=ACT)
    assert again.status_code == 400 and "not kept" in again.json()["error"]
    later = app.send_task("d.add", (1, 1), countdown=3600)
    revoked = client.post(f"/api/tasks/{later.id}/revoke", headers=ACT, json_body={}).json()
    assert revoked["revoked"] == later.id
    assert app.AsyncResult(later.id).state == states.REVOKED


def test_dead_letters_from_the_api(app: YADTQ, worker: Worker, serve_dashboard: Serve) -> None:
    lost = app.send_task("d.missing", (1,))
    wait_for(lambda: app.broker.list_dead_letters(), 30, "the dead letter")
    client = serve_dashboard(app)
    (letter,) = client.get("/api/dead-letters").json()["dead_letters"]
    assert letter["task_id"] == lost.id and "not registered" in letter["reason"]
    reply = client.post("/api/dead-letters/requeue", headers=ACT, json_body={"ids": [letter["id"]]})
    assert reply.json() == {"requeued": [letter["id"]]}
    wait_for(lambda: app.broker.list_dead_letters(), 30, "the dead letter again (still unregistered)")
    assert client.post("/api/dead-letters/purge", headers=ACT).json() == {"purged": 1}


def test_actions_need_the_token_and_the_action_header(app: YADTQ, serve_dashboard: Serve) -> None:
    client = serve_dashboard(app, token="s3cret")
    handle = app.send_task("d.add", (1, 2))
    assert client.get("/api/config").json()["token_required"] is True
    assert client.get("/api/overview").status_code == 200  # reads are open
    path = f"/api/tasks/{handle.id}/revoke"
    assert client.post(path, headers=ACT).status_code == 403
    assert client.post(path, headers={**ACT, "X-Yadtq-Token": "wrong"}).status_code == 403
    assert client.post(path, headers={"X-Yadtq-Token": "s3cret"}).status_code == 400  # no action header
    assert app.AsyncResult(handle.id).state == states.QUEUED
    assert client.post(path, headers={**ACT, "X-Yadtq-Token": "s3cret"}).status_code == 200
    assert app.AsyncResult(handle.id).state == states.REVOKED


def test_binding_beyond_this_machine_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(ConfigurationError, match="without a token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigurationError, match="without a token"):
        check_bind("192.168.1.5", None)
    with pytest.raises(ConfigurationError, match="empty"):
        check_bind("127.0.0.1", " ")


def test_a_schedule_is_listed_and_paused_from_the_api(app: YADTQ, serve_dashboard: Serve) -> None:
    app.add_periodic_task("hourly-add", app.tasks["d.add"].s(1, 2), every=3600)
    worker = Worker(app, name="ticker", concurrency=1).start()
    try:
        client = serve_dashboard(app)
        wait_for(lambda: client.get("/api/overview").json()["schedules"], 30, "the schedule listed")
        reply = client.post("/api/schedules/hourly-add/pause", headers=ACT, json_body={"paused": True})
        assert reply.status_code == 200, reply.text
        assert [s.paused for s in app.periodic_tasks() if s.name == "hourly-add"] == [True]
        client.post("/api/schedules/hourly-add/pause", headers=ACT, json_body={"paused": False})
        assert [s.paused for s in app.periodic_tasks() if s.name == "hourly-add"] == [False]
    finally:
        worker.stop(timeout=30)


def test_detail_shows_arguments_and_canvas_relations(app: YADTQ, worker: Worker,
                                                     serve_dashboard: Serve) -> None:
    add = app.tasks["d.add"]
    done = app.send_task("d.add", (2, 3), {})
    assert done.get(timeout=30) == 5
    chained = (add.s(1, 2) | add.s(10)).apply_async()
    assert chained.get(timeout=30) == 13
    first = chained.parent
    assert first is not None
    client = serve_dashboard(app)
    # A successful task's call is shown, saved by the worker when it started it.
    detail = wait_for(lambda: client.get(f"/api/tasks/{done.id}").json()["call"], 30, "the call")
    assert detail["args"] == ["2", "3"] and detail["parent_id"] is None
    # A chain's first step lists the second as its child; the second names its parent.
    children = wait_for(lambda: client.get(f"/api/tasks/{first.id}").json()["children"], 30,
                        "the chain's child")
    assert [(c["task_id"], c["name"], c["state"]) for c in children] == [(chained.id, "d.add", "success")]
    second = client.get(f"/api/tasks/{chained.id}").json()
    assert second["call"]["parent_id"] == first.id and second["call"]["args"] == ["3", "10"]
