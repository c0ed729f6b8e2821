"""One room across three real server processes (docs/cascade.md): a speaker's node is the
room's origin, listeners whose media is placed on the other nodes hear it through pipes, a
moderator's mute silences them at once, and the room survives the death of an edge, of its
origin, and a Redis pause."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import Account, Client, eventually, free_port, join
from tests.hearing import connect_media, frames, hears_tone
from tests.serving import serve, stop, wait_ready
from tests.signalling.test_three_nodes import account

TONE = 523.0  # not the 440 Hz most tests use
PORTS = 44000  # node n takes UDP ports PORTS + 100n .. + 99


@dataclass
class Node:
    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"

    def owns(self, sdp: str) -> bool:
        """Whether an SDP answer's candidates are this node's (its UDP port range)."""
        ports = {int(p) for p in re.findall(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+)", sdp)}
        low = PORTS + 100 * self.index
        return bool(ports) and all(low <= p <= low + 99 for p in ports)

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.base_url}/metrics", timeout=5).text
        match = re.search(rf"^audio_rooms_{name} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, so that it may be paused."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def cluster(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]], request: pytest.FixtureRequest
) -> Iterator[list[Node]]:
    """Three nodes on one Redis; ``@pytest.mark.parametrize("capacities", ...)`` may set each
    node's AUDIO_ROOMS_EDGE_CAPACITY (default: room for everyone)."""
    capacities = getattr(request, "param", (800, 800, 800))
    secret = secrets.token_hex(32)
    started: list[Node] = []
    try:
        for n in range(3):
            port = free_port()
            env = {
                **os.environ,
                "AUDIO_ROOMS_DATA_DIR": str(tmp_path / f"node{n}"),
                "AUDIO_ROOMS_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
                "AUDIO_ROOMS_REDIS_URL": own_redis[0],
                "AUDIO_ROOMS_SECRET_KEY": secret,
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
                "AUDIO_ROOMS_MEDIA_PORT_MIN": str(PORTS + 100 * n),
                "AUDIO_ROOMS_MEDIA_PORT_MAX": str(PORTS + 99 + 100 * n),
                "AUDIO_ROOMS_EDGE_CAPACITY": str(capacities[n]),
                "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "1000",
                "AUDIO_ROOMS_WORKERS": "1",
            }
            log = tmp_path / f"node{n}.log"
            started.append(Node(n, port, serve(port, env, log), log))
            wait_ready(started[-1].base_url, started[-1].process, started[-1].log)
        yield started
    finally:
        stop(node.process for node in started)


@pytest.fixture
async def peers() -> AsyncIterator[list[AudioClient]]:
    made: list[AudioClient] = []
    yield made
    await asyncio.gather(*(p.close() for p in made), return_exceptions=True)


@dataclass
class Room:
    room_id: str
    host: Account
    host_c: Client


