"""This server process in the node registry (state/nodes.py): it beats its load into Redis every
``AUDIO_ROOMS_NODE_HEARTBEAT_INTERVAL`` seconds and keeps the last list of nodes it read, for
``/metrics``. Redis being away only pauses the beats: the node drops out of the list after three
intervals and comes back with the next beat that gets through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

import redis.asyncio as aioredis

from audio_rooms.sfu import MediaServer
from audio_rooms.signalling.hub import Hub
from audio_rooms.state.nodes import CpuMeter, NodeInfo, NodeLoad, NodeRegistry, new_node_id
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


class Node:
    def __init__(
        self, registry: NodeRegistry, address: str, hub: Hub, media: MediaServer | None,
        node_id: str | None = None, edge_capacity: int = 800,
    ) -> None:
        self.edge_capacity = edge_capacity
        self.registry = registry
        self.node_id = node_id or new_node_id()
        self.address = address
        self.started_at = time.time()
        self.nodes: list[NodeInfo] = []  # every live node, as last read (this one included)
        self.nodes_read_at = 0.0  # monotonic time of the last successful read of the registry
        self._hub = hub
        self._media = media
        self._cpu = CpuMeter()
        self._packets = self._forwarded()
        self._packets_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Node({self.node_id})"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="node-heartbeat")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        with contextlib.suppress(aioredis.RedisError, OSError):
            await self.registry.leave(self.node_id)

    def info(self) -> NodeInfo:
        return NodeInfo(
            node_id=self.node_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            address=self.address,
            started_at=self.started_at,
            seen_at=time.time(),
            load=self._load(),
            media=self._media is not None,
            edge_capacity=self.edge_capacity,
        )

    async def _run(self) -> None:
        while True:
            try:
                await self.registry.beat(self.info())
                self.nodes = await self.registry.nodes()
                self.nodes_read_at = time.monotonic()
            except (aioredis.RedisError, OSError):
                logger.warning("%r: no heartbeat, Redis unreachable", self)
            await asyncio.sleep(self.registry.interval)

    def _load(self) -> NodeLoad:
        now, packets = time.monotonic(), self._forwarded()
        elapsed = now - self._packets_at
        rate = (packets - self._packets) / elapsed if elapsed > 0 else 0.0
        self._packets, self._packets_at = packets, now
        return NodeLoad(
            connections=self._hub.connection_count,
            rooms=len(self._hub.room_ids()),
            media_packets_per_second=round(rate, 1),
            cpu=self._cpu.read(),
            transports=self._media.stats().transports if self._media is not None else 0,
        )

    def _forwarded(self) -> int:
        return self._media.forwarding.forwarded_packets if self._media is not None else 0
