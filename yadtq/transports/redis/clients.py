"""The redis-py clients behind each URL scheme of the Redis backend.

- ``redis://`` / ``rediss://``: one server (``redis.Redis.from_url``);
- ``redis+cluster://[user:password@]host:port[,host:port...]``: Redis Cluster, any
  seed nodes (``redis.cluster.RedisCluster``; the slot map is discovered);
- ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``: the
  primary that the Sentinels name for ``service`` (``redis.sentinel.Sentinel``),
  rediscovered after a failover. The password is the data nodes'.

``backend_options`` go to the client unchanged (for Sentinel: to the primary's
connections; ``sentinel_kwargs`` to the Sentinels').
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import unquote

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.sentinel

from ...exceptions import BackendUnavailable, ConfigurationError

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class Target:
    """A parsed ``redis+cluster://`` or ``redis+sentinel://`` URL."""

    kind: str  # "cluster" or "sentinel"
    nodes: list[tuple[str, int]]
    service: str = ""
    db: int = 0
    auth: dict[str, Any] = field(default_factory=dict)


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def parse(url: str) -> Optional[Target]:
    """The target of a cluster or sentinel URL; ``None`` for a plain ``redis://`` one."""
    scheme = scheme_of(url)
    if scheme not in (CLUSTER_SCHEME, SENTINEL_SCHEME):
        return None
    rest = url.split("://", 1)[1]
    rest = rest.split("?", 1)[0]
    location, _, path = rest.partition("/")
    auth: dict[str, Any] = {}
    if "@" in location:
        userinfo, location = location.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            auth["username"] = unquote(user)
        if password:
            auth["password"] = unquote(password)
    nodes = []
    for part in location.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigurationError(f"bad redis node {part!r} in {url!r}: expected host:port")
        nodes.append((host.strip("[]"), int(port)))
    if scheme == CLUSTER_SCHEME:
        if path.strip("/"):
            raise ConfigurationError(
                f"a redis+cluster:// URL has no path (Redis Cluster has only db 0): {url!r}")
        return Target("cluster", nodes, auth=auth)
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ConfigurationError(f"a redis+sentinel:// URL needs the service name: "
                                 f"redis+sentinel://host:port[,host:port]/service, not {url!r}")
    if db and not db.isdigit():
        raise ConfigurationError(f"bad redis db {db!r} in {url!r}")
    return Target("sentinel", nodes, service=service, db=int(db or 0), auth=auth)


def _cluster_options() -> dict[str, Any]:
    """Extra ``RedisCluster`` arguments: with redis-py 8, a cluster pipeline asks a node
    for the keys of every EVALSHA it routes (``COMMAND GETKEYS``, one round trip per
    script call) unless EVAL/EVALSHA have a keyed routing policy; the client's own
    ``determine_slot`` then reads their keys from the arguments, as it does outside
    pipelines."""
    try:
        from redis._parsers.commands import CommandPolicies, RequestPolicy, ResponsePolicy
        from redis.commands.policies import BasePolicyResolver, PolicyResolver, StaticPolicyResolver
    except ImportError:  # redis-py before 7: no policies, no extra round trips
        return {}
    keyed = CommandPolicies(RequestPolicy.DEFAULT_KEYED, ResponsePolicy.DEFAULT_KEYED)

    class ScriptsKeyed(BasePolicyResolver):
        def __init__(self, fallback: Optional[PolicyResolver] = None) -> None:
            super().__init__({"core": {"evalsha": keyed, "eval": keyed}},
                             fallback or StaticPolicyResolver())

        def with_fallback(self, fallback: PolicyResolver) -> PolicyResolver:
            return ScriptsKeyed(fallback)

    return {"policy_resolver": ScriptsKeyed()}


def connect(url: str, options: dict[str, Any]) -> tuple[Any, bool]:
    """A blocking client for ``url`` and whether it is a Redis Cluster client.

    Raises:
        ConfigurationError: a malformed URL or options.
        BackendUnavailable: no seed node of a cluster answered (the client needs the
            slot map from the start).
    """
    target = parse(url)
    try:
        if target is None:
            return redis.Redis.from_url(url, **options), False
        if target.kind == "cluster":
            nodes = [redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                     for h, p in target.nodes]
            return redis.cluster.RedisCluster(startup_nodes=nodes, **target.auth,
                                              **{**_cluster_options(), **options}), True
        sentinel_kwargs = options.pop("sentinel_kwargs", None)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            target.nodes, sentinel_kwargs=sentinel_kwargs)
        client = sentinel.master_for(  # type: ignore[no-untyped-call]
            target.service, db=target.db, **target.auth, **options)
        return client, False
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"bad redis backend URL or options ({url!r}): {exc}") from exc
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise BackendUnavailable(f"redis backend: cannot reach {url!r}: {exc}") from exc


def connect_async(url: str, options: dict[str, Any], max_connections: int) -> Any:
    """An asyncio client for ``url`` (waits queue for one of ``max_connections``)."""
    target = parse(url)
    if target is None:
        options.setdefault("max_connections", max_connections)
        # Blocking: many concurrent waits queue for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
        return aioredis.Redis(connection_pool=pool)
    if target.kind == "cluster":
        nodes = [aiocluster.ClusterNode(h, p) for h, p in target.nodes]
        return aiocluster.RedisCluster(startup_nodes=nodes, **target.auth, **options)
    sentinel_kwargs = options.pop("sentinel_kwargs", None)
    sentinel = aiosentinel.Sentinel(target.nodes, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    return sentinel.master_for(target.service, db=target.db, **target.auth, **options)


def refresh_topology(client: Any) -> bool:
    """Read a Redis Cluster client's slot map again (False for other clients, or when no
    node answered)."""
    if not isinstance(client, redis.cluster.RedisCluster):
        return False
    try:
        client.nodes_manager.initialize()
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return False
    return True


async def refresh_topology_async(client: Any) -> bool:
    """``refresh_topology`` for a ``redis.asyncio`` client."""
    if not isinstance(client, aiocluster.RedisCluster):
        return False
    try:
        await client.nodes_manager.initialize()
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return False
    return True


def keyed_scripts(client: Any, pipe: Any) -> None:
    """Give a cluster pipeline its client's routing policies (``_cluster_options``):
    redis-py 8 builds cluster pipelines with the default ones."""
    resolver = getattr(client, "_policy_resolver", None)
    if resolver is not None and hasattr(pipe, "_policy_resolver"):
        pipe._policy_resolver = resolver
