"""The result backend contract, run against every backend: dedupe keys."""

from __future__ import annotations

import threading
import time
from typing import Callable

from yadtq.states import FAILED, SUCCESS
from yadtq.transports.base import (
    ErrorInfo,
    ResultBackend,
    StateChange,
)

from .backend_support import DEADLINE, new_id

# --------------------------------------------------------------------------- dedupe


def test_claim_dedupe_returns_the_earlier_task_until_it_fails(backend: ResultBackend) -> None:
    key = f"dedupe-{new_id()}"
    first, second, third, fourth = new_id(), new_id(), new_id(), new_id()
    assert backend.claim_dedupe(key, first, 60.0) == first
    assert backend.claim_dedupe(key, second, 60.0) == first  # first not recorded yet: queued
    backend.record([StateChange(first, SUCCESS, time.time(), result=b"1")])
    assert backend.claim_dedupe(key, second, 60.0) == first  # result caching
    other_key = f"dedupe-{new_id()}"
    assert backend.claim_dedupe(other_key, third, 60.0) == third
    backend.record([StateChange(third, FAILED, time.time(),
                                error=ErrorInfo("builtins.ValueError", "x"))])
    assert backend.claim_dedupe(other_key, fourth, 60.0) == fourth
    assert backend.claim_dedupe(other_key, new_id(), 60.0) == fourth


def test_release_dedupe_drops_the_key_only_for_its_own_task(backend: ResultBackend) -> None:
    key = f"dedupe-{new_id()}"
    never_sent, other, retried = new_id(), new_id(), new_id()
    assert backend.claim_dedupe(key, never_sent, 60.0) == never_sent
    backend.release_dedupe(key, other)  # not the holder: kept
    assert backend.claim_dedupe(key, other, 60.0) == never_sent
    backend.release_dedupe(key, never_sent)
    assert backend.claim_dedupe(key, retried, 60.0) == retried
    backend.release_dedupe(f"dedupe-{new_id()}", retried)  # an unknown key is no error


def test_claim_dedupe_key_expires_after_its_ttl(backend: ResultBackend) -> None:
    key = f"dedupe-{new_id()}"
    first, second = new_id(), new_id()
    assert backend.claim_dedupe(key, first, 0.5) == first
    end = time.monotonic() + DEADLINE
    winner = first
    while winner == first and time.monotonic() < end:
        time.sleep(0.05)
        winner = backend.claim_dedupe(key, second, 60.0)
    assert winner == second


def test_claim_dedupe_is_atomic_across_threads(
        backend_peers: Callable[[int], list[ResultBackend]]) -> None:
    backends = backend_peers(2)
    key = f"dedupe-{new_id()}"
    winners: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def submit(backend: ResultBackend) -> None:
        start.wait()
        mine = [backend.claim_dedupe(key, new_id(), 60.0) for _ in range(250)]
        with lock:
            winners.extend(mine)

    threads = [threading.Thread(target=submit, args=(backends[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 40)
    assert len(winners) == 1000
    assert len(set(winners)) == 1
