"""Origin leases on a real Redis: one holder at a time, a new epoch per claim, and a holder that
lost its lease cannot renew it (it fences itself)."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis

from audio_rooms.state.leases import Lease, OriginLeases


def _room() -> str:
    return secrets.token_hex(4)


async def test_one_holder_and_a_new_epoch_per_claim(redis: aioredis.Redis) -> None:
    leases, room = OriginLeases(redis, 5), _room()
    first = await leases.claim(room, "a")
    assert first.node_id == "a"
    assert await leases.claim(room, "b") == first  # held: b is told who holds it
    replaced = await leases.claim(room, "b", replacing=first)  # a is gone: b takes over
    assert replaced.node_id == "b" and replaced.epoch == first.epoch + 1
    assert not await leases.renew(room, first)  # a, back, is fenced
    assert await leases.renew(room, replaced)
    assert await leases.read(room) == replaced


async def test_a_lapsed_lease_is_free_and_release_is_only_the_holders(
    redis: aioredis.Redis
) -> None:
    leases, room = OriginLeases(redis, 0.2), _room()
    first = await leases.claim(room, "a")
    await asyncio.sleep(0.3)
    assert await leases.read(room) is None
    second = await leases.claim(room, "b")
    assert second.epoch == first.epoch + 1
    await leases.release(room, first)  # not a's to release
    assert await leases.read(room) == second
    await leases.release(room, second)
    assert await leases.read(room) is None


async def test_renew_restores_a_lease_lost_in_a_redis_hiccup_only_for_its_epoch(
    redis: aioredis.Redis
) -> None:
    leases, room = OriginLeases(redis, 5), _room()
    held = await leases.claim(room, "a")
    await redis.delete(f"ar:room:{{{room}}}:origin")
    assert await leases.renew(room, held)
    assert await leases.read(room) == held
    assert Lease.parse("node|x") is None and Lease.parse(b"n-1|7") == Lease("n-1", 7)