async def open_room(node: Node) -> Room:
    host = await account(node, "Host", guest=False)
    async with httpx.AsyncClient(base_url=node.base_url,
                                 headers={"Authorization": f"Bearer {host.token}"}) as http:
        created = await http.post("/api/rooms", json={"title": "Cascade", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    return Room(room_id, host, await join(node, room_id, host))


async def listen(node: Node, room: Room, name: str, peers: list[AudioClient]
                 ) -> tuple[Client, AudioClient, str]:
    guest = await account(node, name, guest=True)
    client = await join(node, room.room_id, guest)
    peer = AudioClient()
    peers.append(peer)
    return client, peer, await connect_media(client, peer)


async def offer_again(client: Client, peers: list[AudioClient], mic: ToneTrack | None = None,
                      ) -> tuple[AudioClient, str]:
    """What every client does on ``media_failed``: a fresh peer connection and a new offer."""
    peer = AudioClient(mic=mic) if mic is not None else AudioClient()
    peers.append(peer)
    return peer, await connect_media(client, peer)


async def test_listeners_on_other_nodes_hear_the_origin_and_a_mute_silences_them(
    cluster: list[Node], peers: list[AudioClient]
) -> None:
    a, b, c = cluster
    room = await open_room(a)
    speaker = AudioClient(mic=ToneTrack(TONE))
    peers.append(speaker)
    assert a.owns(await connect_media(room.host_c, speaker))  # the host's node is the origin
    listener_b = await listen(b, room, "On B", peers)
    listener_c = await listen(c, room, "On C", peers)
    assert b.owns(listener_b[2]) and c.owns(listener_c[2])  # each placed on its own node
    await asyncio.gather(hears_tone(listener_b[1], TONE), hears_tone(listener_c[1], TONE))
    assert a.metric("media_pipes") == 2
    assert b.metric("media_inlets") == 1 and c.metric("media_inlets") == 1
    # Active speakers come from the origin to every node's connections.
    await listener_c[0].expect("active_speakers", timeout=5)

    await room.host_c.send("mute", user_id=room.host.user_id)
    await listener_b[0].expect("mute_changed", user_id=room.host.user_id)
    await asyncio.sleep(0.3)  # packets in flight when the mute took effect
    before = [frames(listener_b[1]), frames(listener_c[1])]
    await asyncio.sleep(1.0)
    assert [frames(listener_b[1]), frames(listener_c[1])] == before


@pytest.mark.parametrize("cluster", [(0, 800, 800)], indirect=True)
async def test_listeners_of_a_killed_edge_are_placed_again_and_hear_within_3_s(
    cluster: list[Node], peers: list[AudioClient]
) -> None:
    """Node A takes no listeners (capacity 0): its listeners' media goes to B or C. Killing that
    edge with SIGKILL: the listener, whose WebSocket is on A, is told and placed on the other."""
    a, b, c = cluster
    room = await open_room(a)
    speaker = AudioClient(mic=ToneTrack(TONE))
    peers.append(speaker)
    assert a.owns(await connect_media(room.host_c, speaker))
    client, peer, sdp = await listen(a, room, "Listener", peers)
    edge = b if b.owns(sdp) else c
    other = c if edge is b else b
    assert edge.owns(sdp)
    await hears_tone(peer, TONE)

    edge.process.kill()
    killed_at = time.monotonic()
    failed = await client.expect("media_failed", timeout=5, reason="media_node_lost")
    assert failed
    peer, sdp = await offer_again(client, peers)
    assert other.owns(sdp)
    await eventually(lambda: frames(peer) >= 5, within=5)
    heard_again = time.monotonic() - killed_at
    assert heard_again < 3.0, f"heard again {heard_again:.1f} s after the edge died"
    await hears_tone(peer, TONE)


async def test_origin_killed_a_new_origin_takes_the_room_within_8_s(
    cluster: list[Node], peers: list[AudioClient]
) -> None:
    """The origin A dies with its speaker's WebSocket; the speaker's client reconnects to
    another node (as behind a load balancer) and offers again; B takes the room, C's edge
    pulls from it and its listener hears again."""
    a, b, c = cluster
    room = await open_room(a)
    speaker = AudioClient(mic=ToneTrack(TONE))
    peers.append(speaker)
    await connect_media(room.host_c, speaker)
    _, peer_c, _ = await listen(c, room, "On C", peers)
    await hears_tone(peer_c, TONE)

    a.process.kill()
    killed_at = time.monotonic()
    await speaker.close()
    host_b = await join(b, room.room_id, room.host)  # the client's reconnect
    _, sdp = await offer_again(host_b, peers, mic=ToneTrack(TONE))
    assert b.owns(sdp)
    start = frames(peer_c)
    await eventually(lambda: frames(peer_c) >= start + 5, within=8)
    back = time.monotonic() - killed_at
    assert back < 8.0, f"audio back {back:.1f} s after the origin died"
    await hears_tone(peer_c, TONE, after_frames=frames(peer_c) + 50)
    # No room state was lost: everyone is still in it.
    people = {p["user_id"] for p in host_b.welcome["room"]["participants"]}
    assert room.host.user_id in people


async def test_a_stale_origin_that_wakes_up_cannot_forward(
    cluster: list[Node], peers: list[AudioClient]
) -> None:
    """The origin is frozen (SIGSTOP) long enough for its lease to lapse; the room moves to B.
    When A wakes up, its renewal fails and it fences itself; C's listener hears only B's
    speaker (A's tone never comes back), and A reports no origin and no pipes."""
    a, b, c = cluster
    room = await open_room(a)
    speaker_a = AudioClient(mic=ToneTrack(TONE))
    peers.append(speaker_a)
    await connect_media(room.host_c, speaker_a)
    _, peer_c, _ = await listen(c, room, "On C", peers)
    await hears_tone(peer_c, TONE)

    os.kill(a.process.pid, signal.SIGSTOP)
    try:
        host_b = await join(b, room.room_id, room.host)
        # The host speaks again from B with another tone.
        _, sdp = await offer_again(host_b, peers, mic=ToneTrack(660.0))
        assert b.owns(sdp)
        await hears_tone(peer_c, 660.0, after_frames=frames(peer_c) + 50, within=15)
    finally:
        os.kill(a.process.pid, signal.SIGCONT)
    await eventually(lambda: a.metric("media_origins") == 0, within=10)
    assert a.metric("media_pipes") == 0
    # A's old transport was its speaker's; whatever A still had cannot reach C's listener:
    # C hears B's tone only.
    await asyncio.sleep(1.5)
    await hears_tone(peer_c, 660.0, after_frames=frames(peer_c) + 50)


async def test_media_keeps_flowing_while_redis_is_paused(
    cluster: list[Node], peers: list[AudioClient], own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    a, b, _ = cluster
    room = await open_room(a)
    speaker = AudioClient(mic=ToneTrack(TONE))
    peers.append(speaker)
    await connect_media(room.host_c, speaker)
    _, peer_b, _ = await listen(b, room, "On B", peers)
    await hears_tone(peer_b, TONE)
    os.kill(own_redis[1].pid, signal.SIGSTOP)
    try:
        start = frames(peer_b)
        await asyncio.sleep(3.0)
        # ~150 frames in 3 s; a pause would show as far fewer.
        assert frames(peer_b) - start > 120
    finally:
        os.kill(own_redis[1].pid, signal.SIGCONT)
    start = frames(peer_b)
    await asyncio.sleep(2.0)
    assert frames(peer_b) - start > 80
    await hears_tone(peer_b, TONE, after_frames=frames(peer_b) + 20)
