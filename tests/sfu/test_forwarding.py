"""Audio goes from speakers to listeners over real aiortc peers, untouched by the SFU."""

from __future__ import annotations

import asyncio

import numpy as np

from audio_rooms.sfu import MediaServer
from audio_rooms.sfu.testing import ToneTrack, dominant_frequency, rms_dbfs
from tests.conftest import eventually

from .conftest import Join, hears_for


async def test_listener_hears_a_440_hz_tone(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1)
    listener = await join(router, "listener", slots=3)

    await eventually(hears_for(listener, 1.25))

    heard = [s for s in listener.slots if s.frames]
    assert len(heard) == 1
    samples = heard[0].samples(last_seconds=1.0)
    assert abs(dominant_frequency(samples, 48_000) - 440) <= 5
    # Sent at 0.3 of full scale: a sine's RMS is 3 dB under its peak, Opus keeps the level.
    assert -25 < rms_dbfs(samples) < -8
    assert media.stats().drops.get("not_permitted", 0) == 0


async def test_two_speakers_are_both_heard(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    for pid in ("a", "b"):
        router.set_may_produce(pid, True)
    await join(router, "a", mic=ToneTrack(440), slots=1)
    await join(router, "b", mic=ToneTrack(660), slots=1)
    listener = await join(router, "listener", slots=3)

    await eventually(hears_for(listener, 1.25, slots=2))

    heard = sorted(
        dominant_frequency(s.samples(last_seconds=1.0), 48_000) for s in listener.slots if s.frames
    )
    assert len(heard) == 2
    assert abs(heard[0] - 440) <= 5
    assert abs(heard[1] - 660) <= 5


async def test_speakers_hear_each_other_but_not_themselves(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    for pid in ("a", "b"):
        router.set_may_produce(pid, True)
    a = await join(router, "a", mic=ToneTrack(440), slots=3)
    b = await join(router, "b", mic=ToneTrack(660), slots=3)

    await eventually(hears_for(a, 1.25))
    await eventually(hears_for(b, 1.25))

    def heard(client_slots: list[np.ndarray]) -> list[float]:
        return [dominant_frequency(x, 48_000) for x in client_slots]

    a_heard = heard([s.samples(1.0) for s in a.slots if s.frames])
    b_heard = heard([s.samples(1.0) for s in b.slots if s.frames])
    assert len(a_heard) == 1 and abs(a_heard[0] - 660) <= 5
    assert len(b_heard) == 1 and abs(b_heard[0] - 440) <= 5


async def test_a_listeners_injected_audio_reaches_nobody(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    speaker = await join(router, "speaker", mic=ToneTrack(440), slots=3)
    # A listener whose client sends audio anyway (a modified client, or a stale track).
    await join(router, "sneaky", mic=ToneTrack(1000), slots=3)
    other = await join(router, "other", slots=3)

    # A negative check: 1.5 s of the sneaky listener's audio flows, and none may arrive.
    await asyncio.sleep(1.5)

    assert speaker.received() == 0
    for slot in other.slots:
        if slot.frames:
            assert abs(dominant_frequency(slot.samples(1.0), 48_000) - 440) <= 5
    assert sum(1 for s in other.slots if s.packets) == 1
    assert media.stats().drops["not_permitted"] >= 40


async def test_audio_level_extension_is_kept(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440, amplitude=0.5), slots=1)
    listener = await join(router, "listener", slots=2, decode=False)

    await eventually(lambda: listener.received() > 10)

    packets = [p for s in listener.slots for p in s.packets]
    assert len(packets) > 10
    levels = [p.audio_level for p in packets]
    assert all(level is not None for level in levels)
    # aiortc measures a 0.5 full-scale sine at about -9 dBov (RFC 6464 carries -dBov).
    assert all(0 < (level or 0) & 0x7F < 20 for level in levels)
