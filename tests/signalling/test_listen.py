"""The listen WebSocket (UDP blocked): a participant receives the speakers' Opus packets over the
page's own origin. Real server, real aiortc speaker sending a tone, real Opus decoded by PyAV."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import av
import numpy as np
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from audio_rooms.sfu.testing import SAMPLE_RATE, AudioClient, ToneTrack, dominant_frequency
from audio_rooms.signalling.listen_frames import AudioFrame
from tests.conftest import (
    Account,
    AccountFactory,
    LiveRoom,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    join,
)
from tests.hearing import TOLERANCE, TONE, connect_media


def listen_url(server: RunningServer, room_id: str) -> str:
    return f"{server.ws_url(room_id)}/listen"


@dataclass
class Listening:
    """A listen socket, collecting the audio frames that arrive on it."""

    ws: ClientConnection
    frames: list[AudioFrame] = field(default_factory=list)
    texts: list[dict[str, object]] = field(default_factory=list)
    close_code: int | None = None
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.frames.append(AudioFrame.parse(message))
                else:
                    self.texts.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        rcvd = self.ws.close_frame if hasattr(self.ws, "close_frame") else None
        self.close_code = rcvd.code if rcvd is not None else self.ws.close_code

    def decoded(self, last: int) -> np.ndarray:
        """The last ``last`` frames of the busiest speaker, decoded: what a browser plays."""
        speaker = max({f.speaker for f in self.frames},
                      key=lambda s: sum(f.speaker == s for f in self.frames))
        codec = av.CodecContext.create("opus", "r")
        codec.sample_rate = SAMPLE_RATE  # type: ignore[attr-defined]
        samples = []
        for frame in [f for f in self.frames if f.speaker == speaker][-last:]:
            for decoded in codec.decode(av.Packet(frame.payload)):  # type: ignore[attr-defined]
                samples.append(decoded.to_ndarray().reshape(-1, decoded.samples)[0])
        return np.concatenate(samples)


@contextlib.asynccontextmanager
async def listening(server: RunningServer, room_id: str, account: Account | None,
                    **listen: object) -> AsyncIterator[Listening]:
    ws = await websockets.connect(listen_url(server, room_id), max_size=2**16)
    got = Listening(ws)
    payload = {"type": "listen", **listen}
    if account is not None:
        payload["token"] = account.token
    await ws.send(json.dumps(payload))
    got.reader = asyncio.create_task(got.read())
    try:
        yield got
    finally:
        await ws.close()
        await asyncio.wait_for(got.reader, 5)


@pytest.fixture
async def speaking(live_room: LiveRoom) -> AsyncIterator[AudioClient]:
    """The host speaks a 440 Hz tone from an aiortc peer."""
    peer = AudioClient(mic=ToneTrack(TONE), decode=False)
    await connect_media(live_room.host_c, peer)
    yield peer
    await peer.close()


async def test_listener_receives_opus_that_decodes_to_the_tone(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom,
    speaking: AudioClient,
) -> None:
    ana = await make_account("Ana", guest=True)
    await live_room.join(ana)
    async with listening(server, live_room.room_id, ana) as got:
        await eventually(lambda: len(got.frames) >= 100, 10)
        assert got.texts[0]["type"] == "listening"
        heard = dominant_frequency(got.decoded(50), SAMPLE_RATE)
        assert abs(heard - TONE) <= TOLERANCE, f"heard {heard:.1f} Hz over the listen socket"
        # Sequence numbers and timestamps are the speaker's, as RTP carried them: 20 ms apart.
        last = got.frames[-20:]
        pairs = list(itertools.pairwise(last))
        assert {(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in pairs} == {1}
        assert {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in pairs} == {960}
        assert all(f.level >= 0 for f in last)  # the audio level travels too
        await got.ws.send(json.dumps({"type": "ping", "ref": "p"}))
        await eventually(lambda: any(t.get("type") == "pong" for t in got.texts), 5)
    metrics = server.services.listen
    assert metrics is not None and metrics.counters.frames_sent >= 100


async def test_a_moderator_mute_stops_the_frames_at_once(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom,
    speaking: AudioClient,
) -> None:
    host, host_c = live_room.host, live_room.host_c
    bob = await make_account("Bob")
    bob_c = await live_room.join(bob)
    async with listening(server, live_room.room_id, bob) as got:
        await eventually(lambda: len(got.frames) >= 20, 10)
        await host_c.send("mute", user_id=host.user_id)
        await bob_c.expect("mute_changed", user_id=host.user_id)
        await asyncio.sleep(0.3)  # frames already on their way when the mute took effect
        before = len(got.frames)
        await asyncio.sleep(1.0)
        assert len(got.frames) == before, "frames kept coming after the mute"
        await host_c.send("unmute", user_id=host.user_id)
        await eventually(lambda: len(got.frames) >= before + 20, 10)


async def test_someone_not_in_the_room_is_refused(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom,
    speaking: AudioClient,
) -> None:
    outsider = await make_account("Outsider")
    async with listening(server, live_room.room_id, outsider) as got:
        await asyncio.wait_for(got.reader, 5)  # type: ignore[arg-type]
    assert got.close_code == 4003
    assert got.texts and got.texts[0]["type"] == "error"
    assert got.texts[0]["code"] == "not_in_room"
    assert got.frames == []
    async with listening(server, live_room.room_id, None) as anonymous:
        await asyncio.wait_for(anonymous.reader, 5)  # type: ignore[arg-type]
    assert anonymous.close_code == 4001


async def test_leaving_the_room_ends_listening_and_the_tap(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom,
    speaking: AudioClient,
) -> None:
    cyrus = await make_account("Cyrus")
    cyrus_c = await live_room.join(cyrus)
    relays = server.services.listen
    assert relays is not None
    async with listening(server, live_room.room_id, cyrus) as got:
        await eventually(lambda: len(got.frames) >= 10, 10)
        assert relays.listener_count() == 1
        await cyrus_c.send("leave")
        await asyncio.wait_for(got.reader, 5)  # type: ignore[arg-type]
    assert got.close_code == 1000
    await eventually(lambda: relays.listener_count() == 0, 5)
    # With nobody listening this way, the SFU taps nothing (forwarding as before the relay).
    media = server.services.media
    router = media.get_router(live_room.room_id) if media else None
    assert router is not None
    producers = [t.producer for t in router.transports.values() if t.producer is not None]
    assert producers and all(p.tap is None for p in producers)


async def test_what_a_listener_sends_is_limited(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom,
) -> None:
    dana = await make_account("Dana")
    await live_room.join(dana)
    async with listening(server, live_room.room_id, dana) as got:
        await eventually(lambda: bool(got.texts), 5)
        for _ in range(40):  # far over its rate, and each too big or binary
            with contextlib.suppress(websockets.ConnectionClosed):
                await got.ws.send(b"\x00" * 100)
        await asyncio.wait_for(got.reader, 5)  # type: ignore[arg-type]
    assert got.close_code == 4000


async def test_a_listener_that_stops_reading_is_skipped_then_closed_and_others_miss_nothing(
    make_server: ServerFactory, make_account: AccountFactory,
) -> None:
    """A phone in a tunnel: its frames are skipped once it is more than the lag bound behind
    (not queued for it), it is closed with 4008 when it stays behind, and a listener reading
    beside it gets every packet, in order, in batches of the relay's interval."""
    server = await make_server(listen_stall_timeout=2.0, listen_batch_interval=0.04)
    host, reader = await make_account("Host"), await make_account("Reader")
    staller = await make_account("Staller")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    for account in (reader, staller):
        await join(server, room_id, account)
    relays = server.services.listen
    assert relays is not None
    peer = AudioClient(mic=ToneTrack(TONE), decode=False)
    try:
        await connect_media(host_c, peer)
        async with listening(server, room_id, reader) as got:
            await eventually(lambda: len(got.frames) >= 10, 10)
            # Set before connecting: the window the server sees stays small; max_queue=1 with
            # nobody calling recv stops the client library reading its socket.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            stalled = await websockets.connect(listen_url(server, room_id), sock=sock,
                                               max_queue=1, max_size=2**16, close_timeout=1)
            try:
                await stalled.send(json.dumps({"type": "listen", "token": staller.token}))
                start = len(got.frames)
                await eventually(lambda: relays.counters.frames_dropped > 0, 15)
                await eventually(lambda: relays.counters.closed_slow == 1, 15)
            finally:
                await stalled.close()
            await asyncio.sleep(0.5)
            received = got.frames[start:]
    finally:
        await peer.close()
    assert len(received) >= 50
    gaps = {(b.sequence_number - a.sequence_number) & 0xFFFF
            for a, b in itertools.pairwise(received)}
    assert gaps == {1}, f"the reading listener missed packets: steps {sorted(gaps)}"
    # The stalled socket's skipped frames are its own: nothing was dropped for the reader.
    assert relays.counters.frames_dropped >= 10
