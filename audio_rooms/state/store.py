"""Rooms in Redis, changed only through atomic transitions.

``transition()`` reads the room's stage, applies the pure domain rule, and writes the changed
participants, the new meta (with the new version) and the events in one MULTI/EXEC guarded by
WATCH on the room's meta key. If another process changed the room in between, EXEC fails and the
transition is computed again on the fresh state. Within one process a per-room lock serialises
transitions so that they rarely lose that race, and the last state written is cached by version
so a busy room is not re-read for every action.

The state a transition sees is the **stage** (host, moderators, speakers) plus the listeners the
action is about (its actor and its target), each read from its own key and WATCHed with the
meta: the audience itself is never read whole (:mod:`audience`). A listener's plain join and
leave do not come here at all. Keys shared by all rooms (the live set, the lobby's ranking) are
written after the room's EXEC, never inside it: on a Redis Cluster they live on other shards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from audio_rooms import errors
from audio_rooms.domain import actions as a
from audio_rooms.domain.events import Event
from audio_rooms.domain.roles import Role
from audio_rooms.domain.room import Participant, RoomState
from audio_rooms.domain.transitions import Outcome, apply
from audio_rooms.state import keys
from audio_rooms.state.audience import AudienceStore
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


def stage_of(state: RoomState) -> RoomState:
    """The state without listeners: what the store caches and loads."""
    if all(p.role.on_stage for p in state.participants.values()):
        return state
    stage = {uid: p for uid, p in state.participants.items() if p.role.on_stage}
    return replace(state, participants=stage)


def _with_listeners(state: RoomState, listeners: list[Participant]) -> RoomState:
    extra = {p.user_id: p for p in listeners if p.user_id not in state.participants}
    if not extra:
        return state
    merged = dict(state.participants)
    merged.update(extra)
    ordered = sorted(merged.values(), key=lambda p: (p.joined_at, p.user_id))
    return replace(state, participants={p.user_id: p for p in ordered})


def _stage_size(state: RoomState) -> int:
    return sum(1 for p in state.participants.values() if p.role.on_stage)


class RoomStore:
    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock
        self.audience = AudienceStore(redis)
        self._cache: dict[str, RoomState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Plain or sharded publish; the composition root sets it for a Redis 7 cluster.
        self.channels = Channels()
        # Awaited with the room id after every transition written, before its actor is
        # answered, outside the room's lock: the replication bound (state/replication.py).
        self.after_write: Callable[[str], Awaitable[object]] | None = None
        # Awaited with the room id and the events of every change this process applies (and
        # of a listener's plain join or leave, which change no stage): the webhooks' source.
        self.on_events: Callable[[str, Sequence[Event]], Awaitable[None]] | None = None

    async def create(self, state: RoomState) -> None:
        room_id = state.room_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.room_meta(room_id), _dump(state.meta_record()))
            pipe.delete(keys.room_people(room_id), keys.room_presence(room_id),
                        keys.room_addresses(room_id), keys.room_door(room_id),
                        keys.room_audience(room_id))
            await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.LIVE_ROOMS, room_id)
            pipe.zadd(keys.LIVE_ACTIVITY, {room_id: len(state.participants)})
            await pipe.execute()
        self._cache[room_id] = state
        await self.tell(room_id, (Event("room_started", state.host_id,
                                        {"title": state.title}),))

    async def tell(self, room_id: str, events: Sequence[Event]) -> None:
        """Hand events this process caused to ``on_events``, if anyone listens. The change is
        made whatever happens there: an observer's failure is logged, never the actor's."""
        if self.on_events is not None and events:
            try:
                await self.on_events(room_id, events)
            except Exception:
                logger.exception("room %s: on_events failed", room_id)

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
        """Apply ``action`` atomically; publish its events; return the outcome.

        A listener who just leaves (no raised hand, no invitation) leaves the audience in one
        script: nothing about the stage changes and nobody is told one by one."""
        left = isinstance(action, a.Leave) and (
            await self.audience.leave(room_id, actor_id) == "left"
        )
        if left:
            state = await self.load(room_id)
            if state is None:
                raise errors.RoomNotFound("No such room.")
            await self.tell(room_id, (Event("participant_left", actor_id,
                                             {"reason": getattr(action, "reason", "left")}),))
            return Outcome(state, ())
        target = getattr(action, "target", None)
        about = (actor_id, target) if isinstance(target, str) else (actor_id,)
        return await self.change(
            room_id, lambda state, now: apply(state, actor_id, action, now), about
        )

    async def change(self, room_id: str, rule: Rule, about: Sequence[str] = ()) -> Outcome:
        """Apply a pure ``rule(state, now) -> Outcome`` atomically; publish its events.

        The rule sees the stage and those listeners among ``about`` (the people the rule
        concerns); they are WATCHed with the meta, so a listener leaving meanwhile means the
        rule is applied again."""
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    outcome = await self._attempt(room_id, rule, about)
                    break
                except WatchError:
                    self._cache.pop(room_id, None)
                    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            else:
                raise errors.VersionConflict("The room is too busy right now; try again.")
        if outcome.events:
            if self.after_write is not None:
                await self.after_write(room_id)
            await self._after(room_id, outcome.state)
            await self.tell(room_id, outcome.events)
        return outcome

    async def _attempt(self, room_id: str, rule: Rule, about: Sequence[str]) -> Outcome:
        meta_key = keys.room_meta(room_id)
        listener_keys = [keys.room_listener(room_id, u) for u in dict.fromkeys(about)]
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(meta_key, *listener_keys)
            meta_raw = await pipe.get(meta_key)
            if meta_raw is None:
                raise errors.RoomNotFound("No such room.")
            version = json.loads(meta_raw)["version"]
            stage = self._cache.get(room_id)
            if stage is None or stage.version != version:
                people_raw = await pipe.hgetall(keys.room_people(room_id))
                stage = _decode_state(meta_raw, people_raw)
            state = stage
            if listener_keys:
                # Raw: redis-py's cluster pipeline refuses pipe.mget(), one slot or not.
                records = cast("list[Any]", await pipe.execute_command("MGET", *listener_keys))
                listeners = [
                    Participant.from_record(json.loads(raw)) for raw in records if raw is not None
                ]
                state = _with_listeners(stage, listeners)
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
            self._cache[room_id] = stage_of(new)
        return outcome

    def _write_changes(self, pipe: Any, old: RoomState, new: RoomState) -> None:
        """The changed participants, each in its tier: the stage hash, or the listener's own
        key and the audience order (by the time they first joined)."""
        room_id = new.room_id
        people, audience = keys.room_people(room_id), keys.room_audience(room_id)
        pipe.set(keys.room_meta(room_id), _dump(new.meta_record()))
        for uid, before in old.participants.items():
            if uid not in new.participants:
                if before.role is Role.LISTENER:
                    pipe.delete(keys.room_listener(room_id, uid))
                    pipe.zrem(audience, uid)
                else:
                    pipe.hdel(people, uid)
                pipe.zrem(keys.room_presence(room_id), uid)
        for uid, after in new.participants.items():
            previous = old.participants.get(uid)
            if previous is after:
                continue
            record = _dump(after.to_record())
            if after.role is Role.LISTENER:
                pipe.set(keys.room_listener(room_id, uid), record)
                pipe.zadd(audience, {uid: int(after.joined_at * 1000)})
                if previous is not None and previous.role is not Role.LISTENER:
                    pipe.hdel(people, uid)
            else:
                pipe.hset(people, uid, record)
                if previous is not None and previous.role is Role.LISTENER:
                    pipe.delete(keys.room_listener(room_id, uid))
                    pipe.zrem(audience, uid)
        if not new.live:
            pipe.delete(people, keys.room_presence(room_id), keys.room_addresses(room_id),
                        keys.room_door(room_id))
            pipe.expire(keys.room_meta(room_id), keys.ENDED_ROOM_TTL)

    async def _after(self, room_id: str, state: RoomState) -> None:
        """The shared keys, after the room's own EXEC: the live set and the lobby ranking; and
        an ended room's audience, a batch at a time."""
        if state.live:
            await self.rank(state, await self.audience.count(room_id))
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.srem(keys.LIVE_ROOMS, room_id)
            pipe.zrem(keys.LIVE_ACTIVITY, room_id)
            await pipe.execute()
        await self.audience.clear(room_id)

    async def rank(self, state: RoomState, listeners: int) -> None:
        """Place a live room in the lobby's ranking by everyone in it: its stage (``state``)
        and its ``listeners``. After a stage change here, and once a tick from each node with
        people in the room (signalling/audience_tick.py), for the audience's comings and goings."""
        await self.redis.zadd(keys.LIVE_ACTIVITY,
                              {state.room_id: _stage_size(state) + listeners}, xx=True)

    # --- listeners -----------------------------------------------------------------------------

    async def member(self, room_id: str, user_id: str) -> Participant | None:
        """Someone in the live room, on stage or in the audience; None if not in it."""
        state = await self.load(room_id)
        if state is None or not state.live:
            return None
        return state.get(user_id) or await self.audience.listener(room_id, user_id)

    async def view(self, room_id: str, viewer: str) -> RoomState | None:
        """The stage as ``viewer`` sees it: with themselves if they listen, and for a moderator
        the listeners with a raised hand or an invitation."""
        state = await self.load(room_id)
        if state is None:
            return None
        wanted = [viewer] if state.get(viewer) is None else []
        me = state.get(viewer)
        if me is not None and me.role.moderates:
            wanted += [u for u in (*state.hand_queue, *sorted(state.invitations))
                       if state.get(u) is None]
        if not wanted:
            return state
        return _with_listeners(state, await self.audience.listeners(room_id, wanted))

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
