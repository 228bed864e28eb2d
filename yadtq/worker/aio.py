"""``--pool asyncio``: tasks run as coroutines of one event loop, up to ``-c`` at once.

``async def`` tasks run on the loop itself, so a thousand tasks that mostly await
cost a thousand coroutines, not a thousand threads. Plain (sync) tasks run in a
small thread executor beside it, so one worker serves both kinds.
"""

from __future__ import annotations

import concurrent.futures
import logging
from typing import TYPE_CHECKING

from .loop import LoopThread, run_attempt
from .pools import Job, Pool, Sink, Spawn, plain_spawn

if TYPE_CHECKING:
    from ..app import YADTQ

logger = logging.getLogger(__name__)

#: Most threads that run plain (sync) tasks on an asyncio-pool worker.
SYNC_THREADS = 8


class AsyncioPool(Pool):
    """Runs every job on one event loop; sync tasks in a thread executor of its own."""

    kind = "asyncio"

    def __init__(self, app: YADTQ, size: int, worker: str, sink: Sink,
                 spawn: Spawn = plain_spawn) -> None:
        super().__init__(app, size, worker, sink, spawn)
        self._loop = LoopThread("yadtq-asyncio")
        self._sync = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(size, SYNC_THREADS), thread_name_prefix="yadtq-sync")

    def start(self) -> None:
        self._loop.start()

    def submit(self, job: Job) -> None:
        self._begin(job)
        self._loop.spawn(self._run(job))

    async def _run(self, job: Job) -> None:
        if self._may_start(job):
            self._finish(job, await run_attempt(self.app, job.envelope, self.worker, self._sync))

    def stop(self) -> None:
        self._loop.stop()
        self._sync.shutdown(wait=False)
