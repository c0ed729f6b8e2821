"""Rooms in Redis, changed only through atomic transitions.

``transition()`` reads the room, applies the pure domain rule, and writes the changed
participants, the new meta (with the new version) and the events in one MULTI/EXEC guarded by
WATCH on the room's meta key. If another process changed the room in between, EXEC fails and the
transition is computed again on the fresh state. Within one process a per-room lock serialises
transitions so that they rarely lose that race, and the last state written is cached by version
so a busy room is not re-read for every join.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from audio_rooms import errors
from audio_rooms.domain import actions as a
from audio_rooms.domain.events import Event
from audio_rooms.domain.room import Participant, RoomState
from audio_rooms.domain.transitions import Outcome, apply
from audio_rooms.state import keys
from audio_rooms.state.channels import Channels

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20

Rule = Callable[[RoomState, float], Outcome]


@dataclass(frozen=True)
class Published:
    """One message on a room's event channel."""

    room_id: str
    version: int
    changed: bool
    events: tuple[Event, ...]
    may_speak: frozenset[str]

    @cached_property
    def wire(self) -> list[tuple[Event, str]]:
        """Each event as the text clients receive, encoded once however many receive it."""
        return [(e, _dump(e.to_wire(self.version))) for e in self.events]

    def encode(self) -> str:
        return _dump(
            {
                "v": self.version,
                "c": self.changed,
                "e": [e.to_record() for e in self.events],
                "p": sorted(self.may_speak),
            }
        )

    @classmethod
    def decode(cls, room_id: str, raw: str | bytes) -> Published:
        return cls.from_data(room_id, json.loads(raw))

    @classmethod
    def from_data(cls, room_id: str, data: dict[str, Any]) -> Published:
        return cls(
            room_id=room_id,
            version=int(data["v"]),
            changed=bool(data["c"]),
            events=tuple(Event.from_record(e) for e in data["e"]),
            may_speak=frozenset(data["p"]),
        )


def may_speak(state: RoomState) -> frozenset[str]:
    return frozenset(uid for uid, p in state.participants.items() if p.may_speak)


