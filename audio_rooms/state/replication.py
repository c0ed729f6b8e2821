"""A bound on what a failover can lose: wait, after a room's change, until replicas have it.

Redis replicates asynchronously. A primary acknowledges a write as soon as it has applied it;
if it dies before its replicas received that write, the replica promoted in its place never
had it: a change the actor saw acknowledged is gone. With ``AUDIO_ROOMS_REDIS_REPLICA_ACKS=n``
the server, after each successful transition of a room, asks the primary to ``WAIT`` until
``n`` replicas have acknowledged everything up to that point (at most
``AUDIO_ROOMS_REDIS_REPLICA_TIMEOUT`` seconds), and only then answers the actor. A change that
was acknowledged is then on ``n`` replicas, and Sentinel promotes one of them.

WAIT counts replicas that caught up with *the calling connection's* last write; the write that
was just made went out on another pooled connection. So :meth:`ReplicaAcks.confirm` writes a
small key of the room's own (same shard on a cluster) and WAITs on that same connection in one
pipeline: replicas that have that write have every earlier one too (one replication stream).

A shortfall (fewer replicas within the timeout: a replica down or lagging) is logged, counted
in ``audio_rooms_redis_replica_shortfalls_total`` and otherwise let through: the actor is
answered, with the loss bound no longer holding for that write. To refuse writes instead, set
``min-replicas-to-write`` on the primary (docs/operations.md, "Redis deployments").
"""

from __future__ import annotations

import logging
import time
from typing import Any

from audio_rooms.state import keys
from audio_rooms.state.connect import is_cluster

logger = logging.getLogger(__name__)

PROBE_TTL_MS = 60_000


class ReplicaAcks:
    def __init__(self, redis: Any, replicas: int, timeout: float,
                 shortfalls: Any | None = None) -> None:
        self.redis = redis
        self.replicas = replicas
        self.timeout_ms = max(1, int(timeout * 1000))
        self.shortfalls = shortfalls  # a prometheus Counter, when metrics are wired

    async def confirm(self, room_id: str) -> bool:
        """Wait until ``replicas`` replicas have this room's writes so far; False on a
        shortfall (logged and counted). Redis errors propagate, like the write's own would."""
        key = keys.room_replicated(room_id)
        wait_options: dict[str, Any] = {}
        if is_cluster(self.redis):
            # WAIT has no key: send it to the room's master, next to the probe.
            wait_options["target_nodes"] = self.redis.get_node_from_key(key)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, str(time.time()), px=PROBE_TTL_MS)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms, **wait_options)
            _, acked = await pipe.execute()
        if int(acked) >= self.replicas:
            return True
        logger.warning("room %s: %s of %d replicas confirmed its change within %d ms",
                       room_id, acked, self.replicas, self.timeout_ms)
        if self.shortfalls is not None:
            self.shortfalls.inc()
        return False

    async def after_write(self, room_id: str) -> None:
        """The hook RoomStore calls after a transition's EXEC."""
        await self.confirm(room_id)
