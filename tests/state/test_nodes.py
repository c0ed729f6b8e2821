"""The node registry: server processes sharing a Redis see each other with their load; one that
stops leaves at once, one that stops beating drops out by itself; operators list them."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from audio_rooms.state.nodes import NodeInfo, NodeLoad, NodeRegistry
from tests.conftest import AccountFactory, ServerFactory, create_room, eventually, join
from tests.test_admin_cli import cli


async def test_nodes_see_each_other_with_their_load_and_leave_when_stopped(
    make_server: ServerFactory, make_account: AccountFactory, redis: aioredis.Redis
) -> None:
    node_a = await make_server(node_heartbeat_interval=0.3)
    node_b = await make_server(node_heartbeat_interval=0.3)
    registry = NodeRegistry(redis, 0.3)
    a = node_a.services.node
    b = node_b.services.node
    assert a is not None and b is not None

    async def listed() -> dict[str, NodeInfo]:
        return {info.node_id: info for info in await registry.nodes()}

    async def both_listed() -> bool:
        return {a.node_id, b.node_id} <= set(await listed())

    await eventually(both_listed)
    assert (await listed())[b.node_id].address == f"127.0.0.1:{node_b.port}"

    host = await make_account("Host")
    await join(node_a, await create_room(node_a, host), host)

    async def a_reports_its_room() -> bool:
        load = (await listed())[a.node_id].load
        return load.connections == 1 and load.rooms == 1

    await eventually(a_reports_its_room)
    async with node_b.http() as http:
        metrics = (await http.get("/metrics")).text
    assert "audio_rooms_nodes " in metrics
    assert f'audio_rooms_node_load{{figure="connections",node="{a.node_id}"}}' in metrics

    shown = await cli(node_a, "nodes", "list")
    assert shown.returncode == 0, shown.stderr
    assert a.node_id in shown.stdout and b.node_id in shown.stdout

    await node_b.stop()
    assert b.node_id not in await listed()  # gone at once, not after its TTL
    assert a.node_id in await listed()


async def test_a_node_that_stops_beating_drops_out_by_itself(redis: aioredis.Redis) -> None:
    registry = NodeRegistry(redis, 0.2)
    ghost = NodeInfo(
        node_id="ghost-1", host="gone", pid=1, address="10.0.0.9:8000",
        started_at=time.time(), seen_at=time.time(),
        load=NodeLoad(connections=0, rooms=0, media_packets_per_second=0.0, cpu=0.0),
    )
    await registry.beat(ghost)
    assert "ghost-1" in [n.node_id for n in await registry.nodes()]

    async def gone() -> bool:
        return "ghost-1" not in [n.node_id for n in await registry.nodes()]

    await eventually(gone, within=3)  # three missed beats: 0.6 s
