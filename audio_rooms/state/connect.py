"""The one place a Redis client is built from the settings, for every deployment the server
supports: one Redis (``AUDIO_ROOMS_REDIS_URL``), a primary found through Sentinel, or a Redis
Cluster. Everything else takes the client it is given and does not care which it is, except
pub/sub (state/channels.py), which differs on a cluster.

The single-Redis and Sentinel clients bound their connections the way the server always has (a
blocking pool of ``REDIS_CONNECTIONS``: a burst waits for a connection instead of opening
hundreds); the cluster client holds that many per master.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from audio_rooms.settings import Settings
from audio_rooms.state.embedded import REDIS_CONNECTIONS

logger = logging.getLogger(__name__)

POOL_TIMEOUT = 10  # seconds a command waits for a free connection before failing
SOCKET_TIMEOUT = 5  # seconds for one command's answer; a dead primary must not hang a room


class RedisMode(StrEnum):
    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


def redis_mode(settings: Settings) -> RedisMode | None:
    """Which deployment the settings describe; None: the embedded Redis."""
    if settings.redis_sentinels:
        return RedisMode.SENTINEL
    if settings.redis_cluster_nodes:
        return RedisMode.CLUSTER
    if settings.redis_url:
        return RedisMode.SINGLE
    return None


def describe(settings: Settings) -> str:
    """Where Redis is, for the start-up log: addresses and names, never a password."""
    mode = redis_mode(settings)
    if mode is RedisMode.SENTINEL:
        return (f"Sentinel, primary {settings.redis_sentinel_master!r} via "
                f"{', '.join(settings.redis_sentinels)}")
    if mode is RedisMode.CLUSTER:
        return f"Cluster via {', '.join(settings.redis_cluster_nodes)}"
    if mode is RedisMode.SINGLE:
        return "a single Redis (AUDIO_ROOMS_REDIS_URL)"
    return "the embedded redis-server"


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (connections go to whoever the sentinels name as primary, and are
    dropped when that changes) with the blocking pool's bound on connections."""


def connect(settings: Settings) -> aioredis.Redis:
    """A client for the configured external Redis. Raises ValueError without one (the embedded
    Redis builds its own client: state/embedded.py).

    The result is typed as ``Redis`` though it is a ``RedisCluster`` on a cluster: both have
    the commands, pipelines, scripts and pub/sub this server uses (docs/operations.md).
    """
    mode = redis_mode(settings)
    if mode is RedisMode.SINGLE:
        assert settings.redis_url is not None
        return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=POOL_TIMEOUT,
            health_check_interval=30,
        ))
    if mode is RedisMode.SENTINEL:
        assert settings.redis_sentinel_master is not None
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": SOCKET_TIMEOUT}
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [_host_port(a) for a in settings.redis_sentinels],
            sentinel_kwargs=sentinel_kwargs,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            password=settings.redis_password,
            health_check_interval=30,
        )
        client: aioredis.Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            connection_pool_class=BlockingSentinelPool,
            max_connections=REDIS_CONNECTIONS,
            timeout=POOL_TIMEOUT,
        )
        return client
    if mode is RedisMode.CLUSTER:
        cluster: Any = RedisCluster(
            startup_nodes=[ClusterNode(*_host_port(a)) for a in settings.redis_cluster_nodes],
            password=settings.redis_password,
            # Per master. redis-py's cluster pools do not block when all are busy (a command
            # past the bound fails), so the bound is the same as the blocking pools' elsewhere.
            max_connections=REDIS_CONNECTIONS,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            health_check_interval=30,
        )
        return cluster  # type: ignore[no-any-return]
    raise ValueError("no external Redis configured")


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
