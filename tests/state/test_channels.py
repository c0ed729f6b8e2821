"""Pub/sub on one Redis: when Redis drops the server's pub/sub connection, the server subscribes
again and resyncs its rooms' clients, since whatever was published in between never reached
them. (The same on a cluster, plain and sharded: tests/state/test_cluster.py.)"""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.conftest import AccountFactory, LiveRoom


async def test_a_dropped_pubsub_connection_resyncs_the_room(
    live_room: LiveRoom, make_account: AccountFactory, redis: aioredis.Redis,
) -> None:
    ana = await make_account("Ana")
    ana_c = await live_room.join(ana)
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await live_room.host_c.expect("snapshot", timeout=10)
    await ana_c.expect("snapshot", timeout=10)
    await ana_c.send("raise_hand")
    await live_room.host_c.expect("hand_raised", user_id=ana.user_id)
