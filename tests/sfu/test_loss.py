"""Loss between a speaker and the SFU shows up as sequence gaps at the listener, not a stall."""

from __future__ import annotations

import asyncio
import itertools

from audio_rooms.sfu import MediaServer, testing
from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import eventually

from .conftest import Join


def _lossy(pattern_every: int, drop_phases: tuple[int, ...]) -> object:
    count = [0]

    def keep(datagram: bytes) -> bool:
        # RTCP packet types are 200-206 in the second byte; everything else here is RTP.
        if 200 <= datagram[1] <= 206:
            return True
        count[0] += 1
        return count[0] % pattern_every not in drop_phases

    return keep


async def test_upstream_loss_shows_as_sequence_gaps(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    speaker = AudioClient(mic=ToneTrack(440), slots=1)
    answer = await router.answer("speaker", await speaker.offer())
    await speaker.accept(answer)
    # Drop packets 3 and 4 of every 10 the speaker sends: 20% loss in bursts of two.
    testing.filter_outgoing(
        speaker.pc.getTransceivers()[0].sender.transport,
        _lossy(10, (3, 4)),  # type: ignore[arg-type]
    )
    try:
        async with asyncio.timeout(10):
            await speaker.connected()
        listener = await join(router, "listener", slots=3)
        await eventually(
            lambda: any(len(s.packets) >= 60 and len(s.frames) > 20 for s in listener.slots)
        )
    finally:
        await speaker.close()

    slot = next(s for s in listener.slots if s.packets)
    seqs = [p.sequence_number for p in slot.packets]
    gaps = [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)]
    assert all(g in (1, 3) for g in gaps), gaps
    assert gaps.count(3) >= 5
    # Still flowing: about 40 packets a second arrive, with no pause longer than a burst.
    arrivals = [p.arrival for p in slot.packets]
    assert len(slot.packets) >= 60
    assert max(b - a for a, b in itertools.pairwise(arrivals)) < 0.25
    # Timestamps advance by one frame per sequence number: the gaps are real losses.
    for a, b in zip(slot.packets, slot.packets[1:], strict=False):
        frames = (b.sequence_number - a.sequence_number) & 0xFFFF
        assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == 960 * frames
    # The listener's decoder keeps producing audio (aiortc's own jitter buffer discards some
    # frames around each gap, which is its business, not the SFU's).
    assert len(slot.frames) > 20
