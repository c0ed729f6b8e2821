"""The aiortc internals the SFU hooks. These fail loudly when an aiortc upgrade moves them.

If one of these fails after changing the aiortc pin, read audio_rooms/sfu/hooks/ against the
new aiortc source before touching anything else: forwarding, receiver reports, sender reports
or leak-free closing is broken.
"""

from __future__ import annotations

import threading

import aiortc

from audio_rooms.sfu import MediaServer, hooks
from audio_rooms.sfu.testing import ToneTrack
from audio_rooms.sfu.transport import TransportState
from tests.conftest import eventually

from .conftest import Join


def test_aiortc_is_the_pinned_version() -> None:
    assert aiortc.__version__ == "1.16.0", (
        "aiortc changed: audit audio_rooms/sfu/hooks/ against the new release, "
        "then update the pin in pyproject.toml and this test"
    )


def test_every_hooked_internal_is_present() -> None:
    assert hooks.compatibility_problems() == []


async def test_gathering_uses_configured_loopback_address(media: MediaServer) -> None:
    from audio_rooms.sfu.testing import AudioClient

    client = AudioClient(slots=1)
    offer = await client.offer()
    answer = await media.router("room").answer("p", offer)
    await client.close()
    for sdp in (offer, answer):
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates
        assert all(" 127.0.0.1 " in c and "typ host" in c for c in candidates)


async def test_ingress_and_egress_hooks_carry_packets(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    listener = await join(router, "listener", slots=1, decode=False)
    await eventually(lambda: listener.received() > 10)
    assert media.stats().forwarded_packets >= listener.received()


async def test_selected_pair_tells_a_direct_peer_from_a_relayed_one(
    media: MediaServer, join: Join
) -> None:
    """A peer on its host candidate is not counted as TURN (the relayed case, with a real
    coturn, is tests/abuse/test_edge_turntls.py)."""
    router = media.router("room")
    listener = await join(router, "listener", slots=1, decode=False)
    remote = hooks.selected_remote_candidate(listener.pc)  # the client's view of the SFU
    assert remote is not None and remote.type == "host" and remote.host == "127.0.0.1"
    transport = router.transports["listener"]
    await eventually(lambda: transport.state is TransportState.CONNECTED)
    assert not transport.relayed and media.stats().relayed == 0


async def test_receiver_and_sender_reports_stay_true(
    media_1s_reports: MediaServer, join: Join
) -> None:
    router = media_1s_reports.router("room")
    router.set_may_produce("speaker", True)
    speaker = await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    listener = await join(router, "listener", slots=1, decode=False)

    async def reported() -> bool:
        # RTCP goes out every 0.5-1.5 s: wait for reports that cover 50 packets each way.
        speaker_stats = await speaker.pc.getStats()
        listener_stats = await listener.pc.getStats()
        return any(
            s.type == "remote-inbound-rtp" and s.packetsReceived > 50
            for s in speaker_stats.values()
        ) and any(
            s.type == "remote-outbound-rtp" and s.packetsSent > 50 for s in listener_stats.values()
        )

    await eventually(reported, within=10)

    # The speaker hears receiver reports about its stream from the SFU.
    speaker_stats = await speaker.pc.getStats()
    remote_inbound = [s for s in speaker_stats.values() if s.type == "remote-inbound-rtp"]
    assert remote_inbound and remote_inbound[0].packetsReceived > 50

    # The listener's sender reports count the packets forwarded to it, not zero.
    listener_stats = await listener.pc.getStats()
    remote_outbound = [s for s in listener_stats.values() if s.type == "remote-outbound-rtp"]
    assert remote_outbound
    reported = remote_outbound[0].packetsSent
    assert 50 < reported <= listener.received() + 5


async def test_the_sfu_starts_no_decoder_threads(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    before = {t.name for t in threading.enumerate()}
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    await join(router, "listener", slots=3, decode=False)
    # Audio has come in and gone out: a decoder, if any, would have started with it.
    await eventually(lambda: media.stats().forwarded_packets > 10)
    decoders = [t for t in threading.enumerate() if t.name == "audio-decoder"]
    assert decoders == [] or {t.name for t in decoders} <= before
