"""What is particular to the Redis backend: configuration, round trips, TTLs and events, leases.
Its Lua atomicity is in ``test_redis_backend_scripts.py``, waiting and workers in
``test_redis_backend_wait.py``.

The behaviour every backend shares is held to ``memory.py`` by ``tests/contract``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import pytest
import redis

from yadtq.exceptions import BackendUnavailable, ConfigurationError
from yadtq.settings import Settings
from yadtq.transports.base import (
    RUN,
    Claim,
    Message,
    ScheduledMessage,
    StateChange,
    TaskRecord,
    create_backend,
)
from yadtq.transports.redis import (
    EVENTS_KEY,
    EVENTS_MAXLEN,
    TASK_KEY,
    RedisBackend,
)

from .support import DEADLINE, success_change, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.integration]


class CountingConnection(redis.Connection):
    """Counts the requests each thread writes: one per command, one per pipeline."""

    sends: dict[int, int] = {}
    lock = threading.Lock()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with self.lock:
            me = threading.get_ident()
            self.sends[me] = self.sends.get(me, 0) + 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def _round_trips(action: Callable[[], Any]) -> int:
    me = threading.get_ident()
    before = CountingConnection.sends.get(me, 0)
    action()
    return CountingConnection.sends.get(me, 0) - before


# --------------------------------------------------------------------------- configuration


def test_create_backend_finds_redis_by_url(redis_url: str, unique: str) -> None:
    backend = create_backend(redis_url, Settings(backend_options={"prefix": f"test-{unique}"}))
    try:
        assert isinstance(backend, RedisBackend)
        assert backend.key(TASK_KEY, "x") == f"test-{unique}:task:x"
        assert backend.get(["nothing-here"]) == [None]
    finally:
        backend.close()


def test_rediss_url_with_user_and_password_constructs_without_connecting() -> None:
    backend = RedisBackend("rediss://alice:secret@example.invalid:6380/3", Settings())
    kwargs = backend._redis.get_connection_kwargs()
    assert (kwargs["username"], kwargs["password"], kwargs["host"], kwargs["port"], kwargs["db"]) == (
        "alice", "secret", "example.invalid", 6380, 3)
    assert issubclass(backend._redis.connection_pool.connection_class, redis.SSLConnection)
    assert backend.key(TASK_KEY, "t") == "yadtq:task:t"
    plain = RedisBackend("redis://:pw@example.invalid/2", Settings(backend_options={"prefix": "p"}))
    assert plain._redis.get_connection_kwargs()["password"] == "pw"
    assert not issubclass(plain._redis.connection_pool.connection_class, redis.SSLConnection)
    assert plain.key(TASK_KEY, "t") == "p:task:t"


def test_bad_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RedisBackend("redis://example.invalid:notaport/0", Settings())


def test_unreachable_server_raises_backend_unavailable() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", Settings(backend_options={"socket_connect_timeout": 1}))
    with pytest.raises(BackendUnavailable) as info:
        backend.record([success_change("t")])
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(BackendUnavailable):
        backend.get(["t"])
    backend.close()


@pytest.mark.timeout(120)
def test_a_redis_that_never_answers_raises_within_the_socket_timeout() -> None:
    """A black hole: the kernel accepts the connection, nothing ever answers. With the
    default timeouts a call raises BackendUnavailable (redis-py's own default waits
    forever); ``backend_options`` override them."""
    import socket

    from yadtq.transports.redis.backend import SOCKET_TIMEOUT

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    url = f"redis://127.0.0.1:{hole.getsockname()[1]}/0"
    try:
        for options, bound in (({}, SOCKET_TIMEOUT * 3), ({"socket_timeout": 0.5}, SOCKET_TIMEOUT)):
            backend = RedisBackend(url, Settings(backend_options=options))
            raised: list[BaseException] = []

            def call(backend: RedisBackend = backend, raised: list[BaseException] = raised) -> None:
                try:
                    backend.get(["t"])
                except BaseException as exc:
                    raised.append(exc)

            started = time.monotonic()
            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            caller.join(60)
            assert not caller.is_alive(), f"a call to a silent redis hung ({options})"
            assert [type(e) for e in raised] == [BackendUnavailable]
            assert time.monotonic() - started < bound, options
            backend.close()
    finally:
        hole.close()


# --------------------------------------------------------------------------- one round trip


@pytest.mark.parametrize("protocol", [2, 3])
def test_records_read_alike_with_either_protocol(make_backend: Callable[..., RedisBackend],
                                                 protocol: int) -> None:
    backend = make_backend(backend_options={"protocol": protocol})
    now = time.time()
    backend.record([success_change("one", now), success_change("two", now)])
    one, two, missing = backend.get(["one", "two", "missing"])
    assert one is not None and two is not None and missing is None
    assert (one.state, one.result, one.worker, one.history[-1][0]) == ("success", b"\x05", "w1", "success")
    assert [r.task_id if r else None for r in backend.get(["two"])] == ["two"]


def test_a_refused_command_leaves_the_connection_clean(backend: RedisBackend, client: redis.Redis) -> None:
    """Every reply of a batch is read before the first refusal is raised, so the pooled
    connection holds no stale reply for its next user."""
    backend.record([success_change("kept"), success_change("other", worker="w2")])
    client.set(backend.key(TASK_KEY, "not-a-hash"), b"plain string")
    with pytest.raises(BackendUnavailable, match="WRONGTYPE"):
        backend.get(["kept", "not-a-hash", "other"])
    for _ in range(3):  # the pool's one connection, used again: never "other"'s reply
        (kept,) = backend.get(["kept"])
        assert kept is not None and kept.worker == "w1"
    assert backend.claim([Claim("next", "add", "q", 0, "inst", "w1", time.time())]) == [RUN]


def test_scripts_the_server_forgot_are_loaded_again(backend: RedisBackend, client: redis.Redis) -> None:
    """A restarted Redis has no scripts: claims and records answered NOSCRIPT load them."""
    now = time.time()
    assert backend.claim([Claim("before", "add", "q", 0, "inst", "w1", now)], now) == [RUN]
    client.script_flush()
    assert backend.claim([Claim("after", "add", "q", 0, "inst", "w1", now)], now) == [RUN]
    client.script_flush()
    backend.record([success_change("after")])
    assert [r.state if r else None for r in backend.get(["before", "after"])] == ["processing", "success"]
    claim, record = backend._scripts["claim"], backend._scripts["record"]
    assert client.script_exists(claim.sha, record.sha) == [False, True]



def test_every_batch_is_one_round_trip(make_backend: Callable[..., RedisBackend]) -> None:
    backend = make_backend(backend_options={"connection_class": CountingConnection})
    backend.get(["warm-up"])  # the pool's connection is made and handshaken outside the count
    now = time.time()
    ids = [f"t{i}" for i in range(64)]
    scheduled = [ScheduledMessage(f"s{i}", now + 60, Message("q", b"body")) for i in range(8)]
    claims = [Claim(t, "add", "q", 0, "inst", "w1", now, created=now) for t in ids]
    # Lua scripts are loaded on first use (NOSCRIPT, then SCRIPT LOAD): run each once first.
    backend.claim([Claim("warm", "add", "q", 0, "inst", "w1", now)], now)
    backend.record([success_change("warm")], scheduled[:1])
    backend.revoke(["warm-r"], now)
    backend.claim_due(0.0, 1, 1.0)

    assert _round_trips(lambda: backend.claim(claims, now - 15)) == 1
    assert _round_trips(lambda: backend.record([success_change(t) for t in ids], scheduled)) == 1
    got: list[Optional[TaskRecord]] = []
    assert _round_trips(lambda: got.extend(backend.get(ids))) == 1
    assert [r.state if r else None for r in got] == ["success"] * 64
    states: list[Optional[str]] = []
    backend.states(["warm"])
    assert _round_trips(lambda: states.extend(backend.states(ids))) == 1
    assert states == ["success"] * 64
    assert _round_trips(lambda: backend.revoke(ids[:10], now)) == 1
    due: list[ScheduledMessage] = []
    assert _round_trips(lambda: due.extend(backend.claim_due(now + 61, 100, 30.0))) == 1
    assert {d.task_id for d in due} == {f"s{i}" for i in range(8)}
    assert _round_trips(lambda: backend.release_due(due)) == 1
    assert _round_trips(lambda: backend.forget(ids)) == 1
    assert backend.get(ids) == [None] * 64


def test_a_thousand_concurrent_async_waits_share_one_subscription(
        backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """``asyncio.gather`` of a thousand ``aget`` on a fresh loop: one inbox is opened and
    all wait on it (each opening its own exhausted connections and timed out)."""
    import asyncio

    import yadtq.transports.redis.backend as backend_module

    opened: list[Any] = []

    class Spy(backend_module.AsyncInbox):
        async def open(self) -> Any:
            opened.append(self)
            return await super().open()

    monkeypatch.setattr(backend_module, "AsyncInbox", Spy)
    ids = [f"many-{i}" for i in range(1000)]
    backend.record([success_change(t) for t in ids[:500]])

    async def waits() -> list[Optional[TaskRecord]]:
        pending = [asyncio.ensure_future(backend.wait_async(t, DEADLINE)) for t in ids]
        await asyncio.sleep(0.2)
        backend.record([success_change(t) for t in ids[500:]])  # the rest by notification
        return await asyncio.gather(*pending)

    records = asyncio.run(asyncio.wait_for(waits(), 60))
    assert [r.state if r else None for r in records] == ["success"] * 1000
    assert len(opened) == 1


# --------------------------------------------------------------------------- TTL and events


def test_every_write_sets_the_record_ttl(make_backend: Callable[..., RedisBackend],
                                         client: redis.Redis) -> None:
    backend = make_backend(result_expires=30.0)
    now = time.time()
    key = backend.key(TASK_KEY, "t")
    backend.claim([Claim("t", "add", "q", 0, "i1", "w1", now)], now)
    client.persist(key)
    backend.record([StateChange("t", "retrying", now, eta=now + 1)])
    assert 0 < client.pttl(key) <= 30_000
    client.persist(key)
    backend.claim([Claim("t", "add", "q", 0, "i1", "w1", now)], now)
    assert 0 < client.pttl(key) <= 30_000

    short = make_backend(result_expires=0.2)
    short.record([success_change("gone")])
    assert short.get(["gone"])[0] is not None
    wait_for(lambda: short.get(["gone"]) == [None])


def test_no_events_stream_is_written_unless_asked(backend: RedisBackend, client: redis.Redis) -> None:
    now = time.time()
    backend.claim([Claim("c", "add", "q", 0, "i1", "w1", now)], now)
    backend.record([success_change("c"), StateChange("r", "processing", now, worker="w1", name="add")])
    backend.revoke(["v"], now)
    assert [r.state for r in backend.get(["c", "r", "v"]) if r] == ["success", "processing", "revoked"]
    assert client.exists(backend.key(EVENTS_KEY)) == 0


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_events_option_must_be_a_boolean(redis_url: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="bad redis events option"):
        RedisBackend(redis_url, Settings(backend_options={"events": value}))


def test_events_stream_has_one_entry_per_change_and_is_capped(
        make_backend: Callable[..., RedisBackend], client: redis.Redis) -> None:
    backend = make_backend(backend_options={"events": True})
    now = time.time()
    backend.record([StateChange("first", "processing", now, worker="w1", name="add")])
    entries: Any = client.xrange(backend.key(EVENTS_KEY))
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"id"] == b"first" and fields[b"name"] == b"add"
    assert fields[b"state"] == b"processing" and fields[b"worker"] == b"w1"
    assert float(fields[b"ts"]) == now
    total = EVENTS_MAXLEN + 2_000
    for start in range(0, total, 500):
        backend.record([success_change(f"t{i}") for i in range(start, start + 500)])
    length = client.xlen(backend.key(EVENTS_KEY))
    # MAXLEN ~ trims whole stream nodes (100 entries each by default), so a little over is fine.
    assert EVENTS_MAXLEN <= length <= EVENTS_MAXLEN + 200
    newest: Any = client.xrevrange(backend.key(EVENTS_KEY), count=1)
    last = newest[0][1]
    assert last[b"id"] == f"t{total - 1}".encode() and last[b"state"] == b"success"


# --------------------------------------------------------------------------- schedule


def test_a_lease_that_expires_makes_the_entry_claimable_again(backend: RedisBackend) -> None:
    now = time.time()
    entries = [ScheduledMessage(f"s{i}", now + i, Message("q", f"body{i}".encode(), b"key",
                                                          {"yadtq-task": b"add"})) for i in range(3)]
    backend.record([StateChange(e.task_id, "scheduled", now, eta=e.due) for e in entries], entries)
    assert backend.next_due() == now
    first = backend.claim_due(now + 1, 10, lease=5.0)
    assert first == entries[:2]
    assert backend.next_due() == now + 2
    assert backend.claim_due(now + 1.5, 10, lease=5.0) == []
    # The claimant died: once its lease is over, another caller gets the entries back.
    again = backend.claim_due(now + 6.5, 10, lease=5.0)
    assert sorted(again, key=lambda e: e.due) == entries
    backend.release_due(again[:1])
    assert backend.claim_due(now + 12, 10, lease=5.0) == [e for e in again[1:]]
    backend.release_due(again[1:])
    assert backend.claim_due(now + 100, 10, lease=5.0) == []
    assert backend.next_due() is None
