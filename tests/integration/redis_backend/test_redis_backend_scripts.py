"""The Redis backend's Lua scripts: atomic claims, dedupe and revokes under contention, replays."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any, Callable

import pytest
import redis

from yadtq.transports.base import (
    BUSY,
    REVOKED,
    RUN,
    SKIP,
    Claim,
    StateChange,
    WorkerInfo,
)
from yadtq.transports.redis import (
    INDEX_KEEPER,
    PROCESSING_KEY,
    RETRYING_KEY,
    REVOKED_KEY,
    STATS_KEY,
    RedisBackend,
)

from .support import DEADLINE, success_change, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.integration]


class LosingConnection(redis.Connection):
    """Loses one reply, after the server executed the command, when ``lose_next`` is set."""

    lose_next = False

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        if LosingConnection.lose_next:
            LosingConnection.lose_next = False
            raise redis.TimeoutError("reply lost (simulated)")
        return response


# --------------------------------------------------------------------------- Lua atomicity


def test_concurrent_claims_of_the_same_task_grant_exactly_one_run(backend: RedisBackend) -> None:
    now = time.time()
    instances = [f"inst-{n}" for n in range(4)]
    for n, instance in enumerate(instances):
        backend.heartbeat(WorkerInfo(f"w{n}", instance, last_heartbeat=now))
    ids = [f"task-{i}" for i in range(200)]
    barrier = threading.Barrier(4)
    decisions: dict[str, list[tuple[str, str]]] = {t: [] for t in ids}
    lock = threading.Lock()

    def claimant(n: int) -> None:
        order = ids[:]
        random.Random(n).shuffle(order)
        barrier.wait(DEADLINE)
        for batch_start in range(0, len(order), 16):
            batch = order[batch_start:batch_start + 16]
            got = backend.claim([Claim(t, "add", "q", 0, instances[n], f"w{n}", time.time())
                                 for t in batch], now - 15)
            with lock:
                for t, d in zip(batch, got):
                    decisions[t].append((d, instances[n]))

    threads = [threading.Thread(target=claimant, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    for task_id, got in decisions.items():
        runs = [inst for d, inst in got if d == RUN]
        assert len(got) == 4 and len(runs) == 1, (task_id, got)
        assert sorted(d for d, _ in got) == [BUSY, BUSY, BUSY, RUN]
        record = backend.get([task_id])[0]
        assert record is not None and record.state == "processing" and record.instance == runs[0]
        assert [h[0] for h in record.history] == ["processing"]


def test_dedupe_under_contention_yields_one_task_id(backend: RedisBackend) -> None:
    barrier = threading.Barrier(4)
    results: list[list[str]] = [[] for _ in range(4)]
    candidates: list[set[str]] = [set() for _ in range(4)]

    def submitter(n: int) -> None:
        barrier.wait(DEADLINE)
        for _ in range(250):
            mine = uuid.uuid4().hex
            candidates[n].add(mine)
            results[n].append(backend.claim_dedupe("add:2,3", mine, 60.0))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    winners = {w for r in results for w in r}
    assert len(winners) == 1
    assert sum(len(r) for r in results) == 1000
    assert winners <= set().union(*candidates)


def test_dedupe_moves_on_from_a_failed_task_and_expires(backend: RedisBackend, client: redis.Redis) -> None:
    assert backend.claim_dedupe("k", "first", 60.0) == "first"
    assert backend.claim_dedupe("k", "second", 60.0) == "first"
    backend.record([StateChange("first", "failed", time.time())])
    assert backend.claim_dedupe("k", "third", 0.2) == "third"
    assert 0 < client.pttl(backend.key("dedupe:", "k")) <= 200
    wait_for(lambda: client.exists(backend.key("dedupe:", "k")) == 0)
    assert backend.claim_dedupe("k", "fourth", 60.0) == "fourth"


def test_a_change_never_leaves_a_ready_state_and_counters_follow(backend: RedisBackend,
                                                                 client: redis.Redis) -> None:
    now = time.time()
    backend.record([
        StateChange("a", "processing", now, worker="w1", name="add"),
        StateChange("a", "retrying", now + 1, worker="w1", eta=now + 5),
        StateChange("a", "success", now + 2, worker="w1", result=b"\x05"),
        StateChange("a", "failed", now + 3, worker="w1"),  # refused: already ready
        StateChange("b", "failed", now, worker="w2", name="div"),
    ])
    record = backend.get(["a"])[0]
    assert record is not None and record.state == "success" and record.result == b"\x05"
    assert [h[0] for h in record.history] == ["processing", "retrying", "success"]
    assert record.eta == now + 5 and record.name == "add"
    stats = client.hgetall(backend.key(STATS_KEY))
    assert stats == {b"succeeded": b"1", b"failed": b"1", b"retried": b"1"}


def test_claim_is_busy_for_a_live_instance_and_takes_over_from_a_dead_one(
        backend: RedisBackend) -> None:
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    assert backend.claim([Claim("t", "add", "q", 0, "i1", "w1", now)], now - 15) == [RUN]
    assert backend.claim([Claim("t", "add", "q", 0, "i2", "w2", now)], now - 15) == [BUSY]
    # The same worker name restarted: its old instance is no longer alive.
    backend.heartbeat(WorkerInfo("w1", "i9", last_heartbeat=now))
    assert backend.claim([Claim("t", "add", "q", 0, "i2", "w2", now)], now - 15) == [RUN]
    backend.heartbeat(WorkerInfo("w2", "i2", last_heartbeat=now, state="stopped"))
    assert backend.claim([Claim("t", "add", "q", 0, "i3", "w3", now)], now - 15) == [RUN]


def test_a_claim_replayed_after_a_lost_reply_is_still_granted(
        make_backend: Callable[..., RedisBackend]) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    backend = make_backend(backend_options={"connection_class": LosingConnection,
                                            "retry": Retry(NoBackoff(), 1)})
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    backend.claim([Claim("warm", "add", "q", 0, "i1", "w1", now)], now)  # the script is loaded
    claims = [Claim("t", "add", "q", 0, "i1", "w1", now)]
    LosingConnection.lose_next = True
    # redis-py retries the script after the lost reply: the replay must not turn the
    # grant into a SKIP (nobody would run the task), nor record it twice.
    assert backend.claim(claims, now - 15) == [RUN]
    assert not LosingConnection.lose_next
    record = backend.get(["t"])[0]
    assert record is not None and [h[0] for h in record.history] == ["processing"]
    # the instance holding the task may claim it again (the worker retrying a claim) ...
    assert backend.claim(claims, now - 15) == [RUN]
    # ... while another live instance may not
    backend.heartbeat(WorkerInfo("w2", "i2", last_heartbeat=now))
    assert backend.claim([Claim("t", "add", "q", 0, "i2", "w2", now)], now - 15) == [BUSY]


def test_revoke_marks_and_claim_records_revoked(backend: RedisBackend, client: redis.Redis) -> None:
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    backend.claim([Claim("running", "add", "q", 0, "i1", "w1", now)], now - 15)
    backend.revoke(["waiting", "running"], now)
    records = dict(zip(["waiting", "running"], backend.get(["waiting", "running"])))
    assert records["waiting"] is not None and records["waiting"].state == "revoked"
    assert records["running"] is not None and records["running"].state == "processing"
    marker_ttl = client.pttl(backend.key(REVOKED_KEY, "running"))
    assert 0 < marker_ttl <= backend.settings.result_expires * 1000
    assert backend.claim([Claim("waiting", "add", "q", 0, "i2", "w2", now)], now - 15) == [SKIP]
    backend.forget(["waiting"])
    assert backend.claim([Claim("waiting", "add", "q", 0, "i2", "w2", now + 1)], now - 15) == [REVOKED]
    record = backend.get(["waiting"])[0]
    assert record is not None and record.state == "revoked" and record.worker == "w2"


def test_the_task_indexes_are_skiplists_and_their_keeper_is_no_task(backend: RedisBackend,
                                                                    client: redis.Redis) -> None:
    now = time.time()
    backend.heartbeat(WorkerInfo("w1", "i1", last_heartbeat=now))
    ids = [f"t{n}" for n in range(3)]
    assert backend.claim([Claim(i, "add", "q", 0, "i1", "w1", now + n) for n, i in enumerate(ids)],
                         now - 15) == [RUN] * 3
    processing = backend.key(PROCESSING_KEY)
    assert client.object("encoding", processing) == b"skiplist"
    assert client.zscore(processing, INDEX_KEEPER) == float("inf")
    snapshot = backend.snapshot()
    assert snapshot.processing == 3
    assert [t.task_id for t in snapshot.processing_tasks] == ids
    backend.record([StateChange("t0", "retrying", now + 5, worker="w1", eta=now + 60), success_change("t1")])
    snapshot = backend.snapshot()
    assert (snapshot.processing, snapshot.retrying) == (1, 1)
    assert [t.task_id for t in snapshot.processing_tasks] == ["t2"]
    assert [t.task_id for t in snapshot.retrying_tasks] == ["t0"]
    assert client.object("encoding", backend.key(RETRYING_KEY)) == b"skiplist"
    backend.record([success_change("t2")])
    snapshot = backend.snapshot(limit=1)
    assert snapshot.processing == 0 and snapshot.processing_tasks == ()
    assert client.zrange(processing, 0, -1) == [INDEX_KEEPER.encode()]
