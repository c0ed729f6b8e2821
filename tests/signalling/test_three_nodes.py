"""Three real server processes on one Redis and one database: a room's listeners spread over
them see the same count, the same sample and the same pages, and a stage change reaches every
one of them with the same version."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, Client, connect, eventually, free_port, join, read_audience
from tests.serving import serve, stop, wait_ready

LISTENERS = 30


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"


@pytest.fixture
def nodes(tmp_path: Path, redis_url: str) -> Iterator[list[Node]]:
    secret = secrets.token_hex(32)
    started: list[Node] = []
    try:
        for n in range(3):
            port = free_port()
            env = {
                **os.environ,
                "AUDIO_ROOMS_DATA_DIR": str(tmp_path / f"node{n}"),
                # Three nodes, one process each, whatever this machine's core count.
                "AUDIO_ROOMS_WORKERS": "1",
                "AUDIO_ROOMS_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
                "AUDIO_ROOMS_REDIS_URL": redis_url,
                "AUDIO_ROOMS_SECRET_KEY": secret,
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
                "AUDIO_ROOMS_MEDIA_PORT_MIN": str(43000 + 100 * n),
                "AUDIO_ROOMS_MEDIA_PORT_MAX": str(43099 + 100 * n),
                "AUDIO_ROOMS_AUDIENCE_TICK": "0.5",
                "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "1000",
            }
            log = tmp_path / f"node{n}.log"
            started.append(Node(port, serve(port, env, log), log))
            # One at a time: the first migrates the shared SQLite schema (PostgreSQL would
            # take an advisory lock; SQLite has none to offer).
            wait_ready(started[-1].base_url, started[-1].process, started[-1].log)
        yield started
    finally:
        stop(node.process for node in started)


async def account(node: Node, name: str, guest: bool, source: str = "127.0.0.1") -> Account:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=node.base_url, transport=transport) as http:
        if guest:
            response = await http.post("/api/auth/guest", json={"display_name": name})
        else:
            response = await http.post("/api/auth/signup", json={
                "handle": name.lower(), "display_name": name,
                "password": "correct horse battery", "locale": "en",
            })
    assert response.status_code in (200, 201), response.text
    body = response.json()
    return Account(body["user"]["id"], body["token"], name)


async def count_on(client: Client, count: int) -> list[str]:
    """The sample's user ids once this client's node says ``count`` people listen and has had
    two ticks to say anything more."""
    latest = client.welcome["room"]["audience"]
    updates = [m for m in client.seen if m["type"] == "audience"]
    if updates:
        latest = updates[-1]
    if latest["count"] != count:
        latest = await client.expect("audience", timeout=10, count=count)
    for message in await client.quiet(1.2):
        if message["type"] == "audience":
            latest = message
    assert latest["count"] == count
    return [p["user_id"] for p in latest["sample"]]


async def test_three_processes_agree_on_the_audience_and_deliver_the_stage(
    nodes: list[Node]
) -> None:
    host = await account(nodes[0], "Host", guest=False)
    async with httpx.AsyncClient(base_url=nodes[0].base_url,
                                 headers={"Authorization": f"Bearer {host.token}"}) as http:
        created = await http.post("/api/rooms", json={"title": "Three", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    host_c = await join(nodes[0], room_id, host)
    sources = [f"127.0.0.{30 + n % 6}" for n in range(LISTENERS)]
    guests = [await account(nodes[n % 3], f"Guest {n}", True, sources[n])
              for n in range(LISTENERS)]
    clients = await asyncio.gather(*(
        join(nodes[n % 3], room_id, g, source=sources[n]) for n, g in enumerate(guests)
    ))
    watchers = [clients[0], clients[1], clients[2]]  # one on each node
    samples = [await count_on(c, LISTENERS) for c in (host_c, *watchers)]
    assert all(s == samples[0] for s in samples) and len(samples[0]) == 12

    pages = [await read_audience(node.base_url, room_id, 7) for node in nodes]
    assert pages[0] == pages[1] == pages[2]
    assert sorted(pages[0]) == sorted(g.user_id for g in guests)

    await host_c.send("mute", user_id=host.user_id, ref="m")
    version = (await host_c.expect("ack", ref="m"))["version"]
    for client in clients:
        delta = await client.expect("mute_changed", user_id=host.user_id, timeout=10)
        assert delta["version"] == version

    # Listeners leaving on the third node are counted down everywhere.
    leaving = [c for n, c in enumerate(clients) if n % 3 == 2][:5]
    for client in leaving:
        await client.send("leave")
        await client.closed_with()
    for client in (host_c, clients[0], clients[1]):
        await count_on(client, LISTENERS - 5)

    async def lobby_counts() -> bool:
        async with httpx.AsyncClient(base_url=nodes[1].base_url) as http:
            room = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
        return bool(room["listener_count"] == LISTENERS - 5)

    await eventually(lobby_counts, within=5)
    refused = await connect(nodes[2], room_id, None)
    assert (await refused.expect("error"))["code"] == "not_authenticated"
