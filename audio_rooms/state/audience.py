"""The audience tier in Redis: listeners join and leave in O(1), whatever the room's size.

A room's stage (host, moderators, speakers) changes through WATCHed transitions
(:mod:`store`), each one versioned and broadcast. Listeners are different: there may be ten
thousand of them and nobody needs to hear of each one coming and going. A listener's join is
one Lua script over a constant number of the room's keys (the meta, the stage hash, the
audience sorted set, the listener's own record, presence); it checks the capacity exactly
(``ZCARD`` inside the script) and that the rules the caller checked were computed on the
room's current version. A leave is another. Neither rewrites the room nor publishes anything:
each node reads the count and a sample once a second and tells its own connections
(``hub``), and anyone may read the audience page by page, in the order people joined.

Every key named here carries the room's hash tag (:mod:`keys`), so the scripts run on one shard
of a Redis Cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from audio_rooms.domain.room import Participant
from audio_rooms.state import keys

# KEYS: meta, stage, audience, the listener's record, presence.
# ARGV: user_id, record JSON, joined_at (ms), presence deadline (ms), the meta version the
#       caller checked the admission rules on.
_JOIN = """
local meta_raw = redis.call('GET', KEYS[1])
if not meta_raw then return 'missing' end
local meta = cjson.decode(meta_raw)
if meta['status'] ~= 'live' then return 'ended' end
if string.format('%d', meta['version']) ~= ARGV[5] then return 'stale' end
local uid = ARGV[1]
if redis.call('HEXISTS', KEYS[2], uid) == 1 then return 'stage' end
if meta['host_id'] == uid then return 'host' end
if redis.call('ZSCORE', KEYS[3], uid) then
  redis.call('ZADD', KEYS[5], ARGV[4], uid)
  return 'present'
end
if redis.call('ZCARD', KEYS[3]) >= tonumber(meta['max_listeners']) then return 'full' end
redis.call('ZADD', KEYS[3], ARGV[3], uid)
redis.call('SET', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[4], uid)
return 'joined'
"""

# KEYS: meta, audience, the listener's record, presence. ARGV: user_id.
# A listener with a raised hand or an invitation leaves through a transition instead (the
# hand queue is in the meta, and the moderators are told): the script answers 'stage'.
_LEAVE = """
local uid = ARGV[1]
local meta_raw = redis.call('GET', KEYS[1])
if meta_raw then
  local meta = cjson.decode(meta_raw)
  for _, other in ipairs(meta['hand_queue']) do if other == uid then return 'stage' end end
  for _, other in ipairs(meta['invitations']) do if other == uid then return 'stage' end end
