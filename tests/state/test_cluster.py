"""Two servers on a three-master Redis Cluster: rooms on different shards each work end to end
(joins, a host's stage action reaching every client on both servers, reactions, a leave), with
plain pub/sub on Redis 6 and sharded pub/sub on Redis 7."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

from audio_rooms.state import keys
from audio_rooms.state.channels import Channels
from audio_rooms.state.replication import ReplicaAcks
from tests.conftest import (
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    join,
)
from tests.redis_topologies import ClusterTopology, cluster_topology, redis7_binary

REDIS7 = redis7_binary()


@pytest.fixture(params=[
    pytest.param(None, id="redis6-plain-pubsub"),
    pytest.param("7", id="redis7-sharded-pubsub", marks=pytest.mark.skipif(
        REDIS7 is None, reason="no redis-server >= 7 here (Debian's redis-server package)")),
])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClusterTopology]:
    binary = REDIS7 if request.param else None
    with cluster_topology(tmp_path / "cluster", binary=binary) as topology:
        yield topology


@pytest.fixture
async def server(cluster: ClusterTopology, make_server: ServerFactory) -> RunningServer:
    """Overrides conftest's: the first server, on the cluster (make_account signs up here)."""
    return await make_server(redis_url=None, redis_cluster_nodes=cluster.node_addresses)


def cluster_client(cluster: ClusterTopology) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", m.port) for m in cluster.masters])


async def test_rooms_on_different_shards_work_across_two_servers(
    cluster: ClusterTopology, server: RunningServer, make_server: ServerFactory,
    make_account: AccountFactory,
) -> None:
    other = await make_server(redis_url=None, redis_cluster_nodes=cluster.node_addresses)
    sharded = server.services.store.channels.sharded
    with cluster.masters[0].client() as client:
        version = client.info("server")["redis_version"]
    assert sharded == (int(version.split(".")[0]) >= 7)

    # Rooms until two live on different masters (each room's keys on one: its hash tag).
    rooms: dict[int, str] = {}
    hosts = {}
    for n in range(12):
        host = await make_account(f"Host {n}")
        room_id = await create_room(server, host)
        owner = cluster.owner_of(keys.room_meta(room_id))
        assert all(cluster.owner_of(k) == owner for k in (
            keys.room_people(room_id), keys.room_presence(room_id), keys.room_events(room_id)))
        if owner not in rooms:
            rooms[owner] = room_id
            hosts[room_id] = host
        if len(rooms) == 2:
            break
    assert len(rooms) == 2, "every room landed on one master"

    for room_id in rooms.values():
        await _exercise_room(room_id, hosts[room_id], server, other, make_account, cluster,
                             sharded)


async def _exercise_room(room_id: str, host: Any, server: RunningServer, other: RunningServer,
                         make_account: AccountFactory, cluster: ClusterTopology,
                         sharded: bool) -> None:
    host_c = await join(server, room_id, host)
    ana, ben, cy = [await make_account(n) for n in ("Ana", "Ben", "Cy")]
    ana_c = await join(other, room_id, ana)  # the speaker-to-be, on the other server
    ben_c = await join(server, room_id, ben)
    cy_c = await join(other, room_id, cy)
    everyone: list[Client] = [host_c, ana_c, ben_c, cy_c]

    # Both servers subscribe to the room's channel: on the room's own shard when sharded; on
    # whichever master each server's pub/sub connection went to when plain.
    channel = keys.room_events(room_id)
    owner = cluster.owner_of(channel)
    counts = {}
    for node in cluster.masters:
        with node.client() as client:
            counts[node.port] = int(client.execute_command(
                "PUBSUB", "SHARDNUMSUB" if sharded else "NUMSUB", channel)[1])
    assert sum(counts.values()) == 2, counts
    if sharded:
        assert counts[owner] == 2, counts

    # A stage action by the host reaches every client on both servers, at one version.
    await ana_c.send("raise_hand")
    await host_c.expect("hand_raised", user_id=ana.user_id)
    await host_c.send("invite_to_speak", user_id=ana.user_id, ref="inv")
    await ana_c.expect("invited", user_id=ana.user_id)
    await ana_c.send("accept_invitation")
    versions = {(await c.expect("role_changed", user_id=ana.user_id))["version"]
                for c in everyone}
    assert len(versions) == 1
    await host_c.send("mute", user_id=ana.user_id)
    for c in everyone:
        change = await c.expect("mute_changed", user_id=ana.user_id)
        assert change["muted_by_moderator"] is True

    # Reactions from both servers reach everyone.
    await ben_c.send("reaction", emoji="👏")
    await cy_c.send("reaction", emoji="🔥")
    for c in everyone:
        seen: set[str] = set()
        while not {"👏", "🔥"} <= seen:  # one batch per server per tick: one or two messages
            seen |= set((await c.expect("reactions"))["counts"])

    # The speaker leaves: everyone on both servers hears it.
    await ana_c.send("leave")
    for c in (host_c, ben_c, cy_c):
        left = await c.expect("participant_left", user_id=ana.user_id)
        assert left["reason"] == "left"
    # The host ends the room: everyone hears it, and its audience is cleared from its shard.
    await host_c.send("end_room")
    for c in (host_c, ben_c, cy_c):
        await c.expect("room_ended")
    for c in everyone:
        await c.close()
    owner_node = next(m for m in cluster.masters if m.port == owner)

    def audience_left() -> int:
        with owner_node.client() as client:
            return len(client.keys(keys.room_listener(room_id, "*"))) + int(
                client.exists(keys.room_audience(room_id)))

    await eventually(lambda: audience_left() == 0, within=5)


