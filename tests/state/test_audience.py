"""The audience tier in a real Redis: exact capacity under concurrent joins from two stores (two
processes, as far as Redis can tell), join order kept through pages, leaves, and joins checked
against the version of the rules they were decided on."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from audio_rooms.domain import actions as a
from audio_rooms.domain.roles import Role, Visibility
from audio_rooms.domain.room import Limits, Participant, UserId, new_room
from audio_rooms.state import keys
from audio_rooms.state.audience import parse_cursor
from audio_rooms.state.store import RoomStore


def listener(user_id: str, joined_at: float) -> Participant:
    return Participant(UserId(user_id), user_id.title(), Role.LISTENER, True, joined_at, joined_at)


@pytest.fixture
async def room(redis: aioredis.Redis) -> AsyncIterator[str]:
    room_id = f"aud-{secrets.token_hex(4)}"
    state = new_room(room_id, "Big", Visibility.OPEN, "host", time.time(), Limits(5, 50))
    await RoomStore(redis).create(state)
    yield room_id
    await RoomStore(redis).audience.clear(room_id)
    await redis.delete(keys.room_meta(room_id), keys.room_people(room_id),
                       keys.room_presence(room_id))


async def test_capacity_is_exact_under_concurrent_joins_from_two_nodes(
    redis: aioredis.Redis, redis_url: str, room: str
) -> None:
    other = aioredis.from_url(redis_url)
    try:
        stores = [RoomStore(redis), RoomStore(other)]
        now = time.time()
        results = await asyncio.gather(*(
            stores[n % 2].audience.join(room, listener(f"l{n}", now + n / 1000), 0, now + 60)
            for n in range(80)
        ))
    finally:
        await other.aclose()
    assert results.count("joined") == 50 and results.count("full") == 30
    audience = RoomStore(redis).audience
    assert await audience.count(room) == 50
    # Nobody half-joined: every counted listener has a record, nobody else has one.
    page = await audience.page(room, None, 100)
    assert len(page.listeners) == 50 and page.next is None
    assert await redis.exists(*[keys.room_listener(room, f"l{n}") for n in range(80)]) == 50


async def test_pages_walk_the_audience_in_join_order_without_gaps_or_repeats(
    redis: aioredis.Redis, room: str
) -> None:
    audience = RoomStore(redis).audience
    now = time.time()
    # Several joined in the same millisecond: ties are read in a stable order across pages.
    for n in range(45):
        assert await audience.join(room, listener(f"p{n:02d}", now + (n // 4) / 1000), 0,
                                   now + 60) == "joined"
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await audience.page(room, cursor, 7)
        seen += [p.user_id for p in page.listeners]
        pages += 1
        if page.next is None:
            break
        cursor = page.next
    assert seen == [f"p{n:02d}" for n in range(45)] and pages == 7
    assert page.count == 45
    # Someone leaving between two pages does not shift the next page.
    first = await audience.page(room, None, 10)
    assert await audience.leave(room, "p03") == "left"
    second = await audience.page(room, first.next, 10)
    assert [p.user_id for p in second.listeners] == [f"p{n:02d}" for n in range(10, 20)]
    assert second.count == 44
    with pytest.raises(ValueError):
        parse_cursor("not a cursor")


async def test_a_join_decided_on_an_old_version_is_refused_as_stale(
    redis: aioredis.Redis, room: str
) -> None:
    store = RoomStore(redis)
    state = await store.load(room)
    assert state is not None
    # The host arrives (a stage transition: a new version, as closing the door to guests is)...
    await store.transition(room, "host", a.Join(display_name="Host", is_guest=False))
    # ...so a join whose rules were checked on the version before must check them again.
    assert await store.audience.join(room, listener("late", time.time()), state.version,
                                     time.time() + 60) == "stale"
    assert await store.audience.count(room) == 0


async def test_a_listener_with_a_raised_hand_leaves_through_a_transition(
    redis: aioredis.Redis, room: str
) -> None:
    store = RoomStore(redis)
    await store.transition(room, "host", a.Join(display_name="Host", is_guest=False))
    state = await store.load(room)
    assert state is not None
    ana = Participant(UserId("ana"), "Ana", Role.LISTENER, False, time.time(), time.time())
    assert await store.audience.join(room, ana, state.version, time.time() + 60) == "joined"
    raised = await store.transition(room, "ana", a.RaiseHand())
    assert [e.type for e in raised.events] == ["hand_raised"]
    assert raised.events[0].data["participant"]["display_name"] == "Ana"
    # The stage is not where a listener is kept, even with a hand up.
    assert await redis.hexists(keys.room_people(room), "ana") == 0

    left = await store.transition(room, "ana", a.Leave())
    assert [e.type for e in left.events] == ["hand_lowered", "participant_left"]
    assert left.events[-1].audience.value == "moderators"  # not announced to the room
    assert left.state.hand_queue == ()
    assert await store.audience.count(room) == 0
    assert await redis.exists(keys.room_listener(room, "ana")) == 0


async def test_coming_on_stage_and_going_back_moves_between_the_tiers(
    redis: aioredis.Redis, room: str
) -> None:
    store = RoomStore(redis)
    await store.transition(room, "host", a.Join(display_name="Host", is_guest=False))
    state = await store.load(room)
    assert state is not None
    joined_at = time.time() - 5
    ana = Participant(UserId("ana"), "Ana", Role.LISTENER, False, joined_at, joined_at)
    await store.audience.join(room, ana, state.version, time.time() + 60)
    await store.transition(room, "host", a.InviteToSpeak("ana"))
    accepted = await store.transition(room, "ana", a.AcceptInvitation())
    assert accepted.events[0].data["participant"]["role"] == "speaker"
    assert await store.audience.count(room) == 0
    staged = await store.load(room)
    assert staged is not None and staged.get("ana") is not None

    await store.transition(room, "host", a.MoveToAudience("ana"))
    assert await store.audience.count(room) == 1
    back = await store.audience.listener(room, "ana")
    assert back is not None and back.role is Role.LISTENER
    # Back in the audience in the place their first join gave them.
    assert await redis.zscore(keys.room_audience(room), "ana") == int(joined_at * 1000)
    after = await store.load(room)
    assert after is not None and after.get("ana") is None


async def test_ending_the_room_clears_its_audience(redis: aioredis.Redis, room: str) -> None:
    store = RoomStore(redis)
    await store.transition(room, "host", a.Join(display_name="Host", is_guest=False))
    state = await store.load(room)
    assert state is not None
    now = time.time()
    for n in range(30):
        await store.audience.join(room, listener(f"e{n}", now), state.version, now + 60)
    await store.transition(room, "host", a.EndRoom())
    assert await store.audience.count(room) == 0
    assert await redis.exists(*[keys.room_listener(room, f"e{n}") for n in range(30)]) == 0
    assert await store.audience.join(room, listener("after", now), state.version + 1,
                                     now + 60) == "ended"
