"""Live rooms written by a version before the audience tier, brought into today's keys.

Earlier versions named a room's keys ``ar:room:ID:...`` without a hash tag and kept listeners
in the stage hash. A node of this version adopts such rooms when it starts: it renames their
keys (a single Redis only: Cluster support is new, so no Cluster holds old rooms) and moves the
listeners into the audience. Nodes starting together may both try: RENAME is atomic and every
move is idempotent, so the room comes out the same.
"""

from __future__ import annotations

import json
import logging

import redis.asyncio as aioredis

from audio_rooms.state import keys

logger = logging.getLogger(__name__)

_SUFFIXES = ("meta", "people", "presence", "addresses", "door")


def _old(room_id: str, suffix: str) -> str:
    return f"{keys.PREFIX}room:{room_id}:{suffix}"


_NEW = {
    "meta": keys.room_meta, "people": keys.room_people, "presence": keys.room_presence,
    "addresses": keys.room_addresses, "door": keys.room_door,
}


async def adopt_old_rooms(redis: aioredis.Redis) -> int:
    """Bring every live room still in the old layout into the new one; return how many."""
    adopted = 0
    for raw in await redis.smembers(keys.LIVE_ROOMS):
        room_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not await redis.exists(_old(room_id, "meta")):
            continue
        for suffix in _SUFFIXES:
            try:
                await redis.renamenx(_old(room_id, suffix), _NEW[suffix](room_id))
            except aioredis.ResponseError:  # "no such key": nothing of that kind to move
                continue
        await _split_audience(redis, room_id)
        adopted += 1
        logger.info("room %s: adopted from the layout before the audience tier", room_id)
    return adopted


async def _split_audience(redis: aioredis.Redis, room_id: str) -> None:
    people = await redis.hgetall(keys.room_people(room_id))
    for user_id, record in people.items():
        data = json.loads(record)
        if data.get("r") != "listener":
            continue
        uid = user_id.decode() if isinstance(user_id, bytes) else str(user_id)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.room_listener(room_id, uid), record)
            pipe.zadd(keys.room_audience(room_id), {uid: int(float(data["j"]) * 1000)})
            pipe.hdel(keys.room_people(room_id), uid)
            await pipe.execute()