end
if redis.call('ZREM', KEYS[2], uid) == 0 then return 'absent' end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], uid)
return 'left'
"""

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
SAMPLE_SIZE = 12
CLEANUP_BATCH = 500
_CURSOR = re.compile(r"^(\d{1,16}):([^\s]{1,300})$")


@dataclass(frozen=True, slots=True)
class AudiencePage:
    count: int
    listeners: list[Participant]
    next: str | None  # pass back to read on; None at the end

    def to_wire(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "listeners": [p.to_wire() for p in self.listeners],
            "next": self.next,
        }


def parse_cursor(cursor: str) -> tuple[int, str]:
    """``"<joined ms>:<user id>"`` of the last listener of the previous page; ValueError if
    it is not one."""
    match = _CURSOR.match(cursor)
    if match is None:
        raise ValueError("not an audience cursor")
    return int(match.group(1)), match.group(2)


class AudienceStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._join = redis.register_script(_JOIN)
        self._leave = redis.register_script(_LEAVE)
        # Called after a join is written (the replication confirmation, where configured).
        self.after_write: Callable[[], Awaitable[object]] | None = None

    async def join(
        self, room_id: str, listener: Participant, version: int, deadline: float
    ) -> str:
        """Add ``listener`` to the audience if the room (at ``version``) has room for them.

        Answers what happened: ``joined``, ``present`` (already a listener: a resume),
        ``stage`` (on stage: a resume), ``host`` (the host joins through a transition),
        ``full``, ``stale`` (the room changed since ``version``: check the rules again),
        ``ended`` or ``missing``."""
        result = await self._join(
            keys=[
                keys.room_meta(room_id), keys.room_people(room_id), keys.room_audience(room_id),
                keys.room_listener(room_id, listener.user_id), keys.room_presence(room_id),
            ],
            args=[
                listener.user_id, _dump(listener.to_record()), _ms(listener.joined_at),
                _ms(deadline), str(version),
            ],
        )
        outcome = _text(result)
        if outcome == "joined" and self.after_write is not None:
            await self.after_write()
        return outcome

    async def leave(self, room_id: str, user_id: str) -> str:
        """``left``; ``absent`` (not in the audience); or ``stage`` (on stage, or a listener
        with a raised hand or an invitation: leave through a transition)."""
        result = await self._leave(
            keys=[
                keys.room_meta(room_id), keys.room_audience(room_id),
                keys.room_listener(room_id, user_id), keys.room_presence(room_id),
            ],
            args=[user_id],
        )
        return _text(result)

    async def count(self, room_id: str) -> int:
        return int(await self.redis.zcard(keys.room_audience(room_id)))

    async def counts(self, room_ids: Sequence[str]) -> dict[str, int]:
        """Several rooms' listener counts in one round trip."""
        if not room_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.zcard(keys.room_audience(room_id))
            raw = await pipe.execute()
        return {room_id: int(n) for room_id, n in zip(room_ids, raw, strict=True)}

    async def listening_in(self, room_ids: Sequence[str], user_id: str) -> set[str]:
        """Those of ``room_ids`` where ``user_id`` is a listener, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.zscore(keys.room_audience(room_id), user_id)
            scores = await pipe.execute()
        return {r for r, s in zip(room_ids, scores, strict=True) if s is not None}

    async def listeners(self, room_id: str, user_ids: Sequence[str]) -> list[Participant]:
        """The records of those of ``user_ids`` who are listeners now, in the given order."""
        if not user_ids:
            return []
        raw = await self.redis.mget([keys.room_listener(room_id, u) for u in user_ids])
        return [Participant.from_record(json.loads(r)) for r in raw if r is not None]

    async def listener(self, room_id: str, user_id: str) -> Participant | None:
        found = await self.listeners(room_id, [user_id])
        return found[0] if found else None

    async def page(self, room_id: str, cursor: str | None, limit: int) -> AudiencePage:
        """``limit`` listeners in join order after ``cursor`` (from the start without one)."""
        key = keys.room_audience(room_id)
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        if cursor is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(key)
                pipe.zrange(key, 0, limit - 1, withscores=True)
                count, rows = await pipe.execute()
        else:
            after = parse_cursor(cursor)
            count = int(await self.redis.zcard(key))
            rows = await self._after(key, after, limit)
        members = [(_text(m), int(s)) for m, s in rows]
        listeners = await self.listeners(room_id, [m for m, _ in members])
        last = members[-1] if len(members) == limit else None
        return AudiencePage(int(count), listeners, f"{last[1]}:{last[0]}" if last else None)

    async def _after(self, key: str, after: tuple[int, str], limit: int) -> list[Any]:
        """Members after (score, member) in Redis's own order: by score, ties by member. Rows
        with the cursor's score are read along and skipped up to and including the cursor."""
        score, member = after
        extra = 16
        while True:
            rows = await self.redis.zrangebyscore(
                key, score, "+inf", start=0, num=limit + extra, withscores=True
            )
            kept = [r for r in rows if (int(r[1]), _text(r[0])) > (score, member)]
            if len(kept) >= limit or len(rows) < limit + extra:
                return kept[:limit]
            extra *= 4  # many joined in the same millisecond as the cursor

    async def newest(self, room_id: str, count: int) -> list[str]:
        raw = await self.redis.zrevrange(keys.room_audience(room_id), 0, count - 1)
        return [_text(r) for r in raw]

    async def present(self, room_id: str, user_ids: Sequence[str]) -> list[str]:
        """Those of ``user_ids`` who are in the audience, in the given order."""
        if not user_ids:
            return []
        scores = await self.redis.zmscore(keys.room_audience(room_id), list(user_ids))
        return [u for u, s in zip(user_ids, scores, strict=True) if s is not None]

    async def sample(self, room_id: str, first: Sequence[str], size: int = SAMPLE_SIZE
                     ) -> list[Participant]:
        """Up to ``size`` faces: those of ``first`` who are listening (people the moderators
        follow), then the newest listeners."""
        chosen = (await self.present(room_id, first))[:size]
        if len(chosen) < size:
            for user_id in await self.newest(room_id, size):
                if user_id not in chosen:
                    chosen.append(user_id)
                if len(chosen) == size:
                    break
        return await self.listeners(room_id, chosen)

    async def clear(self, room_id: str) -> None:
        """Delete an ended room's audience, a batch at a time (ended rooms take no joins)."""
        key = keys.room_audience(room_id)
        while True:
            batch = [_text(m) for m in await self.redis.zrange(key, 0, CLEANUP_BATCH - 1)]
            if not batch:
                return
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.unlink(*[keys.room_listener(room_id, u) for u in batch])
                pipe.zrem(key, *batch)
                await pipe.execute()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