async def test_a_lost_pubsub_connection_is_made_again_and_the_room_resyncs(
    cluster: ClusterTopology, server: RunningServer, make_account: AccountFactory,
) -> None:
    """Every master drops its pub/sub clients (CLIENT KILL TYPE pubsub): the server subscribes
    again (per master when sharded), sends the room's clients a fresh snapshot, and later deltas
    reach them. The room is on the master that also holds the ban channel, so that master's
    channels are of two slots, which cannot be subscribed again in one SSUBSCRIBE."""
    bans_owner = cluster.owner_of(keys.ACCOUNT_BANS)
    for n in range(15):
        host = await make_account(f"Host {n}")
        room_id = await create_room(server, host)
        if cluster.owner_of(keys.room_events(room_id)) == bans_owner:
            break
    else:
        raise AssertionError("no room landed on the ban channel's master")
    ana = await make_account("Ana")
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    killed = 0
    for node in cluster.masters:
        with node.client() as client:
            killed += int(client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    assert killed >= 1
    await host_c.expect("snapshot", timeout=10)
    await ana_c.send("raise_hand")
    await host_c.expect("hand_raised", user_id=ana.user_id)
    await host_c.send("invite_to_speak", user_id=ana.user_id)
    await ana_c.expect("invited", user_id=ana.user_id)


async def test_nodes_register_and_the_admin_cli_works_on_the_cluster(
    cluster: ClusterTopology, server: RunningServer, make_server: ServerFactory,
    make_account: AccountFactory,
) -> None:
    """The node registry writes a node's key and the set of nodes separately (different
    shards); the admin CLI reaches the cluster with the same settings as the servers, and its
    ban reaches a socket on another server (published on the ban channel, sharded on 7)."""
    other = await make_server(redis_url=None, redis_cluster_nodes=cluster.node_addresses,
                              node_heartbeat_interval=0.3)
    ids = [s.services.node.node_id for s in (server, other) if s.services.node is not None]
    shown = await _cli(server, cluster, "nodes", "list")
    assert shown.returncode == 0, shown.stderr
    assert len(ids) == 2 and all(node_id in shown.stdout for node_id in ids), shown.stdout

    host, eve = await make_account("Host"), await make_account("Eve")
    room_id = await create_room(server, host)
    host_c, eve_c = await join(server, room_id, host), await join(other, room_id, eve)
    banned = await _cli(server, cluster, "users", "ban", eve.user_id.split("@")[0])
    assert banned.returncode == 0, banned.stderr
    assert await eve_c.closed_with() == 4011
    await host_c.close()


async def _cli(server: RunningServer, cluster: ClusterTopology,
               *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(server.settings.data_dir),
        "AUDIO_ROOMS_REDIS_CLUSTER_NODES": cluster.node_addresses,
        "AUDIO_ROOMS_SECRET_KEY": server.settings.secret_key or "",
    }
    env.pop("AUDIO_ROOMS_REDIS_URL", None)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "audio_rooms", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


async def test_transactions_and_scripts_on_one_rooms_keys_work_on_the_cluster(
    cluster: ClusterTopology,
) -> None:
    """What the room store relies on, on RedisCluster: WATCH/MULTI over one room's keys with a
    publish inside, a Lua script over one room's keys, and the WAIT after a change."""
    rc = cluster_client(cluster)
    try:
        channels = Channels(sharded=False)
        room = "r-cluster"
        meta, people = keys.room_meta(room), keys.room_people(room)
        await rc.set(meta, "1")
        async with rc.pipeline(transaction=True) as pipe:
            await pipe.watch(meta)
            assert await pipe.get(meta) == b"1"
            assert await pipe.hgetall(people) == {}
            pipe.multi()
            pipe.set(meta, "2")
            pipe.hset(people, "u", "x")
            channels.publish(pipe, keys.room_events(room), "hello")
            assert (await pipe.execute())[:2] == [True, 1]
        script = rc.register_script(
            "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]); return redis.call('GET', KEYS[1])")
        assert await script(keys=[meta, people], args=["v", "y"]) == b"2"
        assert await rc.hlen(people) == 2
        # No replicas here: WAIT 1 falls short, which is counted and not an error.
        acks = ReplicaAcks(rc, 1, 0.05)
        assert await acks.confirm(room) is False
    finally:
        await rc.aclose()


async def test_a_transaction_across_a_room_and_a_global_key_is_refused(
    cluster: ClusterTopology,
) -> None:
    """Why no transaction may mix a room's keys with a global key (docs/operations.md)."""
    rc = cluster_client(cluster)
    try:
        room = "r-mixed"
        with pytest.raises(RedisClusterException, match="same slot"):
            async with rc.pipeline(transaction=True) as pipe:
                pipe.set(keys.room_meta(room), "1")
                pipe.sadd(keys.LIVE_ROOMS, room)
                await pipe.execute()
    finally:
        await rc.aclose()
