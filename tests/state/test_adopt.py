"""A live room left in Redis by a version before the audience tier (keys without a hash tag,
listeners in the stage hash) is adopted by a node of this version when it starts: its people
are still there, on stage and in the audience."""

from __future__ import annotations

import redis.asyncio as aioredis

from audio_rooms.state import keys
from tests.conftest import AccountFactory, RunningServer, ServerFactory, create_room, join


async def test_a_room_in_the_old_layout_is_adopted_on_start(
    make_server: ServerFactory, make_account: AccountFactory, server: RunningServer,
    redis: aioredis.Redis
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana")
    room_id = await create_room(server, host)
    first = await make_server(grace_period=60.0)
    host_c = await join(first, room_id, host)
    ana_c = await join(first, room_id, ana)
    await host_c.close()
    await ana_c.close()
    await first.stop()
    # Write the room back as the old version kept it.
    listener = await redis.get(keys.room_listener(room_id, ana.user_id))
    assert listener is not None
    await redis.hset(keys.room_people(room_id), ana.user_id, listener)
    await redis.delete(keys.room_listener(room_id, ana.user_id), keys.room_audience(room_id))
    for suffix, new in (("meta", keys.room_meta), ("people", keys.room_people),
                        ("presence", keys.room_presence)):
        await redis.rename(new(room_id), f"ar:room:{room_id}:{suffix}")

    upgraded = await make_server(grace_period=60.0)
    host_again = await join(upgraded, room_id, host)
    assert host_again.welcome["resumed"] is True
    audience = host_again.welcome["room"]["audience"]
    assert audience["count"] == 1
    assert [p["user_id"] for p in audience["page"]["listeners"]] == [ana.user_id]
    assert await redis.exists(f"ar:room:{room_id}:meta") == 0
