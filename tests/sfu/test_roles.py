"""Only permitted speakers are forwarded, and forwarding stops at once when that changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from audio_rooms.sfu import MediaServer, Router
from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import eventually

from .conftest import Join

# One packet interval (20 ms) plus the time a packet already sent needs to cross loopback and
# the client's event loop.
IN_FLIGHT = 0.1


async def _demote(router: Router, pid: str) -> None:
    router.set_may_produce(pid, False)


async def _remove(router: Router, pid: str) -> None:
    await router.disconnect(pid)


@pytest.mark.parametrize("stop", [_demote, _remove], ids=["mute-or-demote", "remove-or-ban"])
async def test_forwarding_stops_within_a_packet(
    media: MediaServer, join: Join, stop: Callable[[Router, str], Awaitable[None]]
) -> None:
    router = media.router("room")
    for pid in ("a", "b"):
        router.set_may_produce(pid, True)
    await join(router, "a", mic=ToneTrack(440), slots=1)
    await join(router, "b", mic=ToneTrack(660), slots=1)
    listener = await join(router, "listener", slots=3, decode=False)
    await eventually(lambda: sum(1 for s in listener.slots if s.packets) == 2)
    by_speaker = {
        consumer.producer_id: listener.slots[consumer.index]
        for consumer in router.transports["listener"].consumers
        if consumer.producer_id
    }
    slot_a = by_speaker["a"]
    slot_b = by_speaker["b"]
    assert slot_a.packets and slot_b.packets

    stopped_at = time.monotonic()
    await stop(router, "a")
    # A negative check: for 0.6 s nothing of a's may arrive after what was in flight, while b
    # keeps flowing.
    await asyncio.sleep(0.6)

    late = [p for p in slot_a.packets if p.arrival > stopped_at + IN_FLIGHT]
    assert late == []
    # The other speaker goes on: the stop was targeted, not a stall.
    assert len([p for p in slot_b.packets if p.arrival > stopped_at + IN_FLIGHT]) > 15


async def test_permission_given_before_connecting_is_remembered(
    media: MediaServer, join: Join
) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    listener = await join(router, "listener", slots=3, decode=False)
    await join(router, "speaker", mic=ToneTrack(440), slots=1)
    await eventually(lambda: listener.received() > 10)


async def test_promotion_needs_no_renegotiation(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    hand_raiser = await join(router, "hand", mic=ToneTrack(440), slots=3)
    listener = await join(router, "listener", slots=3, decode=False)
    # A negative check: a hand raiser's audio must not reach the listener for 0.4 s.
    await asyncio.sleep(0.4)
    assert listener.received() == 0
    local_sdp = hand_raiser.pc.localDescription.sdp

    router.set_may_produce("hand", True)
    await eventually(lambda: listener.received() > 10)
    assert hand_raiser.pc.localDescription.sdp == local_sdp
    assert hand_raiser.pc.signalingState == "stable"


async def test_a_listener_that_sends_with_no_permission_is_counted(
    media: MediaServer, join: Join
) -> None:
    router = media.router("room")
    client: AudioClient = await join(router, "listener", mic=ToneTrack(300), slots=1)
    # A negative check: for 0.5 s its own audio must not come back to a listener.
    await asyncio.sleep(0.5)
    assert client.received() == 0
    assert media.stats().drops["not_permitted"] > 10


async def test_what_a_muted_speaker_sent_is_not_forwarded_after_the_unmute(
    media: MediaServer, join: Join
) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    listener = await join(router, "listener", slots=3, decode=False)
    await eventually(lambda: listener.received() > 0)
    router.set_may_produce("speaker", False)  # a moderator's mute; the client keeps sending
    dropped = media.stats().drops.get("not_permitted", 0)
    await eventually(lambda: media.stats().drops.get("not_permitted", 0) - dropped > 100)
    assert media.stats().drops["not_permitted"] - dropped > 100
    before = listener.received()
    router.set_may_produce("speaker", True)
    # Counted over a fixed half second: the bound below is 0.5 s of packets.
    await asyncio.sleep(0.5)
    # Only what was sent after the unmute (50 packets a second), no burst of muted audio
    # (about 30 packets queued while muted would come on top).
    assert 10 < listener.received() - before <= 0.5 * 50 + 8
