"""Running the Redis backend's scripts over its slot groups (see ``layout.py``)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Callable, Optional

import hiredis
import redis
from redis.commands.core import Script

from ...exceptions import BackendUnavailable
from .clients import keyed_scripts
from .layout import Layout

#: hiredis's packer (hiredis 2.1 and later; yadtq requires ``redis[hiredis]``).
pack_command: Optional[Callable[..., bytes]] = getattr(hiredis, "pack_command", None)


def _command_name_required() -> bool:
    """Whether ``ConnectionPool.get_connection`` requires a command name: redis-py before
    5.3 does, later releases warn that it is deprecated."""
    param = inspect.signature(redis.ConnectionPool.get_connection).parameters.get("command_name")
    return param is not None and param.default is inspect.Parameter.empty


#: What ``ConnectionPool.get_connection`` is given.
_COMMAND_NAME: tuple[str, ...] = ("EVALSHA",) if _command_name_required() else ()

#: One script call: the script, its keys and its arguments.
Call = tuple[Script, list[str], list[Any]]


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Translate redis-py's exceptions at the edge (redis-py reconnects on the next command)."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendUnavailable(f"redis backend: {what} failed: {exc}") from exc


class GroupedScripts:
    """Mixed into ``RedisBackend``: its client, layout and the helpers that spread a step
    over slot groups."""

    _redis: redis.Redis
    _cluster: bool
    layout: Layout

    def _pipeline(self) -> Any:
        """A MULTI/EXEC pipeline, or on Redis Cluster a plain one (its commands may go to
        several slots; each command is atomic on its own)."""
        return self._redis.pipeline(transaction=not self._cluster)

    def _by_group(self, idents: Sequence[str]) -> dict[int, list[int]]:
        """The indexes of ``idents`` by slot group, in order."""
        found: dict[int, list[int]] = {}
        for i, ident in enumerate(idents):
            found.setdefault(self.layout.group(ident), []).append(i)
        return found

    def _calls(self, what: str, calls: Sequence[Call]) -> list[Any]:
        """Run script calls in one round trip (per node); replies in order.

        On one server they run in one MULTI/EXEC, all or nothing. On Redis Cluster each
        call is atomic on its own; a call refused with NOSCRIPT (a node that has not
        seen the script yet, e.g. a replica just promoted) is sent again on its own,
        which loads the script first.
        """
        if not calls:
            return []
        with unavailable(what):
            if len(calls) == 1:
                return [self._call_script(*calls[0])]
            if not self._cluster:
                pipe = self._redis.pipeline(transaction=True)
                for script, keys, args in calls:
                    script(keys=keys, args=args, client=pipe)
                return pipe.execute()  # type: ignore[no-any-return]
            pipe = self._redis.pipeline(transaction=False)
            keyed_scripts(self._redis, pipe)
            for script, keys, args in calls:
                pipe.execute_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", script.sha, len(keys), *keys, *args)
            replies: list[Any] = pipe.execute(raise_on_error=False)
            for i, reply in enumerate(replies):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    script, keys, args = calls[i]
                    replies[i] = script(keys=keys, args=args)
                elif isinstance(reply, Exception):
                    raise reply
            return replies

    def _call_script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """One script call. On one server (or Sentinel's primary) through :meth:`_direct`;
        a script the server does not know (a restarted Redis) goes through
        ``Script.__call__``, which loads it, as every call does on Redis Cluster. The
        worker's claims and records are such calls.
        """
        if self._cluster:
            return script(keys=keys, args=args)
        try:
            return self._direct([("EVALSHA", script.sha, len(keys), *keys, *args)])[0]
        except redis.exceptions.NoScriptError:
            return script(keys=keys, args=args)

    def _direct(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands sent together on one server (or Sentinel's primary) and their replies,
        in order, read on a connection of the client's pool with the connection's retry
        policy (as the client would). Redis Cluster routes commands: not there.

        Through the client each command also pays for redis-py's command layers (its
        pool bookkeeping, argument filters, observability hooks and reply callbacks):
        20-30 us of CPU for a script call, against 35-45 us for the send and read
        themselves, and 3-6 us for each record of a pipelined read (``docs/performance-history.md``).
        Replies come as the server sends them: a hash is a dict with RESP3 (redis-py's
        default from 8.0), a flat list with RESP2 (see :func:`as_mapping`).

        Raises:
            redis.RedisError: the first command refused (every reply was read first, so
                the connection goes back to the pool clean), or the connection failed.
        """
        pool = self._redis.connection_pool
        connection: Any = pool.get_connection(*_COMMAND_NAME)
        try:
            return connection.retry.call_with_retry(  # type: ignore[no-any-return]
                lambda: _send_and_read(connection, commands), lambda _error: connection.disconnect())
        finally:
            pool.release(connection)

    def _group_key(self, name: str, group: int) -> str:
        return self.layout.key(name, group=group)


def _send_and_read(connection: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    connection.send_packed_command(_packed(connection, commands))
    replies: list[Any] = []
    refused: Optional[redis.ResponseError] = None
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:  # the connection is sound: read the rest
            replies.append(exc)
            refused = refused or exc
    if refused is not None:
        raise refused
    return replies


def _packed(connection: Any, commands: Sequence[tuple[Any, ...]]) -> list[bytes]:
    """The commands in Redis's protocol, one buffer for one ``sendall``.

    hiredis packs each command as redis-py would (redis-py calls the same function),
    without redis-py's layer around it, which costs 1.7 us of a client's 2.0 us per
    ``HGETALL`` of a batched read (2026-12-04). Command names here are one word and
    arguments str, bytes or numbers, which is all that layer adds handling for.

    Raises:
        redis.DataError: an argument of a type Redis's protocol cannot carry (as redis-py).
    """
    if pack_command is None:
        return connection.pack_commands(commands)  # type: ignore[no-any-return]
    try:
        if len(commands) == 1:
            return [pack_command(commands[0])]
        return [b"".join([pack_command(command) for command in commands])]
    except TypeError as exc:
        raise redis.DataError(str(exc)) from exc


def as_mapping(reply: Any) -> Mapping[bytes, Any]:
    """A hash read by ``HGETALL``: a dict (RESP3 on :meth:`GroupedScripts._direct`), or a
    flat list of fields and values (RESP2, and any script's reply)."""
    if isinstance(reply, dict):
        return reply
    pairs = iter(reply)
    return dict(zip(pairs, pairs))
