"""The offset tracker: the committed position is the highest below which every offset is done."""

from __future__ import annotations

import random
import threading

from yadtq.transports.offsets import OffsetTracker

TP = ("yadtq.default", 0)
TP2 = ("yadtq.default", 1)


def test_nothing_handed_out_means_nothing_to_commit() -> None:
    tracker = OffsetTracker()
    assert tracker.position(TP) is None
    assert tracker.committable() == {}
    assert tracker.in_flight() == 0


def test_in_order_completion_advances_one_by_one() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.started(TP, offset)
    assert tracker.position(TP) == 0
    for offset in range(5):
        assert tracker.finished(TP, offset)
        assert tracker.position(TP) == offset + 1
    assert tracker.in_flight(TP) == 0


def test_out_of_order_completion_waits_for_the_lowest() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 15):
        tracker.started(TP, offset)
    for offset in (14, 12, 13, 11):
        tracker.finished(TP, offset)
        assert tracker.position(TP) == 10  # 10 is still running: no head-of-line skip
    assert tracker.in_flight(TP) == 1
    tracker.finished(TP, 10)
    assert tracker.position(TP) == 15
    assert tracker.committable() == {TP: 15}


def test_gaps_from_filtered_messages() -> None:
    """Offsets never handed out (transaction markers, compaction) do not block the position."""
    tracker = OffsetTracker()
    for offset in (3, 4, 9, 20):
        tracker.started(TP, offset)
    tracker.finished(TP, 3)
    tracker.finished(TP, 4)
    assert tracker.position(TP) == 9
    tracker.finished(TP, 20)
    assert tracker.position(TP) == 9
    tracker.finished(TP, 9)
    assert tracker.position(TP) == 21


def test_committable_reports_only_advances() -> None:
    tracker = OffsetTracker()
    tracker.started(TP, 0)
    tracker.started(TP2, 0)
    tracker.finished(TP, 0)
    assert tracker.committable() == {TP: 1, TP2: 0}
    tracker.mark_committed({TP: 1, TP2: 0})
    assert tracker.committable() == {}
    tracker.started(TP, 1)
    assert tracker.committable() == {}  # position is still 1
    tracker.finished(TP, 1)
    assert tracker.committable() == {TP: 2}
    assert tracker.committable([TP2]) == {}


def test_a_failed_commit_is_reported_again() -> None:
    tracker = OffsetTracker()
    tracker.started(TP, 7)
    tracker.finished(TP, 7)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.forget_committed([TP])
    assert tracker.committable() == {TP: 8}


def test_mark_committed_never_moves_back() -> None:
    tracker = OffsetTracker()
    tracker.started(TP, 0)
    tracker.finished(TP, 0)
    tracker.started(TP, 1)
    tracker.finished(TP, 1)
    tracker.mark_committed({TP: 2})
    tracker.mark_committed({TP: 1})  # a late report of an older commit
    assert tracker.committable() == {}


def test_revocation_drops_the_partition() -> None:
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.started(TP, offset)
        tracker.started(TP2, offset)
    assert tracker.drop(TP) == 3
    assert tracker.in_flight() == 3
    assert tracker.partitions() == [TP2]
    assert not tracker.finished(TP, 0)  # a late done() for a lost partition is ignored
    assert tracker.position(TP) is None
    assert TP not in tracker.committable()
    # Re-acquired later: starts afresh from what is handed out then.
    tracker.started(TP, 2)
    assert tracker.position(TP) == 2


def test_duplicates_are_ignored() -> None:
    tracker = OffsetTracker()
    assert tracker.started(TP, 5)
    assert not tracker.started(TP, 5)
    assert tracker.in_flight(TP) == 1
    assert tracker.finished(TP, 5)
    assert not tracker.finished(TP, 5)
    assert not tracker.finished(TP, 6)  # never handed out
    assert tracker.position(TP) == 6


def test_in_flight_by_partition() -> None:
    tracker = OffsetTracker()
    tracker.started(TP, 0)
    tracker.started(TP, 1)
    tracker.started(TP2, 0)
    tracker.finished(TP, 0)
    assert tracker.in_flight_by_partition() == {TP: 1, TP2: 1}


def _expected_position(started: list[int], done: set[int]) -> int:
    pending = [o for o in started if o not in done]
    return min(pending) if pending else max(started) + 1


def test_many_random_orders_match_a_naive_model() -> None:
    rng = random.Random(20240611)
    for _ in range(200):
        tracker = OffsetTracker()
        offsets = sorted(rng.sample(range(400), rng.randint(1, 120)))  # with gaps
        handed: list[int] = []
        done: set[int] = set()
        committed = -1
        pending_start = list(offsets)
        while pending_start or len(done) < len(offsets):
            outstanding = [o for o in handed if o not in done]
            if pending_start and (not outstanding or rng.random() < 0.5):
                offset = pending_start.pop(0)
                tracker.started(TP, offset)
                handed.append(offset)
            else:
                offset = rng.choice(outstanding)
                assert tracker.finished(TP, offset)
                done.add(offset)
            expected = _expected_position(handed, done)
            assert tracker.position(TP) == expected
            advanced = tracker.committable()
            if expected > committed:
                assert advanced == {TP: expected}
                if rng.random() < 0.7:
                    tracker.mark_committed(advanced)
                    committed = expected
            else:
                assert advanced == {}
        assert tracker.position(TP) == offsets[-1] + 1
        assert tracker.in_flight() == 0


def test_long_running_head_keeps_memory_bounded() -> None:
    tracker = OffsetTracker()
    tracker.started(TP, 0)  # the slow task
    for offset in range(1, 20_001):
        tracker.started(TP, offset)
        tracker.finished(TP, offset)
    assert tracker.position(TP) == 0
    assert len(tracker._partitions[TP].heap) < 200  # finished offsets were compacted away
    tracker.finished(TP, 0)
    assert tracker.position(TP) == 20_001


def test_finished_from_many_threads() -> None:
    tracker = OffsetTracker()
    offsets = list(range(10_000))
    for offset in offsets:
        tracker.started(TP, offset)
    random.Random(7).shuffle(offsets)
    chunks = [offsets[i::8] for i in range(8)]
    threads = [threading.Thread(target=lambda c=c: [tracker.finished(TP, o) for o in c]) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert tracker.in_flight() == 0
    assert tracker.position(TP) == 10_000
