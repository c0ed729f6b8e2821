"""Pipes between media servers: an edge's listeners hear the origin's speakers, only while the
origin forwards them, and nothing but the origin's pipe can feed an edge."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from audio_rooms.sfu import MediaServer, egress
from audio_rooms.sfu.pipe import PipeKeys, control_packet, parse_control
from audio_rooms.sfu.testing import ToneTrack
from tests.conftest import eventually
from tests.hearing import frames, hears_tone

from .conftest import LOOPBACK, Join, _media

IN_FLIGHT = 0.1


@pytest.fixture
async def edge() -> AsyncIterator[MediaServer]:
    async for server in _media(LOOPBACK):
        yield server


async def _pipe(origin: MediaServer, edge: MediaServer, room: str = "room") -> PipeKeys:
    inlet = await edge.router(room).open_inlet("origin", "127.0.0.1")
    assert inlet.address is not None
    keys = origin.router(room).open_pipe("edge", inlet.address, origin.pipe_socket())
    inlet.accept(keys)
    return keys


def test_control_packet_round_trip() -> None:
    lanes = [(1234, "alice"), (99, "bob")]
    assert parse_control(control_packet(7, lanes), 4) == {1234: "alice", 99: "bob"}
    assert parse_control(control_packet(7, lanes), 1) is None  # more lanes than the room has
    assert parse_control(control_packet(7, [(1, "x" * 65)]), 4) is None
    assert parse_control(b"\x80\xcc\x00\x02" + b"\0" * 4 + b"ABCD", 4) is None


@pytest.mark.parametrize("fast", [True, False], ids=["compiled", "python"])
async def test_edge_listener_hears_origin_speaker(
    media: MediaServer, edge: MediaServer, join: Join, fast: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if fast and not egress.fast_path_enabled():
        pytest.skip("the compiled fast path is not built")
    if not fast:
        monkeypatch.setenv("AUDIO_ROOMS_SFU_FASTPATH", "0")
    origin = media.router("room")
    origin.set_may_produce("speaker", True)
    await join(origin, "speaker", mic=ToneTrack(440), slots=1)
    await _pipe(media, edge)
    listener = await join(edge.router("room"), "listener", slots=3)
    await hears_tone(listener, 440)
    assert edge.router("room").remote_speakers == ["speaker"]
    assert media.stats().pipes == 1 and edge.stats().inlets == 1


async def test_mute_at_origin_stops_audio_at_edge_within_a_packet(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    origin = media.router("room")
    for pid in ("a", "b"):
        origin.set_may_produce(pid, True)
    await join(origin, "a", mic=ToneTrack(440), slots=1)
    await join(origin, "b", mic=ToneTrack(660), slots=1)
    await _pipe(media, edge)
    edge_router = edge.router("room")
    listener = await join(edge_router, "listener", slots=3, decode=False)
    await eventually(lambda: sum(1 for s in listener.slots if s.packets) == 2)
    by_speaker = {
        c.producer_id: listener.slots[c.index]
        for c in edge_router.transports["listener"].consumers
        if c.producer_id
    }
    stopped_at = time.monotonic()
    origin.set_may_produce("a", False)
    await asyncio.sleep(0.6)
    late = [p for p in by_speaker["a"].packets if p.arrival > stopped_at + IN_FLIGHT]
    assert late == []
    assert len([p for p in by_speaker["b"].packets if p.arrival > stopped_at + IN_FLIGHT]) > 15
    # The edge learnt that a is no longer carried, and frees the slot.
    await eventually(lambda: edge_router.remote_speakers == ["b"])


async def test_selection_follows_the_origin(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    """A speaker who joins the stage later reaches the edge's listeners too."""
    origin = media.router("room")
    origin.set_may_produce("a", True)
    origin.set_may_produce("b", True)
    await join(origin, "a", mic=ToneTrack(440), slots=1)
    await _pipe(media, edge)
    edge_router = edge.router("room")
    listener = await join(edge_router, "listener", slots=3, decode=False)
    await eventually(lambda: edge_router.remote_speakers == ["a"])
    await join(origin, "b", mic=ToneTrack(660), slots=1)
    await eventually(lambda: edge_router.remote_speakers == ["a", "b"])
    await eventually(lambda: sum(1 for s in listener.slots if len(s.packets) > 10) == 2)


