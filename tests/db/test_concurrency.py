from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from audio_rooms.db import Database, UserRecord

MakeUser = Callable[..., Awaitable[UserRecord]]


async def test_concurrent_writers_do_not_fail_or_duplicate(
    db: Database, make_user: MakeUser
) -> None:
    # A room filling up: many requests at once, several of them the same, from worker threads.
    host = await make_user()
    fans = [await make_user() for _ in range(8)]
    room = await db.create_room("Busy", "", "open", host.id, None, start_now=True)

    await asyncio.gather(
        *(db.follow(fan.id, host.id) for fan in fans for _ in range(3)),
        *(db.add_ban(room.id, "troll@test.example", host.id, "") for _ in range(8)),
        *(db.create_session(fan.id, 60) for fan in fans),
        *(db.log_moderation(room.id, host.id, "mute", fan.id, {}) for fan in fans),
    )

    assert await db.followers_count(host.id) == len(fans)
    assert await db.is_banned(room.id, "troll@test.example")
    assert len(await db.moderation_log(room.id)) == len(fans)
