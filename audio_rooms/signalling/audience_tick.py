"""Each node tells its connections how many listen to their room, once a tick at most.

Listeners come and go without deltas (state/audience.py). Instead, every ``audience_tick``
seconds this node reads, for each room it has connections in, the listener count and a sample
of faces (a few Redis reads, whatever the room's size) and sends one ``audience`` message,
encoded once for all its connections, if either changed. Every node reads the same Redis, so
all agree within a tick. It also keeps the lobby's ranking (stage plus audience) current.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from audio_rooms.errors import AudioRoomsError
from audio_rooms.rooms import RoomService
from audio_rooms.signalling.hub import Hub
from audio_rooms.signalling.outbound import Audience
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)


class AudienceTicker:
    def __init__(self, hub: Hub, rooms: RoomService, interval: float) -> None:
        self.hub = hub
        self.rooms = rooms
        self.interval = interval
        self._sent: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audience-ticker")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except (aioredis.RedisError, OSError):
                logger.warning("audience: no update this tick; Redis unreachable")
            except AudioRoomsError:
                logger.exception("audience: no update this tick")

    async def tick(self) -> None:
        rooms = set(self.hub.room_ids())
        for gone in set(self._sent) - rooms:
            del self._sent[gone]
            self.rooms.audience.forget(gone)
        for room_id in rooms:
            state = await self.rooms.store.load(room_id)
            if state is None or not state.live:
                continue
            glance = await self.rooms.audience.glance(state)
            seen = (glance.count, tuple(p.user_id for p in glance.sample))
            if self._sent.get(room_id) == seen:
                continue
            self._sent[room_id] = seen
            self.rooms.audience.sent[room_id] = glance
            self.hub.broadcast(room_id, Audience.of(glance.to_wire()))
            await self.rooms.store.rank(state, glance.count)
