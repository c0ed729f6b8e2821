"""Objects close in cascade and leave nothing behind: tasks, threads, sockets, transports."""

from __future__ import annotations

import asyncio
import os
import threading

from audio_rooms.sfu import MediaConfig, MediaServer, hooks, testing
from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import eventually

from .conftest import LOOPBACK, Join


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settle() -> None:
    # aiortc finishes some closing work in tasks it spawns (DTLS close_notify, RTCP BYE); nothing
    # tells when they are all done, so the leak counts are taken after a second has passed.
    for _ in range(20):
        await asyncio.sleep(0.05)


async def test_leaving_and_rejoining_100_times_leaks_nothing(media: MediaServer) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    speaker = AudioClient(mic=ToneTrack(440), slots=1, decode=False)
    await speaker.accept(await router.answer("speaker", await speaker.offer()))

    async def cycle() -> None:
        client = AudioClient(slots=3, decode=False)
        try:
            await client.accept(await router.answer("listener", await client.offer()))
            async with asyncio.timeout(10):
                await client.connected()
            await router.disconnect("listener")
        finally:
            await client.close()

    await cycle()
    await _settle()
    tasks, threads, fds = len(asyncio.all_tasks()), threading.active_count(), _open_fds()

    for _ in range(100):
        await cycle()
    await _settle()

    # A leak grows with the 100 cycles; a little slack absorbs what other tests' executor
    # threads and closing sockets do meanwhile.
    left = sorted(t.get_coro().__qualname__ for t in asyncio.all_tasks())  # type: ignore[union-attr]
    assert len(left) <= tasks + 2, left
    assert threading.active_count() <= threads + 2, threading.enumerate()
    assert _open_fds() <= fds + 4, os.listdir("/proc/self/fd")
    stats = media.stats()
    assert (stats.transports, stats.producers, stats.consumers) == (1, 1, 1)
    # The speaker feeds no slot of a listener who left (each join maps only its own slots).
    producer = router.transports["speaker"].producer
    assert producer is not None and producer.consumers == []
    await speaker.close()


async def test_rejoining_with_a_new_offer_replaces_the_transport(
    media: MediaServer, join: Join
) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1)
    first = await join(router, "listener", slots=3, decode=False)
    old = router.transports["listener"]
    # The client resumes (network change, ICE restart): same participant, new offer.
    second = await join(router, "listener", slots=3, decode=False)
    assert router.transports["listener"] is not old
    await eventually(lambda: second.received() > 10)
    before = first.received()
    # A negative check: nothing more may reach the replaced connection for 0.3 s.
    await asyncio.sleep(0.3)
    assert first.received() == before
    assert second.received() > 10
    assert media.stats().transports == 2


async def test_closing_a_router_closes_everything_in_it(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    speaker = await join(router, "speaker", mic=ToneTrack(440), slots=1)
    listener = await join(router, "listener", slots=3, decode=False)
    other_room = media.router("other")
    await join(other_room, "x", slots=1, decode=False)

    await media.close_router("room")

    assert media.get_router("room") is None
    assert router.transports == {}
    stats = media.stats()
    assert (stats.routers, stats.transports) == (1, 1)
    # The peers are told: DTLS close reaches them and they shut down.
    await eventually(
        lambda: {speaker.pc.connectionState, listener.pc.connectionState} == {"closed"}
    )


async def test_a_peer_that_closes_is_cleaned_up_and_reported(
    media: MediaServer, join: Join
) -> None:
    router = media.router("room")
    gone: list[tuple[str, str, str]] = []
    router.on_transport_closed = lambda room, pid, reason: gone.append((room, pid, reason))
    client = await join(router, "listener", slots=3, decode=False)

    await client.pc.close()

    await eventually(lambda: bool(gone))
    assert gone == [("room", "listener", "connection_closed")]
    assert "listener" not in router.transports


async def test_a_peer_that_vanishes_is_detected_by_consent_freshness(join: Join) -> None:
    from dataclasses import replace

    media = MediaServer(replace(LOOPBACK, consent_interval=0.3, consent_failures=3))
    try:
        router = media.router("room")
        gone: list[str] = []
        router.on_transport_closed = lambda room, pid, reason: gone.append(pid)
        client = await join(router, "listener", slots=3, decode=False)

        testing.sever(client.pc)  # no DTLS close, no RTCP BYE: the cable is pulled

        await eventually(lambda: bool(gone), within=10)
        assert gone == ["listener"]
        assert media.stats().transports == 0
    finally:
        await media.close()
        hooks.set_consent_timing(5, 6)


def test_config_rejects_nonsense() -> None:
    import pytest

    with pytest.raises(ValueError):
        MediaConfig(slots=0)
    with pytest.raises(ValueError):
        MediaConfig(port_min=5000)
    with pytest.raises(ValueError):
        MediaConfig(active_speaker_interval=0.05)
