"""A live room on two servers configured with three sentinels: the primary is killed (SIGKILL),
the sentinels promote the replica, and the room carries on. Every stage action acknowledged
before the kill is still there afterwards (AUDIO_ROOMS_REDIS_REPLICA_ACKS=1), joins and stage
actions work again within the documented bound, and their deltas reach everyone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conftest import (
    Account,
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
    eventually,
    join,
)
from tests.redis_topologies import MASTER_NAME, SentinelTopology, sentinel_topology

# docs/operations.md, "Redis deployments": down-after-milliseconds (1 s here), the sentinels'
# election and the promotion (a few seconds), the servers' reconnection (under a second).
FAILOVER_BOUND = 15.0


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelTopology]:
    with sentinel_topology(tmp_path / "redis") as topology:
        yield topology


def on_sentinels(topology: SentinelTopology, **more: Any) -> dict[str, Any]:
    return {
        "redis_url": None,
        "redis_sentinels": topology.sentinel_addresses,
        "redis_sentinel_master": MASTER_NAME,
        # The outage must not outlast a connected participant's presence lease.
        "grace_period": 15.0,
        **more,
    }


@pytest.fixture
async def server(sentinels: SentinelTopology, make_server: ServerFactory) -> RunningServer:
    """Overrides conftest's: the first server, on the sentinels (make_account signs up here)."""
    return await make_server(**on_sentinels(sentinels, redis_replica_acks=1,
                                            redis_replica_timeout=2.0))


async def got(client: Client, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
    """The message of this type (and fields) this client received, already or next."""
    for message in client.seen:
        if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
            return message
    return await client.expect(kind, timeout=timeout, **match)


async def acked(client: Client, kind: str, ref: str, **fields: Any) -> int:
    await client.send(kind, ref=ref, **fields)
    return int((await client.expect("ack", ref=ref))["version"])


async def test_acknowledged_stage_actions_survive_a_killed_primary(
    sentinels: SentinelTopology, server: RunningServer, make_server: ServerFactory,
    make_account: AccountFactory,
) -> None:
    other = await make_server(**on_sentinels(sentinels, redis_replica_acks=1,
                                             redis_replica_timeout=2.0))
    host, ana, ben, cy = [await make_account(n) for n in ("Host", "Ana", "Ben", "Cy")]
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    ana_c = await join(other, room_id, ana)
    ben_c = await join(server, room_id, ben)
    cy_c = await join(other, room_id, cy)
    everyone = [host_c, ana_c, ben_c, cy_c]

    # Stage actions, each acknowledged (after a replica confirmed it).
    await acked(ana_c, "raise_hand", "h")
    await acked(host_c, "invite_to_speak", "i", user_id=ana.user_id)
    await acked(ana_c, "accept_invitation", "a")
    await acked(host_c, "mute", "m", user_id=ana.user_id)
    last = await acked(ben_c, "raise_hand", "h2")
    for c in everyone:
        await got(c, "mute_changed", user_id=ana.user_id)
    assert await _shortfalls(server) == 0
    listed = await _cli(server, sentinels, "rooms", "list")  # the admin CLI finds the primary
    assert listed.returncode == 0 and room_id in listed.stdout, listed.stderr

    killed_at = time.monotonic()
    sentinels.primary.kill()

    # Joins work again: a new listener gets in, through either server.
    dan = await make_account_retrying(make_account, "Dan", killed_at)
    dan_c = await join_retrying(other, room_id, dan, killed_at)
    joined_after = time.monotonic() - killed_at
    sentinels.wait_for_failover(within=FAILOVER_BOUND)
    failover_after = time.monotonic() - killed_at

    # Everything acknowledged before the kill is in the room the new primary holds.
    state = await server.services.store.load(room_id)
    assert state is not None
    assert state.version >= last
    ana_now = state.get(ana.user_id)
    assert ana_now is not None and ana_now.role.value == "speaker"
    assert ana_now.muted_by_moderator
    assert ben.user_id in state.hand_queue

    # Stage actions work again and their deltas reach everyone on both servers.
    acted_after = await _act_retrying(host_c, "invite_to_speak", ben.user_id, killed_at)
    await got(ben_c, "invited", user_id=ben.user_id)
    await acked(ben_c, "accept_invitation", "a2")
    for c in [*everyone, dan_c]:
        await got(c, "role_changed", user_id=ben.user_id, timeout=10)
    await acked(host_c, "unmute", "u", user_id=ana.user_id)
    for c in [*everyone, dan_c]:
        await got(c, "mute_changed", user_id=ana.user_id, muted_by_moderator=False, timeout=10)

    # The new primary has no replica: WAIT falls short, counted in the metrics, not refused.
    assert await _shortfalls(server) >= 1
    print(f"\nfailover: sentinels promoted the replica {failover_after:.1f}s after the kill; "
          f"a join worked {joined_after:.1f}s and a stage action {acted_after:.1f}s after it")
    assert max(joined_after, acted_after) < FAILOVER_BOUND


async def test_an_ack_waits_for_the_replica_and_without_it_an_acked_action_can_be_lost(
    sentinels: SentinelTopology, make_server: ServerFactory,
) -> None:
    """What the bound is for. Room A's server has REPLICA_ACKS=1, room B's has none. The
    replica stops reading for a moment (SIGSTOP): A's invitation is not acknowledged until the
    replica confirms it. Then B's replica link is cut and the replica stopped again: B's
    invitation is acknowledged by the primary alone, the primary dies, and after the failover
    that acknowledged invitation is gone, while A's is there."""
    waiting = await make_server(**on_sentinels(sentinels, redis_replica_acks=1,
                                               redis_replica_timeout=10.0))
    plain = await make_server(**on_sentinels(sentinels))
    host, ana = await _signup(plain, "Host"), await _signup(plain, "Ana")
    room_a, room_b = await create_room(plain, host), await create_room(plain, host)
    host_a, ana_a = await join(waiting, room_a, host), await join(waiting, room_a, ana)
    host_b, ana_b = await join(plain, room_b, host), await join(plain, room_b, ana)
    await acked(ana_a, "raise_hand", "h")
    hand_b = await acked(ana_b, "raise_hand", "h")

    replica = sentinels.replica.pid
    os.kill(replica, signal.SIGSTOP)
    try:
        await host_a.send("invite_to_speak", ref="i", user_id=ana.user_id)
        early = [m for m in await host_a.quiet(0.7) if m["type"] == "ack"]
        assert early == [], "acknowledged before the replica had it"
    finally:
        os.kill(replica, signal.SIGCONT)
    invite_a = int((await host_a.expect("ack", ref="i"))["version"])

    # A listener's join (the audience's script, not a transition) waits for the replica too.
    cy = await _signup(plain, "Cy")
    os.kill(replica, signal.SIGSTOP)
    try:
        cy_a = await connect(waiting, room_a, cy)
        early = [m for m in await cy_a.quiet(0.7) if m["type"] == "welcome"]
        assert early == [], "welcomed before the replica had the join"
    finally:
        os.kill(replica, signal.SIGCONT)
    await cy_a.expect("welcome")

    with sentinels.primary.client() as primary:
        os.kill(replica, signal.SIGSTOP)
        try:
            primary.execute_command("CLIENT", "KILL", "TYPE", "slave")
            invite_b = await acked(host_b, "invite_to_speak", "i", user_id=ana.user_id)
            sentinels.primary.kill()
        finally:
            os.kill(replica, signal.SIGCONT)
    sentinels.wait_for_failover(within=FAILOVER_BOUND)

    async def readable() -> bool:
        try:
            return await plain.services.store.load(room_b) is not None
        except Exception:
            return False

    await eventually(readable, within=FAILOVER_BOUND)
    state_a = await plain.services.store.load(room_a)
    state_b = await plain.services.store.load(room_b)
    assert state_a is not None and state_b is not None
    assert state_a.version == invite_a and ana.user_id in state_a.invitations
    assert invite_b > hand_b
    assert state_b.version == hand_b and ana.user_id not in state_b.invitations


async def _signup(server: RunningServer, name: str) -> Account:
    async with server.http() as http:
        response = await http.post("/api/auth/signup", json={
            "handle": name.lower() + str(os.getpid() % 1000), "display_name": name,
            "password": "correct horse battery", "locale": "en",
        })
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["user"]["id"], body["token"], name)