class RoomStore:
    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock
        self._cache: dict[str, RoomState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Plain or sharded publish; the composition root sets it for a Redis 7 cluster.
        self.channels = Channels()
        # Awaited with the room id after a transition's write is applied, before its actor is
        # answered, outside the room's lock: the replication bound (state/replication.py).
        self.after_write: Callable[[str], Awaitable[None]] | None = None

    async def create(self, state: RoomState) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.room_meta(state.room_id), _dump(state.meta_record()))
            pipe.delete(keys.room_people(state.room_id), keys.room_presence(state.room_id))
            pipe.delete(keys.room_addresses(state.room_id), keys.room_door(state.room_id))
            pipe.sadd(keys.LIVE_ROOMS, state.room_id)
            pipe.zadd(keys.LIVE_ACTIVITY, {state.room_id: len(state.participants)})
            await pipe.execute()
        self._cache[state.room_id] = state

    async def load(self, room_id: str) -> RoomState | None:
        """The room as it is in Redis now. Only the small meta key is read when this process
        already holds that version (it wrote it): a busy room is not re-read per join."""
        meta_raw = await self.redis.get(keys.room_meta(room_id))
        if meta_raw is None:
            return None
        cached = self._cache.get(room_id)
        if cached is not None and cached.version == json.loads(meta_raw)["version"]:
            return cached
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.room_meta(room_id))
            pipe.hgetall(keys.room_people(room_id))
            meta_raw, people_raw = await pipe.execute()
        if meta_raw is None:
            return None
        state = _decode_state(meta_raw, people_raw)
        self._cache[room_id] = state
        return state

    async def load_many(self, room_ids: list[str]) -> dict[str, RoomState]:
        """Several rooms in one round trip (the lobby's page); missing rooms are absent."""
        if not room_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.get(keys.room_meta(room_id))
                pipe.hgetall(keys.room_people(room_id))
            raw = await pipe.execute()
        states = {}
        for room_id, meta_raw, people_raw in zip(room_ids, raw[::2], raw[1::2], strict=True):
            if meta_raw is not None:
                states[room_id] = _decode_state(meta_raw, people_raw)
        return states

    async def ranked_live_rooms(self, offset: int, count: int) -> list[str]:
        """Live room ids, busiest first, ``count`` of them from ``offset``."""
        raw = await self.redis.zrevrange(keys.LIVE_ACTIVITY, offset, offset + count - 1)
        return [_text(r) for r in raw]

    async def rank_unranked(self) -> None:
        """Give every live room a place in the lobby's ranking. Rooms that went live before the
        ranking existed (an upgrade) would otherwise stay out of the lobby until their next
        change; they enter at the bottom and move up with that change."""
        live = await self.redis.smembers(keys.LIVE_ROOMS)
        if live:
            await self.redis.zadd(keys.LIVE_ACTIVITY, {_text(r): 0 for r in live}, nx=True)

    # --- guests kept out by address ------------------------------------------------------------

    async def remember_address(self, room_id: str, user_id: str, tag: str) -> None:
        await self.redis.hset(keys.room_addresses(room_id), user_id, tag)

    async def shut_door(self, room_id: str, user_id: str, how: str) -> None:
        """Keep out the address a guest joined from (``how`` is "banned" or "removed")."""
        tag = await self.redis.hget(keys.room_addresses(room_id), user_id)
        if tag is not None:
            await self.redis.hset(keys.room_door(room_id), _text(tag), how)

    async def door_for(self, room_id: str, tag: str) -> str | None:
        """Whether guests from this address tag were banned or removed from the live room."""
        how = await self.redis.hget(keys.room_door(room_id), tag)
        return None if how is None else _text(how)

    async def live_room_ids(self) -> list[str]:
        members = await self.redis.smembers(keys.LIVE_ROOMS)
        return sorted(_text(m) for m in members)

    async def transition(self, room_id: str, actor_id: str, action: a.Action) -> Outcome:
        """Apply ``action`` atomically; publish its events; return the outcome."""
        return await self.change(room_id, lambda state, now: apply(state, actor_id, action, now))

    async def change(self, room_id: str, rule: Rule) -> Outcome:
        """Apply a pure ``rule(state, now) -> Outcome`` atomically; publish its events."""
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    outcome, written = await self._attempt(room_id, rule)
                    break
                except WatchError:
                    self._cache.pop(room_id, None)
                    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            else:
                raise errors.VersionConflict("The room is too busy right now; try again.")
        if written and self.after_write is not None:
            await self.after_write(room_id)
        return outcome

    async def _attempt(self, room_id: str, rule: Rule) -> tuple[Outcome, bool]:
        meta_key = keys.room_meta(room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(meta_key)
            meta_raw = await pipe.get(meta_key)
            if meta_raw is None:
                raise errors.RoomNotFound("No such room.")
            version = json.loads(meta_raw)["version"]
            state = self._cache.get(room_id)
            if state is None or state.version != version:
                people_raw = await pipe.hgetall(keys.room_people(room_id))
                state = _decode_state(meta_raw, people_raw)
            outcome = rule(state, self.clock())
            new = outcome.state
            changed = new is not state
            pipe.multi()  # type: ignore[no-untyped-call]
            if changed:
                self._write_changes(pipe, state, new)
            if outcome.events:
                message = Published(room_id, new.version, changed, outcome.events, may_speak(new))
                self.channels.publish(pipe, keys.room_events(room_id), message.encode())
            await pipe.execute()
        if changed:
            self._cache[room_id] = new
        return outcome, changed

    def _write_changes(self, pipe: Any, old: RoomState, new: RoomState) -> None:
        room_id = new.room_id
        pipe.set(keys.room_meta(room_id), _dump(new.meta_record()))
        gone = [uid for uid in old.participants if uid not in new.participants]
        if gone:
            pipe.hdel(keys.room_people(room_id), *gone)
            pipe.zrem(keys.room_presence(room_id), *gone)
        changed = {
            uid: _dump(p.to_record())
            for uid, p in new.participants.items()
            if old.participants.get(uid) is not p
        }
        if changed:
            pipe.hset(keys.room_people(room_id), mapping=changed)
        if not new.live:
            pipe.srem(keys.LIVE_ROOMS, room_id)
            pipe.zrem(keys.LIVE_ACTIVITY, room_id)
            pipe.delete(keys.room_people(room_id), keys.room_presence(room_id),
                        keys.room_addresses(room_id), keys.room_door(room_id))
            pipe.expire(keys.room_meta(room_id), keys.ENDED_ROOM_TTL)
        elif gone or changed:
            pipe.zadd(keys.LIVE_ACTIVITY, {room_id: len(new.participants)})

    # --- presence ------------------------------------------------------------------------------

    async def keep_present(self, room_id: str, user_ids: list[str], seconds: float) -> None:
        """Push the drop deadline of these participants ``seconds`` into the future."""
        if not user_ids:
            return
        deadline = int((self.clock() + seconds) * 1000)
        await self.redis.zadd(keys.room_presence(room_id), dict.fromkeys(user_ids, deadline))

    async def overdue(self, room_id: str) -> list[str]:
        """Participants whose deadline has passed: their connection died and did not resume."""
        now_ms = int(self.clock() * 1000)
        raw = await self.redis.zrangebyscore(keys.room_presence(room_id), "-inf", now_ms)
        return [_text(r) for r in raw]

    async def drop_overdue(self, room_id: str, connected: set[str]) -> list[Outcome]:
        """Apply the grace-period rule: every overdue participant leaves with reason timeout.

        ``connected`` are participants with a live connection on the calling node: they are
        present whatever their deadline says (a late heartbeat must not drop them).
        """
        dropped = []
        for user_id in await self.overdue(room_id):
            if user_id in connected:
                continue
            try:
                dropped.append(
                    await self.transition(room_id, user_id, a.Leave(reason="timeout"))
                )
            except (errors.NotInRoom, errors.RoomEnded, errors.RoomNotFound):
                await self.redis.zrem(keys.room_presence(room_id), user_id)
        return dropped


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _decode_state(meta_raw: str | bytes, people_raw: dict[Any, Any]) -> RoomState:
    participants = [Participant.from_record(json.loads(v)) for v in people_raw.values()]
    return RoomState.from_records(json.loads(meta_raw), participants)
