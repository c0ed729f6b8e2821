"""The node registry: every server process says in Redis that it is alive, and how loaded.

Each process writes its :class:`NodeInfo` under its own key with a TTL of three heartbeat
intervals, and its id into one sorted set scored by when that registration expires. Readers
take the ids not yet expired and then their keys: a process that stops beating (killed, its
machine gone, cut off from Redis) disappears by itself within three intervals; one that stops
cleanly removes itself at once. Placement (the cascade issue) and the operators' ``nodes list``
read the same records.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis

from audio_rooms.state import keys

logger = logging.getLogger(__name__)

TTL_BEATS = 3  # heartbeats a registration outlives


@dataclass(frozen=True)
class NodeLoad:
    connections: int  # client WebSockets on the node
    rooms: int  # rooms with a participant on the node
    media_packets_per_second: float  # RTP packets forwarded, over the last interval
    cpu: float  # CPU time of the process over the last interval, in cores (1.0 = one core)
    transports: int = 0  # media transports it holds (placement: docs/cascade.md)


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    host: str
    pid: int
    address: str  # where its HTTP server listens, host:port
    started_at: float  # seconds since the epoch
    seen_at: float
    load: NodeLoad
    media: bool = True  # it relays media (a candidate origin and edge)
    edge_capacity: int = 800  # media transports it takes before listeners go to other nodes

    @classmethod
    def from_json(cls, raw: bytes | str) -> NodeInfo:
        data = json.loads(raw)
        return cls(**{**data, "load": NodeLoad(**data["load"])})


def new_node_id() -> str:
    """Unique per process, readable in logs: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class CpuMeter:
    """The process's CPU use between two readings, in cores."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = (clock(), _cpu_seconds())

    def read(self) -> float:
        now, cpu = self._clock(), _cpu_seconds()
        elapsed = now - self._last[0]
        used = cpu - self._last[1]
        self._last = (now, cpu)
        return round(used / elapsed, 3) if elapsed > 0 else 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class NodeRegistry:
    def __init__(
        self, redis: aioredis.Redis, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.interval = interval
        self.clock = clock

    @property
    def ttl(self) -> float:
        return self.interval * TTL_BEATS

    async def beat(self, info: NodeInfo) -> None:
        """Register or renew ``info`` for three intervals."""
        expires_ms = int((self.clock() + self.ttl) * 1000)
        # Not one transaction: a node's key and the set of nodes are on different shards of a
        # cluster. Readers skip ids whose key is missing, so the order is all that matters.
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.node(info.node_id), json.dumps(asdict(info)), px=int(self.ttl * 1000))
            pipe.zadd(keys.NODES, {info.node_id: expires_ms})
            await pipe.execute()

    async def leave(self, node_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.node(node_id))
            pipe.zrem(keys.NODES, node_id)
            await pipe.execute()

    async def nodes(self) -> list[NodeInfo]:
        """The nodes alive now, oldest first; expired entries are swept on the way."""
        now_ms = int(self.clock() * 1000)
        await self.redis.zremrangebyscore(keys.NODES, "-inf", now_ms)
        members = await self.redis.zrangebyscore(keys.NODES, now_ms, "+inf")
        ids = [_text(member) for member in members]  # type: ignore[arg-type]  # no scores asked
        if not ids:
            return []
        # GETs in a pipeline rather than one MGET: the keys are on different cluster shards.
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.get(keys.node(node_id))
            raws = await pipe.execute()
        found = [NodeInfo.from_json(raw) for raw in raws if raw is not None]
        return sorted(found, key=lambda n: (n.started_at, n.node_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
