"""Media through signalling: offers over the room WebSocket, real aiortc peers, real Opus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from audio_rooms.sfu.testing import SAMPLE_RATE, AudioClient, ToneTrack, dominant_frequency
from tests.conftest import AccountFactory, Client, RunningServer, create_room, join


@pytest.fixture
async def peers() -> AsyncIterator[list[AudioClient]]:
    made: list[AudioClient] = []
    yield made
    for peer in made:
        await peer.close()


async def connect_media(client: Client, peer: AudioClient) -> None:
    await client.send("media_offer", sdp=await peer.offer(), ref="offer")
    answer = await client.expect("media_answer", timeout=15)
    await peer.accept(answer["sdp"])
    async with asyncio.timeout(15):
        await peer.connected()


async def heard(peer: AudioClient, seconds: float) -> float:
    """Dominant frequency over the last ``seconds`` of the loudest slot."""
    best = max(peer.slots, key=lambda s: len(s.frames))
    return dominant_frequency(best.samples(seconds), SAMPLE_RATE)


async def wait_for_frames(peer: AudioClient, count: int, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while max((len(s.frames) for s in peer.slots), default=0) < count:
            await asyncio.sleep(0.05)


async def test_listener_hears_the_host(
    server: RunningServer, make_account: AccountFactory, peers: list[AudioClient]
) -> None:
    host, ana = await make_account("Host"), await make_account("Ana", guest=True)
    room_id = await create_room(server, host)
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    speaker = AudioClient(mic=ToneTrack(440))
    listener = AudioClient()
    peers += [speaker, listener]
    await connect_media(host_c, speaker)
    await connect_media(ana_c, listener)
    await wait_for_frames(listener, 60)
    assert abs(await heard(listener, 1.0) - 440) <= 5
    speakers = await ana_c.expect("active_speakers", timeout=5)
    assert speakers["speakers"][0]["user_id"] == host.user_id


async def test_listener_audio_reaches_nobody_and_mute_stops_forwarding(
    server: RunningServer, make_account: AccountFactory, peers: list[AudioClient]
) -> None:
    host, eve = await make_account("Host"), await make_account("Eve")
    room_id = await create_room(server, host)
    host_c, eve_c = await join(server, room_id, host), await join(server, room_id, eve)
    speaker = AudioClient(mic=ToneTrack(440), decode=False)
    intruder = AudioClient(mic=ToneTrack(660), decode=False)  # a listener who sends anyway
    peers += [speaker, intruder]
    await connect_media(host_c, speaker)
    await connect_media(eve_c, intruder)
    await asyncio.sleep(1.5)
    assert intruder.received() > 40  # Eve hears the host
    assert speaker.received() == 0  # nobody hears Eve
    await host_c.send("mute", user_id=host.user_id)
    await eve_c.expect("mute_changed", user_id=host.user_id)
    await asyncio.sleep(0.3)
    before = intruder.received()
    await asyncio.sleep(1.0)
    assert intruder.received() == before
    stats = server.services.media.stats() if server.services.media else None
    assert stats is not None and stats.drops.get("not_permitted", 0) > 40


async def test_bad_offer_is_an_error_not_a_disconnect(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    await host_c.send("media_offer", sdp="v=0\r\nthis is not sdp", ref="bad")
    error = await host_c.expect("error", ref="bad")
    assert error["code"] in ("malformed_sdp", "media_error")
    await host_c.send("ping", ref="p")
    await host_c.expect("pong", ref="p")


async def test_leaving_closes_the_transport(
    server: RunningServer, make_account: AccountFactory, peers: list[AudioClient]
) -> None:
    host, bob = await make_account("Host"), await make_account("Bob")
    room_id = await create_room(server, host)
    host_c, bob_c = await join(server, room_id, host), await join(server, room_id, bob)
    speaker, listener = AudioClient(mic=ToneTrack(440), decode=False), AudioClient(decode=False)
    peers += [speaker, listener]
    await connect_media(host_c, speaker)
    await connect_media(bob_c, listener)
    media = server.services.media
    assert media is not None
    assert media.stats().transports == 2
    await bob_c.send("leave")
    with contextlib.suppress(Exception):
        await bob_c.closed_with()
    async with asyncio.timeout(5):
        while media.stats().transports != 1:
            await asyncio.sleep(0.05)


async def test_newcomer_sees_who_is_speaking_at_once(
    server: RunningServer, make_account: AccountFactory, peers: list[AudioClient]
) -> None:
    host, early, late = (await make_account("Host"), await make_account("Early"),
                         await make_account("Late"))
    room_id = await create_room(server, host)
    host_c, early_c = await join(server, room_id, host), await join(server, room_id, early)
    speaker, first = AudioClient(mic=ToneTrack(440), decode=False), AudioClient(decode=False)
    peers += [speaker, first]
    await connect_media(host_c, speaker)
    await connect_media(early_c, first)
    await early_c.expect("active_speakers", timeout=5)
    await asyncio.sleep(1.0)  # the speaker list is steady now: no new reports go out
    late_c = await join(server, room_id, late)
    second = AudioClient(decode=False)
    peers.append(second)
    await connect_media(late_c, second)
    # The current report is sent with the answer; connect_media may already have passed it.
    reports = [m for m in late_c.seen if m["type"] == "active_speakers"]
    report = reports[-1] if reports else await late_c.expect("active_speakers", timeout=2)
    assert [s["user_id"] for s in report["speakers"]] == [host.user_id]