async def _cli(server: RunningServer, topology: SentinelTopology,
               *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(server.settings.data_dir),
        "AUDIO_ROOMS_REDIS_SENTINELS": topology.sentinel_addresses,
        "AUDIO_ROOMS_REDIS_SENTINEL_MASTER": MASTER_NAME,
        "AUDIO_ROOMS_SECRET_KEY": server.settings.secret_key or "",
    }
    env.pop("AUDIO_ROOMS_REDIS_URL", None)
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "audio_rooms", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


async def _shortfalls(server: RunningServer) -> float:
    async with server.http() as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("audio_rooms_redis_replica_shortfalls_total "):
            return float(line.split()[1])
    raise AssertionError("no shortfall counter in /metrics")


async def make_account_retrying(make_account: AccountFactory, name: str,
                                since: float) -> Account:
    while True:
        try:
            return await make_account(name)
        except AssertionError:  # 503 while Redis is failing over
            if time.monotonic() - since > FAILOVER_BOUND:
                raise
            await asyncio.sleep(0.2)


async def join_retrying(server: RunningServer, room_id: str, account: Account,
                        since: float) -> Client:
    while True:
        try:
            return await join(server, room_id, account)
        except (AssertionError, websockets.ConnectionClosed, TimeoutError):
            if time.monotonic() - since > FAILOVER_BOUND:
                raise
            await asyncio.sleep(0.2)


async def _act_retrying(client: Client, kind: str, user_id: str, since: float) -> float:
    """Send the action until it is acknowledged; seconds from ``since`` to that ack."""
    attempt = 0
    while True:
        attempt += 1
        ref = f"retry-{attempt}"
        await client.send(kind, ref=ref, user_id=user_id)
        while True:
            reply = await client.recv(FAILOVER_BOUND)
            if reply.get("ref") == ref:
                break
        if reply["type"] == "ack":
            return time.monotonic() - since
        if time.monotonic() - since > FAILOVER_BOUND:
            raise AssertionError(f"{kind} still refused: {reply}")
        await asyncio.sleep(0.2)
