"""Many listeners, each receiving the speaker's full packet rate."""

from __future__ import annotations

import asyncio

from audio_rooms.sfu import MediaServer
from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import eventually

from .conftest import Join


async def test_fifty_listeners_each_receive_about_fifty_packets_a_second(
    media: MediaServer, join: Join
) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    listeners: list[AudioClient] = []
    for i in range(50):
        listeners.append(await join(router, f"l{i}", slots=3, decode=False, record_packets=False))
    await eventually(lambda: all(c.packet_count > 0 for c in listeners))

    before = [c.packet_count for c in listeners]
    start = asyncio.get_running_loop().time()
    await asyncio.sleep(2.0)  # a rate is measured over a fixed window
    elapsed = asyncio.get_running_loop().time() - start
    rates = [(c.packet_count - b) / elapsed for c, b in zip(listeners, before, strict=True)]

    # Opus in 20 ms frames is 50 packets/s; the margin absorbs the window's edges.
    assert all(40 <= rate <= 60 for rate in rates), rates
    assert media.stats().consumers == 50 * 3 + 1
