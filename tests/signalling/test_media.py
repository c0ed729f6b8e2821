"""Media through signalling: offers over the room WebSocket, real aiortc peers, real Opus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import (
    AccountFactory,
    LiveRoom,
    RunningServer,
    eventually,
    join,
)
from tests.hearing import connect_media, tone_heard


@pytest.fixture
async def peers() -> AsyncIterator[list[AudioClient]]:
    made: list[AudioClient] = []
    yield made
    for peer in made:
        await peer.close()


async def test_listener_hears_the_host(
    make_account: AccountFactory, live_room: LiveRoom
) -> None:
    ana = await make_account("Ana", guest=True)
    async with tone_heard(live_room, ana, after_frames=60) as hearing:
        speakers = await hearing.listener_c.expect("active_speakers", timeout=5)
    assert speakers["speakers"][0]["user_id"] == live_room.host.user_id


async def test_listener_audio_reaches_nobody_and_mute_stops_forwarding(
    server: RunningServer,
    make_account: AccountFactory,
    peers: list[AudioClient],
    live_room: LiveRoom,
) -> None:
    host, host_c = live_room.host, live_room.host_c
    eve_c = await live_room.join(await make_account("Eve"))
    speaker = AudioClient(mic=ToneTrack(440), decode=False)
    intruder = AudioClient(mic=ToneTrack(660), decode=False)  # a listener who sends anyway
    peers += [speaker, intruder]
    await connect_media(host_c, speaker)
    await connect_media(eve_c, intruder)
    await eventually(lambda: intruder.received() > 40)  # Eve hears the host
    assert speaker.received() == 0  # nobody hears Eve, who has sent for as long as she heard
    await host_c.send("mute", user_id=host.user_id)
    await eve_c.expect("mute_changed", user_id=host.user_id)
    await asyncio.sleep(0.3)  # packets already in flight when the mute took effect
    before = intruder.received()
    await asyncio.sleep(1.0)  # a second of silence: the muted host's audio stays unforwarded
    assert intruder.received() == before
    stats = server.services.media.stats() if server.services.media else None
    assert stats is not None and stats.drops.get("not_permitted", 0) > 40


async def test_bad_offer_is_an_error_not_a_disconnect(live_room: LiveRoom) -> None:
    host_c = live_room.host_c
    await host_c.send("media_offer", sdp="v=0\r\nthis is not sdp", ref="bad")
    error = await host_c.expect("error", ref="bad")
    assert error["code"] in ("malformed_sdp", "media_error")
    await host_c.send("ping", ref="p")
    await host_c.expect("pong", ref="p")


async def test_leaving_closes_the_transport(
    server: RunningServer,
    make_account: AccountFactory,
    peers: list[AudioClient],
    live_room: LiveRoom,
) -> None:
    host_c = live_room.host_c
    bob_c = await live_room.join(await make_account("Bob"))
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
    await eventually(lambda: media.stats().transports == 1)


async def test_newcomer_sees_who_is_speaking_at_once(
    server: RunningServer,
    make_account: AccountFactory,
    peers: list[AudioClient],
    live_room: LiveRoom,
) -> None:
    host, room_id, host_c = live_room.host, live_room.room_id, live_room.host_c
    early, late = await make_account("Early"), await make_account("Late")
    early_c = await join(server, room_id, early)
    speaker, first = AudioClient(mic=ToneTrack(440), decode=False), AudioClient(decode=False)
    peers += [speaker, first]
    await connect_media(host_c, speaker)
    await connect_media(early_c, first)
    await early_c.expect("active_speakers", timeout=5)
    # Deliberately a second with a steady speaker list, so no new report goes out on its own:
    # what the newcomer gets must come with the answer.
    await asyncio.sleep(1.0)
    late_c = await join(server, room_id, late)
    second = AudioClient(decode=False)
    peers.append(second)
    await connect_media(late_c, second)
    # The current report is sent with the answer; connect_media may already have passed it.
    reports = [m for m in late_c.seen if m["type"] == "active_speakers"]
    report = reports[-1] if reports else await late_c.expect("active_speakers", timeout=2)
    assert [s["user_id"] for s in report["speakers"]] == [host.user_id]
