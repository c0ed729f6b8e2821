"""The bus between nodes on a real Redis: requests reach the named node and its reply (or its
typed refusal) comes back; a node nobody listens for is unreachable at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from audio_rooms import errors
from audio_rooms.state.bus import BusError, NodeBus, NodeUnreachable
from audio_rooms.state.channels import Channels


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[NodeBus, NodeBus]]:
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    buses = [NodeBus(c, Channels(), f"node-{secrets.token_hex(3)}") for c in clients]
    for bus in buses:
        await bus.start()
        assert await bus.wait_ready(5)
    yield buses[0], buses[1]
    for bus, client in zip(buses, clients, strict=True):
        await bus.stop()
        await client.aclose()


async def test_call_reply_refusal_and_unknown(pair: tuple[NodeBus, NodeBus]) -> None:
    a, b = pair

    async def echo(sender: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"from": sender, "n": body["n"] + 1}

    async def refuse(sender: str, body: dict[str, Any]) -> None:
        raise errors.NotInRoom("no")

    b.handlers.update(echo=echo, refuse=refuse)
    assert await a.call(b.node_id, "echo", {"n": 1}, 5) == {"from": a.node_id, "n": 2}
    with pytest.raises(BusError) as refused:
        await a.call(b.node_id, "refuse", {}, 5)
    assert refused.value.code == "not_in_room"
    assert errors.error_class(refused.value.code) is errors.NotInRoom
    with pytest.raises(BusError) as unknown:
        await a.call(b.node_id, "nope", {}, 5)
    assert unknown.value.code == "unknown_operation"
    assert await a.listening({b.node_id, "nobody"}) == {b.node_id: True, "nobody": False}


async def test_a_node_nobody_listens_for_is_unreachable_at_once(
    pair: tuple[NodeBus, NodeBus]
) -> None:
    a, _ = pair
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NodeUnreachable):
        await a.call("gone", "echo", {}, 10)
    assert loop.time() - started < 5


async def test_a_silent_node_times_out(pair: tuple[NodeBus, NodeBus]) -> None:
    a, b = pair
    never = asyncio.Event()

    async def hang(sender: str, body: dict[str, Any]) -> None:
        await never.wait()

    b.handlers["hang"] = hang
    with pytest.raises(NodeUnreachable):
        await a.call(b.node_id, "hang", {}, 0.5)
