"""The SQLite backend's worker registry: heartbeats (with the backend's liveness watch,
``yadtq_watch``), the workers' latest reports and the failure history."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

from ...envelope import pack
from ..base import WORKER_RUNNING, WorkerFailure, WorkerInfo, silent_running
from ..records import PRUNE_BATCH, Watch, instance_alive, silence, watch_after_beat
from .codec import _unpack_worker
from .schema import _Database

if TYPE_CHECKING:
    from ...settings import Settings


class SqliteWorkers:
    """Mixed into :class:`~yadtq.transports.sqlite.SqliteBackend`; its ``_watch`` and
    ``_alive_in`` also serve the backend's claims and slots (liveness on the backend's clock)."""

    _db: _Database
    settings: Settings

    @staticmethod
    def _watch(conn: sqlite3.Connection, now: float) -> Watch:
        row = conn.execute("SELECT since, last FROM yadtq_watch WHERE id = 1").fetchone()
        return Watch(now) if row is None else Watch(now, float(row[0]), float(row[1]))

    def _alive_in(self, conn: sqlite3.Connection, now: float) -> Callable[[str], bool]:
        """Whether a worker instance is alive, read in ``conn``'s transaction: each instance
        once, and the watch only when some instance is asked about (most claims never ask:
        their tasks have no record yet)."""
        watch: Optional[Watch] = None
        known: dict[str, bool] = {}

        def alive(instance: str) -> bool:
            nonlocal watch
            if instance not in known:
                if watch is None:
                    watch = self._watch(conn, now)
                row = conn.execute("SELECT last_heartbeat FROM yadtq_workers"
                                   " WHERE instance = ? AND state = 'running'", (instance,)).fetchone()
                known[instance] = instance_alive(
                    None if row is None else float(row[0]), watch,
                    self.settings.worker_unresponsive_after, self.settings.heartbeat_interval)
            return known[instance]
        return alive

    def heartbeat(self, info: WorkerInfo) -> None:
        """Store the report stamped with this machine's clock, move the watch on and
        prune at most ``PRUNE_BATCH`` workers older than ``worker_retention``."""
        now = time.time()
        with self._db.transaction() as conn:
            watch = watch_after_beat(self._watch(conn, now), info.resumed)
            conn.execute("INSERT OR REPLACE INTO yadtq_watch (id, since, last) VALUES (1, ?, ?)",
                         (watch.since, watch.last))
            conn.execute(
                "INSERT OR REPLACE INTO yadtq_workers (worker, instance, state, last_heartbeat,"
                " info) VALUES (?, ?, ?, ?, ?)",
                (info.worker, info.instance, info.state, now, pack(asdict(info))))
            conn.execute(
                "DELETE FROM yadtq_workers WHERE rowid IN (SELECT rowid FROM yadtq_workers"
                " WHERE last_heartbeat < ? LIMIT ?)", (now - self.settings.worker_retention, PRUNE_BATCH))

    def workers(self) -> list[WorkerInfo]:
        return self._reports()

    def silent_workers(self, after: float) -> list[WorkerInfo]:
        """Running workers silent for more than ``after`` seconds: only the rows of running
        workers heard before then are read, not those of the stopped ones the registry keeps."""
        return silent_running(self._reports("WHERE state = ? AND last_heartbeat < ?",
                                            (WORKER_RUNNING, time.time() - after)), after)

    def _reports(self, where: str = "", params: tuple[Any, ...] = ()) -> list[WorkerInfo]:
        """The reports of the rows ``where`` selects (all without), with their silences on
        the watch read in the same transaction."""
        now = time.time()
        with self._db.reading() as conn:
            conn.execute("BEGIN")
            try:
                watch = self._watch(conn, now)
                rows = conn.execute(f"SELECT info, last_heartbeat FROM yadtq_workers {where}"
                                    " ORDER BY worker", params).fetchall()
            finally:
                conn.execute("COMMIT")
        return [replace(_unpack_worker(blob), last_heartbeat=seen, silent=silence(seen, watch))
                for blob, seen in rows]

    def record_failure(self, failure: WorkerFailure) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO yadtq_failures (instance, worker, last_heartbeat, detected)"
                " VALUES (?, ?, ?, ?)",
                (failure.instance, failure.worker, failure.last_heartbeat, failure.detected))
            conn.execute(
                "DELETE FROM yadtq_failures WHERE id NOT IN"
                " (SELECT id FROM yadtq_failures ORDER BY id DESC LIMIT ?)",
                (self.settings.failure_history,))

    def failures(self, limit: int = 100) -> list[WorkerFailure]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT worker, instance, last_heartbeat, detected FROM yadtq_failures"
                " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [WorkerFailure(worker=w, instance=i, last_heartbeat=hb, detected=d)
                for w, i, hb, d in rows]
