"""Active speakers are reported from audio levels, at most five times a second."""

from __future__ import annotations

import asyncio
import itertools

from audio_rooms.sfu import MediaServer, SpeakerLevel
from audio_rooms.sfu.testing import ToneTrack
from tests.conftest import eventually

from .conftest import Join


async def test_active_speakers_are_reported_loudest_first(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    reports: list[tuple[float, list[SpeakerLevel]]] = []
    loop = asyncio.get_running_loop()
    router.on_active_speakers = lambda room, levels: reports.append((loop.time(), levels))
    for pid in ("loud", "soft", "silent"):
        router.set_may_produce(pid, True)
    await join(router, "loud", mic=ToneTrack(440, amplitude=0.6), slots=1, decode=False)
    await join(router, "soft", mic=ToneTrack(660, amplitude=0.02), slots=1, decode=False)
    await join(router, "silent", slots=1, decode=False)

    def loud_then_soft() -> bool:
        # Several reports, so that their spacing below is checked over a few intervals.
        if len(reports) < 5:
            return False
        last = reports[-1][1]
        return [s.participant_id for s in last] == ["loud", "soft"] and (
            last[0].level > last[1].level > 0
        )

    await eventually(loud_then_soft)

    assert reports
    _, last = reports[-1]
    assert [s.participant_id for s in last] == ["loud", "soft"]
    assert last[0].level > last[1].level > 0
    times = [t for t, _ in reports]
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))


async def test_network_settings_are_applied(join: Join) -> None:
    from dataclasses import replace

    from .conftest import LOOPBACK

    media = MediaServer(
        replace(LOOPBACK, port_min=41000, port_max=41010, announced_address="203.0.113.7")
    )
    try:
        from audio_rooms.sfu.testing import AudioClient

        client = AudioClient(slots=1)
        answer = await media.router("r").answer("p", await client.offer())
        await client.close()
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate")]
        assert candidates
        for line in candidates:
            fields = line.split()
            assert fields[4] == "203.0.113.7"
            assert 41000 <= int(fields[5]) <= 41010
    finally:
        await media.close()


async def test_a_closed_router_reports_no_more_speakers(media: MediaServer, join: Join) -> None:
    """The router owns its active-speaker observer and closes it: a room that ended is silent."""
    router = media.router("room")
    reports: list[list[SpeakerLevel]] = []
    router.on_active_speakers = lambda room, levels: reports.append(levels)
    router.set_may_produce("loud", True)
    await join(router, "loud", mic=ToneTrack(440, amplitude=0.6), slots=1, decode=False)
    await eventually(lambda: bool(reports), within=5)

    await router.close()
    assert router.active_speakers.closed and router.on_active_speakers is None
    seen = len(reports)
    # A negative check: give a live router three ticks (0.2 s each) to report anything.
    await asyncio.sleep(0.6)
    assert len(reports) == seen
