"""Waking ``wait()`` across processes for the SQLite backend: Unix datagrams.

A waiter binds a datagram socket in a directory beside the database
(``<db>.notify/<pid>-<8 hex>.sock``, or a short directory under the temp dir when
that path would not fit a socket address). A writer that made tasks ready sends
their ids (or ``*`` for a large batch) to every socket there; stale sockets are
removed, lost datagrams only cost latency (waiters re-read on a timer too).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from typing import Optional

logger = logging.getLogger(__name__)

#: Largest notification payload; a bigger batch of ready ids is sent as ``*``.
MAX_NOTIFY_PAYLOAD = 8192
NOTIFY_ALL = b"*"
#: A listing of the directory is used again while the directory's mtime is unchanged,
#: unless it was taken within this many seconds of that mtime (a file system stamps
#: changes with a coarse clock: one in the same tick would not change it) ...
RACY_LISTING = 0.05
#: The same where modification times are whole seconds.
COARSE_RACY_LISTING = 1.0
#: ... and for at most this long (a backstop: waiters also re-read on a timer).
LISTING_LIFETIME = 1.0
#: Longest notification directory whose socket paths (plus ``/<pid>-<8 hex>.sock``)
#: fit ``sockaddr_un`` everywhere (104 bytes on BSD and macOS, 108 on Linux).
MAX_SOCKET_DIR = 80


def _mtime_ns(path: str) -> int:
    return os.stat(path).st_mtime_ns


def notify_directory(path: str) -> str:
    """The directory where waiters on database ``path`` bind their sockets."""
    beside = path + ".notify"
    if len(os.fsencode(beside)) <= MAX_SOCKET_DIR:
        return beside
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    return os.path.join("/tmp", f"yadtq-{digest}.notify")


class Listener:
    """One waiter's bound datagram socket."""

    def __init__(self, directory: str, mode: int) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for attempt in range(3):
            os.makedirs(directory, mode=mode, exist_ok=True)
            try:
                self._sock.bind(self.path)
                return
            except FileNotFoundError:
                if attempt == 2:  # the last waiter of another process keeps removing it
                    self._sock.close()
                    raise
            except OSError:
                self._sock.close()
                raise

    def wait_for(self, task_id: bytes, timeout: float) -> bool:
        """Whether a notification naming ``task_id`` (or everything) came within ``timeout``.
        A listener closed meanwhile (its notifier closed) waits out ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._sock.settimeout(remaining)
                data = self._sock.recv(MAX_NOTIFY_PAYLOAD + 16)
            except socket.timeout:
                return False
            except OSError:  # closed under us
                time.sleep(max(0.0, deadline - time.monotonic()))
                return False
            if data == NOTIFY_ALL or task_id in data.split(b"\n"):
                return True

    def drain(self) -> None:
        """Drop the notifications already received (before re-reading what they announce)."""
        try:
            self._sock.settimeout(0)
            while True:
                self._sock.recv(MAX_NOTIFY_PAYLOAD + 16)
        except OSError:  # BlockingIOError: nothing left (or closed)
            pass

    def close(self) -> None:
        self._sock.close()
        with suppress(OSError):
            os.unlink(self.path)
        with suppress(OSError):  # the last waiter out removes the directory
            os.rmdir(self.directory)


class Notifier:
    """Wakes ``wait`` calls in any process through Unix datagram sockets in one directory."""

    def __init__(self, db_path: str) -> None:
        self.directory = notify_directory(db_path)
        # Beside the database its directory's permissions apply; a shared /tmp needs privacy.
        self._mode = 0o777 if self.directory == db_path + ".notify" else 0o700
        self.enabled = hasattr(socket, "AF_UNIX")
        self._lock = threading.Lock()
        self._sender: Optional[socket.socket] = None
        self._sender_pid = 0
        #: (directory mtime ns, when listed, socket paths): a stat instead of a listing
        #: per notification while no waiter came or went.
        self._listing: Optional[tuple[int, float, list[str]]] = None
        #: Each waiting thread's listener, kept bound between its waits (:meth:`waiter`),
        #: and the process they belong to.
        self._waiters_of: dict[threading.Thread, Listener] = {}
        self._waiters_pid = os.getpid()

    def listen(self) -> Optional[Listener]:
        """A bound listener, or ``None`` when the caller must poll."""
        if not self.enabled:
            return None
        try:
            return Listener(self.directory, self._mode)
        except OSError as exc:
            logger.debug("cannot bind a notification socket in %s (polling): %s",
                         self.directory, exc)
            return None

    def waiter(self) -> Optional[Listener]:
        """This thread's listener for waiting on tasks, bound at its first wait and kept
        until the thread ends or the notifier closes, the notifications it got since its
        last wait dropped; ``None`` when the caller must poll.

        Binding one per wait made and removed a socket file and the directory (280 us
        a wait, more than the rest of a round trip's waiting), and every change of the
        directory made each writer list it again. Kept, it costs each notification one
        more datagram per thread that waited and still lives; those of ended threads
        are closed as the next one is made. One whose socket file was removed meanwhile
        is bound anew (a stat a wait).
        """
        if not self.enabled:
            return None
        thread = threading.current_thread()
        with self._lock:
            if self._waiters_pid != os.getpid():  # forked: those files are the parent's
                self._waiters_of, self._waiters_pid = {}, os.getpid()
            listener = self._waiters_of.get(thread)
        if listener is not None:
            if os.path.exists(listener.path):
                listener.drain()
                return listener
            listener.close()  # its file was removed (say, the directory cleaned): bind anew
        listener = self.listen()
        if listener is None:
            return None
        with self._lock:
            ended = [self._waiters_of.pop(t) for t in list(self._waiters_of) if not t.is_alive()]
            self._waiters_of[thread] = listener
        for gone in ended:
            gone.close()
        return listener

    def notify(self, task_ids: Sequence[str]) -> None:
        """Tell every waiter these tasks are ready. Call after the commit."""
        if not task_ids or not self.enabled:
            return
        paths = self._waiters()
        if not paths:
            return
        payload = "\n".join(task_ids).encode()
        if len(payload) > MAX_NOTIFY_PAYLOAD:
            payload = NOTIFY_ALL
        sender = self._socket()
        for path in paths:
            try:
                sender.sendto(payload, path)
            except ConnectionRefusedError:
                with suppress(OSError):  # its waiter died without cleaning up
                    os.unlink(path)
            except (FileNotFoundError, BlockingIOError):
                pass  # gone meanwhile, or its queue is full so it is awake already
            except OSError as exc:
                logger.debug("cannot notify %s: %s", path, exc)

    def _waiters(self) -> list[str]:
        """The socket paths in the directory: listed again only when it changed."""
        try:
            mtime_ns = _mtime_ns(self.directory)
            now = time.time()
            listing = self._listing
            # A file system that stamps whole seconds (some do) gets a racy window as long.
            racy = RACY_LISTING if mtime_ns % 1_000_000_000 else COARSE_RACY_LISTING
            if listing is not None and listing[0] == mtime_ns \
                    and listing[1] - mtime_ns / 1e9 > racy and now - listing[1] < LISTING_LIFETIME:
                return listing[2]
            paths = [e.path for e in os.scandir(self.directory) if e.name.endswith(".sock")]
        except OSError:
            return []  # no directory: nobody has ever waited
        self._listing = (mtime_ns, now, paths)
        return paths

    def _socket(self) -> socket.socket:
        with self._lock:
            if self._sender is None or self._sender_pid != os.getpid():
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
                self._sender_pid = os.getpid()
            return self._sender

    def close(self) -> None:
        with self._lock:
            if self._sender is not None and self._sender_pid == os.getpid():
                self._sender.close()
            self._sender = None
            waiters = list(self._waiters_of.values()) if self._waiters_pid == os.getpid() else []
            self._waiters_of = {}
        for listener in waiters:
            listener.close()