async def test_only_the_origin_can_feed_an_inlet(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    """Packets from another address, or with another key, are dropped: an attacker who finds
    an inlet's port cannot speak into a room."""
    origin = media.router("room")
    origin.set_may_produce("speaker", True)
    await join(origin, "speaker", mic=ToneTrack(440), slots=1)
    keys = await _pipe(media, edge)
    inlet = edge.router("room").inlet
    assert inlet is not None and inlet.address is not None
    listener = await join(edge.router("room"), "listener", slots=3)
    await hears_tone(listener, 440)

    # A stranger sends from its own socket; a forger sends from the origin's socket with a
    # wrong key (the socket is shared, so this is the origin's address).
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(20):
            stranger.sendto(b"\x80\x6f" + bytes(200), inlet.address)
            media.pipe_socket().sendto(b"\x80\x6f" + bytes(200), inlet.address)
    finally:
        stranger.close()
    await eventually(lambda: edge.forwarding.drops["pipe_foreign_source"] >= 20)
    await eventually(lambda: edge.forwarding.drops["pipe_unauthenticated"] >= 20)
    assert keys.key  # and the listener still hears the real speaker
    await hears_tone(listener, 440, after_frames=frames(listener) + 50)


async def test_a_closed_inlet_hears_nothing_from_its_old_origin(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    """Fencing: once an edge re-pipes, the old origin's packets reach nobody."""
    origin = media.router("room")
    origin.set_may_produce("speaker", True)
    await join(origin, "speaker", mic=ToneTrack(440), slots=1)
    await _pipe(media, edge)
    edge_router = edge.router("room")
    listener = await join(edge_router, "listener", slots=3, decode=False)
    await eventually(lambda: listener.received() > 20)
    edge_router.close_inlet()
    assert edge_router.remote_speakers == []
    closed_at = time.monotonic()
    await asyncio.sleep(0.5)
    assert not [
        p for s in listener.slots for p in s.packets if p.arrival > closed_at + IN_FLIGHT
    ]
    assert len(origin.pipes) == 1  # the origin still sends: the edge alone stopped it


async def test_lossy_reordering_link_still_plays(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    """A relay between origin and edge that drops every 10th packet and swaps neighbours: the
    edge's listener still hears the tone (gaps stay gaps, the replay window takes the rest)."""
    origin = media.router("room")
    origin.set_may_produce("speaker", True)
    await join(origin, "speaker", mic=ToneTrack(440), slots=1)
    edge_router = edge.router("room")
    inlet = await edge_router.open_inlet("origin", "127.0.0.1")
    assert inlet.address is not None
    inlet_address = inlet.address
    loop = asyncio.get_running_loop()
    held: list[bytes] = []
    count = 0

    class Relay(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            nonlocal count
            count += 1
            if count % 10 == 0:
                return
            if count % 7 == 0 and not held:
                held.append(data)
                return
            self.transport.sendto(data, inlet_address)  # type: ignore[attr-defined]
            while held:
                self.transport.sendto(held.pop(), inlet_address)  # type: ignore[attr-defined]

    relay_transport, _ = await loop.create_datagram_endpoint(
        Relay, local_addr=("127.0.0.1", 0)
    )
    try:
        relay_address = relay_transport.get_extra_info("sockname")
        keys = origin.open_pipe("edge", relay_address, media.pipe_socket())
        # The edge sees the relay as the source.
        inlet.accept(PipeKeys(keys.key, relay_address))
        listener = await join(edge_router, "listener", slots=3)
        await hears_tone(listener, 440, after_frames=100)
    finally:
        relay_transport.close()


async def test_origin_listeners_come_and_go_while_a_pipe_is_fed(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    """The pipe's lane leaves first in a speaker's fan-out, the origin's listeners after it: a
    listener leaving the origin stops only its own copies, never the edge's or another's."""
    origin = media.router("room")
    origin.set_may_produce("speaker", True)
    await join(origin, "speaker", mic=ToneTrack(440), slots=1)
    await _pipe(media, edge)
    staying = await join(origin, "staying", slots=3, decode=False)
    leaving = await join(origin, "leaving", slots=3, decode=False)
    remote = await join(edge.router("room"), "remote", slots=3, decode=False)
    await eventually(lambda: min(staying.received(), leaving.received(), remote.received()) > 10)
    await origin.disconnect("leaving")
    late = await join(origin, "late", slots=3, decode=False)
    marks = {c: c.received() for c in (staying, remote, late)}
    await eventually(lambda: all(c.received() > marks[c] + 25 for c in marks))


async def test_an_uplink_takes_only_its_servers_speakers_and_only_while_they_may_speak(
    media: MediaServer, edge: MediaServer, join: Join
) -> None:
    """Federation's uplink (docs/federation.md): B's router sends its speakers to A's. A takes
    ``…@b.test`` speakers only, and forwards each only while A lets them produce."""
    home = edge.router("room@a.test")
    home.set_may_produce("sara@b.test", True)
    home.set_may_produce("host@a.test", True)  # B pretending to carry one of A's users
    await join(home, "sara@b.test", mic=ToneTrack(880), slots=1)
    await join(home, "host@a.test", mic=ToneTrack(440), slots=1)
    origin = media.router("room")
    uplink = await origin.open_uplink("b.test", "127.0.0.1")
    assert uplink.address is not None
    uplink.accept(home.open_pipe("server:a.test", uplink.address, edge.pipe_socket()))
    listener = await join(origin, "listener", slots=3, decode=False)
    await eventually(lambda: media.forwarding.drops["pipe_foreign_speaker"] > 0)
    await asyncio.sleep(1.0)
    assert listener.received() == 0  # nobody may speak at A yet
    origin.set_may_produce("sara@b.test", True)
    origin.set_may_produce("host@a.test", True)
    await eventually(lambda: listener.received() > 20)
    by_speaker = {
        c.producer_id: listener.slots[c.index]
        for c in origin.transports["listener"].consumers if c.producer_id
    }
    assert set(by_speaker) == {"sara@b.test"}  # the impostor lane was dropped
    origin.set_may_produce("sara@b.test", False)
    stopped_at = time.monotonic()
    await asyncio.sleep(0.6)
    assert not [p for p in by_speaker["sara@b.test"].packets
                if p.arrival > stopped_at + IN_FLIGHT]
