from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from audio_rooms.db import Database, RoomRecord, UserRecord
from audio_rooms.errors import InvalidField, RoomNotFound, UserNotFound

MakeUser = Callable[..., Awaitable[UserRecord]]


async def _room(db: Database, host: UserRecord) -> RoomRecord:
    return await db.create_room("Room", "", "open", host.id, None, start_now=True)


async def test_room_ban_holds_in_that_room_only(db: Database, make_user: MakeUser) -> None:
    host, troll = await make_user(), await make_user()
    room, other_room = await _room(db, host), await _room(db, host)

    ban = await db.add_ban(room.id, troll.id, host.id, "spam")

    assert ban.room_id == room.id and ban.reason == "spam"
    assert await db.is_banned(room.id, troll.id)
    assert not await db.is_banned(other_room.id, troll.id)
    assert not await db.is_banned(room.id, host.id)


async def test_banning_twice_keeps_one_ban(db: Database, make_user: MakeUser) -> None:
    host, troll = await make_user(), await make_user()
    room = await _room(db, host)

    first = await db.add_ban(room.id, troll.id, host.id, "spam")
    second = await db.add_ban(room.id, troll.id, host.id, "spam again")

    assert second == first
    assert await db.remove_ban(room.id, troll.id) is True
    assert not await db.is_banned(room.id, troll.id)
    assert await db.remove_ban(room.id, troll.id) is False


async def test_server_ban_holds_in_every_room(db: Database, make_user: MakeUser) -> None:
    host, troll = await make_user(), await make_user()
    room, other_room = await _room(db, host), await _room(db, host)

    await db.add_ban(None, troll.id, host.id, "abuse")
    await db.add_ban(None, troll.id, host.id, "abuse, again")

    assert await db.is_banned(room.id, troll.id)
    assert await db.is_banned(other_room.id, troll.id)
    assert await db.is_banned(None, troll.id)
    # Lifting a room ban that does not exist leaves the server ban alone.
    assert await db.remove_ban(room.id, troll.id) is False
    assert await db.is_banned(room.id, troll.id)
    assert await db.remove_ban(None, troll.id) is True
    assert not await db.is_banned(room.id, troll.id)


async def test_guests_and_remote_users_can_be_banned(db: Database, make_user: MakeUser) -> None:
    host = await make_user()
    room = await _room(db, host)

    await db.add_ban(room.id, "guest-abc@test.example", host.id, "")
    await db.add_ban(room.id, "someone@other.example", host.id, "")

    assert await db.is_banned(room.id, "guest-abc@test.example")
    assert await db.is_banned(room.id, "someone@other.example")


async def test_ban_in_unknown_room_is_refused(db: Database, make_user: MakeUser) -> None:
    host = await make_user()

    with pytest.raises(RoomNotFound):
        await db.add_ban("missing", "x@test.example", host.id, "")


async def test_moderation_log_newest_first(db: Database, make_user: MakeUser) -> None:
    host, speaker = await make_user(), await make_user()
    room = await _room(db, host)

    await db.log_moderation(room.id, host.id, "invite_to_stage", speaker.id, {})
    await db.log_moderation(room.id, host.id, "mute", speaker.id, {"reason": "نویز"})
    await db.log_moderation(room.id, host.id, "end_room", None, {})

    entries = await db.moderation_log(room.id, limit=10)

    assert [e.action for e in entries] == ["end_room", "mute", "invite_to_stage"]
    assert entries[1].detail == {"reason": "نویز"}
    assert entries[0].target_id is None
    assert [e.action for e in await db.moderation_log(room.id, limit=1)] == ["end_room"]


async def test_follows(db: Database, make_user: MakeUser) -> None:
    sara, reza, mina = await make_user(), await make_user(), await make_user()

    await db.follow(sara.id, reza.id)
    await db.follow(sara.id, reza.id)
    await db.follow(sara.id, mina.id)
    await db.follow(mina.id, reza.id)

    assert await db.following(sara.id) == [reza.id, mina.id]
    assert await db.followers_count(reza.id) == 2
    assert await db.followers_count(sara.id) == 0
    assert await db.followers_among(mina.id, ["x@test.example", sara.id]) == {sara.id}
    assert await db.followers_among(sara.id, [reza.id, mina.id]) == set()
    assert await db.followers_among(mina.id, []) == set()

    assert await db.unfollow(sara.id, reza.id) is True
    assert await db.unfollow(sara.id, reza.id) is False
    assert await db.following(sara.id) == [mina.id]
    assert await db.followers_count(reza.id) == 1


async def test_cannot_follow_yourself_or_nobody(db: Database, make_user: MakeUser) -> None:
    sara = await make_user()

    with pytest.raises(InvalidField):
        await db.follow(sara.id, sara.id)
    with pytest.raises(UserNotFound):
        await db.follow(sara.id, "nobody@test.example")
