"""RoomStore's WATCH/retry core, with two stores (two processes, as far as the store can tell)
on one real Redis: a change another store commits between our WATCH and our EXEC is never lost,
and neither is ours. The changes here are people coming on stage (what WATCHed transitions are
for; listeners join through the audience script, tests/state/test_audience.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from audio_rooms import errors
from audio_rooms.domain.events import participant_joined
from audio_rooms.domain.roles import Role, Visibility
from audio_rooms.domain.room import Participant, RoomState, UserId, new_room
from audio_rooms.domain.transitions import Outcome
from audio_rooms.state import keys
from audio_rooms.state.store import MAX_ATTEMPTS, RoomStore

Work = Callable[[RoomStore], Awaitable[Any]]


@pytest.fixture
async def room_id(redis: aioredis.Redis) -> AsyncIterator[str]:
    """A live room made by one store, its keys deleted afterwards."""
    room = f"store-{secrets.token_hex(4)}"
    await RoomStore(redis).create(new_room(room, "Store", Visibility.OPEN, "host", time.time()))
    yield room
    await redis.delete(keys.room_meta(room), keys.room_people(room), keys.room_presence(room))
    await redis.srem(keys.LIVE_ROOMS, room)
    await redis.zrem(keys.LIVE_ACTIVITY, room)


def other_store(redis_url: str, work: Work) -> Any:
    """Run ``work`` to completion on a second RoomStore with its own connection and event loop.

    Called from inside a rule, it lands exactly between the first store's WATCH and its EXEC,
    which is the race that store has to survive."""

    async def run() -> Any:
        client = aioredis.from_url(redis_url)
        try:
            return await work(RoomStore(client))
        finally:
            await client.aclose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=10)


def to_stage(state: RoomState, user_id: str, now: float) -> Outcome:
    """A rule that puts ``user_id`` on stage as a speaker (a stage change, versioned)."""
    speaker = Participant(UserId(user_id), user_id, Role.SPEAKER, False, now, now)
    people = {**state.participants, speaker.user_id: speaker}
    new = replace(state, participants=people, version=state.version + 1)
    return Outcome(new, (participant_joined(speaker.to_wire(), user_id),))


def on_stage(user_id: str) -> Callable[[RoomState, float], Outcome]:
    return lambda state, now: to_stage(state, user_id, now)


def joiner(room_id: str, user_id: str) -> Work:
    async def work(store: RoomStore) -> Outcome:
        return await store.change(room_id, on_stage(user_id))

    return work


async def test_a_change_committed_meanwhile_makes_ours_retry_on_top_of_it(
    redis: aioredis.Redis, redis_url: str, room_id: str
) -> None:
    store = RoomStore(redis)
    seen: list[RoomState] = []

    def rule(state: RoomState, now: float) -> Outcome:
        seen.append(state)
        if len(seen) == 1:
            other_store(redis_url, joiner(room_id, "bob"))
        return to_stage(state, "alice", now)

    outcome = await store.change(room_id, rule)

    assert len(seen) == 2, "the first EXEC should have failed on the other store's write"
    assert seen[1].get("bob") is not None  # the retry computed on the fresh state
    assert {"alice", "bob"} <= set(outcome.state.participants)
    stored = await RoomStore(redis).load(room_id)
    assert stored is not None and {"alice", "bob"} <= set(stored.participants)
    assert stored.version == outcome.state.version


async def test_a_room_that_never_stays_still_gives_version_conflict(
    redis: aioredis.Redis, redis_url: str, room_id: str
) -> None:
    store = RoomStore(redis)
    attempts = 0

    def rule(state: RoomState, now: float) -> Outcome:
        nonlocal attempts
        attempts += 1
        other_store(redis_url, joiner(room_id, f"other{attempts}"))
        return to_stage(state, "alice", now)

    with pytest.raises(errors.VersionConflict):
        await store.change(room_id, rule)

    assert attempts == MAX_ATTEMPTS
    stored = await RoomStore(redis).load(room_id)
    assert stored is not None
    # Every change of the other store landed; ours was refused as a whole, not half-written.
    assert {f"other{n}" for n in range(1, MAX_ATTEMPTS + 1)} <= set(stored.participants)
    assert stored.get("alice") is None
    # And the room is not stuck: the next change goes through.
    outcome = await store.change(room_id, on_stage("alice"))
    assert outcome.state.get("alice") is not None


async def test_a_store_does_not_serve_its_cache_after_another_store_wrote(
    redis: aioredis.Redis, redis_url: str, room_id: str
) -> None:
    store = RoomStore(redis)
    await store.change(room_id, on_stage("alice"))
    cached = await store.load(room_id)
    assert cached is not None and set(cached.participants) == {"alice"}

    other_store(redis_url, joiner(room_id, "bob"))

    fresh = await store.load(room_id)
    assert fresh is not None and {"alice", "bob"} == set(fresh.participants)
    # A transition on the cached store builds on the other store's write, not on its cache.
    outcome = await store.change(room_id, on_stage("carol"))
    assert set(outcome.state.participants) == {"alice", "bob", "carol"}


async def test_two_stores_racing_lose_no_change(
    redis: aioredis.Redis, redis_url: str, room_id: str
) -> None:
    first, second = RoomStore(redis), RoomStore(aioredis.from_url(redis_url))
    try:
        await asyncio.gather(
            *(
                store.change(room_id, on_stage(f"{name}{n}"))
                for n in range(15)
                for name, store in (("a", first), ("b", second))
            )
        )
    finally:
        await second.redis.aclose()
    stored = await RoomStore(redis).load(room_id)
    assert stored is not None
    assert {f"{name}{n}" for n in range(15) for name in "ab"} == set(stored.participants)
