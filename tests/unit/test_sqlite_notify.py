"""The SQLite backend's cross-process wake-ups: a notifier lists the waiters' sockets
again only when their directory changed, and never misses a waiter that just came."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from yadtq.transports.sqlite import notify
from yadtq.transports.sqlite.notify import Notifier


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every directory the notifier lists."""
    seen: list[str] = []
    scandir = os.scandir

    def counting(path: str) -> object:
        seen.append(path)
        return scandir(path)

    monkeypatch.setattr(notify.os, "scandir", counting)
    return seen


def test_a_waiter_that_binds_right_after_a_notification_is_notified_next(
        tmp_path: Path, listings: list[str]) -> None:
    notifier = Notifier(str(tmp_path / "db.sqlite"))
    first = notifier.listen()
    assert first is not None
    notifier.notify(["a"])
    second = notifier.listen()  # most likely in the same file-system clock tick
    assert second is not None
    try:
        notifier.notify(["b"])
        assert first.wait_for(b"a", 1.0) and first.wait_for(b"b", 1.0)
        assert second.wait_for(b"b", 1.0)
        assert len(listings) == 2  # a listing this close to the change is not trusted
    finally:
        first.close()
        second.close()
        notifier.close()


def test_an_unchanged_directory_is_not_listed_again(tmp_path: Path, listings: list[str]) -> None:
    notifier = Notifier(str(tmp_path / "db.sqlite"))
    waiter = notifier.listen()
    assert waiter is not None
    try:
        time.sleep(notify.RACY_LISTING * 2)
        for task_id in ("a", "b", "c"):
            notifier.notify([task_id])
        assert len(listings) == 1
        for task_id in (b"a", b"b", b"c"):
            assert waiter.wait_for(task_id, 1.0)
        late = notifier.listen()  # the directory changes: listed again
        assert late is not None
        try:
            notifier.notify(["d"])
            assert late.wait_for(b"d", 1.0)
            assert len(listings) == 2
        finally:
            late.close()
    finally:
        waiter.close()
        notifier.close()


def test_a_file_system_stamping_whole_seconds_never_hides_a_new_waiter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_seconds(path: str) -> int:
        return os.stat(path).st_mtime_ns // 1_000_000_000 * 1_000_000_000

    monkeypatch.setattr(notify, "_mtime_ns", whole_seconds)
    notifier = Notifier(str(tmp_path / "db.sqlite"))
    first = notifier.listen()
    assert first is not None
    time.sleep(notify.RACY_LISTING * 2)  # a fine-grained clock would trust the next listing
    notifier.notify(["a"])
    second = notifier.listen()  # within the same second, mostly: the same mtime
    assert second is not None
    try:
        notifier.notify(["b"])
        assert second.wait_for(b"b", 1.0)
    finally:
        first.close()
        second.close()
        notifier.close()


def test_a_threads_waiter_is_kept_between_waits_and_dropped_when_the_thread_ends(
        tmp_path: Path, listings: list[str]) -> None:
    notifier = Notifier(str(tmp_path / "db.sqlite"))
    try:
        mine = notifier.waiter()
        assert mine is not None and notifier.waiter() is mine
        time.sleep(notify.RACY_LISTING * 2)
        notifier.notify(["stale"])  # came while nobody waited: dropped by the next wait
        again = notifier.waiter()
        assert again is mine
        assert not mine.wait_for(b"stale", 0.05)
        notifier.notify(["fresh"])
        assert mine.wait_for(b"fresh", 1.0)
        assert len(listings) == 1  # the directory did not change between the waits

        theirs: list[notify.Listener] = []
        other = threading.Thread(target=lambda: theirs.append(notifier.waiter()))  # type: ignore[arg-type]
        other.start()
        other.join(5)
        assert theirs and theirs[0] is not mine and os.path.exists(theirs[0].path)
        late = threading.Thread(target=notifier.waiter)
        late.start()
        late.join(5)
        assert not os.path.exists(theirs[0].path)  # its thread ended: closed as another came
        assert os.path.exists(mine.path)
    finally:
        notifier.close()
    assert not os.path.exists(mine.path)
    assert not os.path.exists(notifier.directory)


def test_a_waiter_whose_socket_file_was_removed_is_bound_anew(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "db.sqlite"))
    try:
        first = notifier.waiter()
        assert first is not None
        os.unlink(first.path)  # e.g. a cleaner emptied the directory
        second = notifier.waiter()
        assert second is not None and second is not first and os.path.exists(second.path)
        notifier.notify(["x"])
        assert second.wait_for(b"x", 1.0)
    finally:
        notifier.close()
