"""Bad offers get typed errors, bad packets are counted drops; the router carries on."""

from __future__ import annotations

import re
import socket
import struct

import pytest

from audio_rooms.errors import MediaError
from audio_rooms.sfu import (
    MalformedSdp,
    MediaServer,
    NoOpus,
    TooManyTracks,
    UnsupportedMedia,
    hooks,
)
from audio_rooms.sfu.producer import Producer
from audio_rooms.sfu.stats import ForwardingStats
from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import eventually

from .conftest import Join


async def _offer(slots: int = 3) -> str:
    client = AudioClient(slots=slots, decode=False)
    try:
        return await client.offer()
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("mangle", "error", "code"),
    [
        (lambda sdp: "this is not sdp", MalformedSdp, "malformed_sdp"),
        (lambda sdp: "", MalformedSdp, "malformed_sdp"),
        (lambda sdp: re.sub(r"a=ice-pwd:.*\r\n", "", sdp), MalformedSdp, "malformed_sdp"),
        (lambda sdp: sdp.replace("opus/48000/2", "PCMU/8000"), NoOpus, "no_opus"),
        (lambda sdp: sdp.replace("m=audio", "m=video"), UnsupportedMedia, "unsupported_media"),
        (lambda sdp: sdp.replace("a=mid:", "".join(
            f"a=candidate:{n} 1 udp 2130706431 198.51.100.{n} 9 typ host\r\n" for n in range(33)
        ) + "a=mid:", 1), MalformedSdp, "malformed_sdp"),
    ],
    ids=["garbage", "empty", "no-ice-pwd", "no-opus", "video", "too-many-candidates"],
)
async def test_bad_offers_raise_typed_errors(
    media: MediaServer, mangle: object, error: type[MediaError], code: str
) -> None:
    router = media.router("room")
    offer = await _offer()
    with pytest.raises(error) as raised:
        await router.answer("p", mangle(offer))  # type: ignore[operator]
    assert raised.value.code == code
    assert isinstance(raised.value, MediaError)
    assert media.stats().transports == 0


async def test_too_many_slots_is_refused(media: MediaServer) -> None:
    with pytest.raises(TooManyTracks) as raised:
        await media.router("room").answer("p", await _offer(slots=4))
    assert raised.value.code == "too_many_tracks"


async def test_router_still_works_after_bad_offers(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    for bad in ("v=0", "garbage\r\n" * 10, "x" * 100_000):
        with pytest.raises(MediaError):
            await router.answer("p", bad)
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    listener = await join(router, "listener", decode=False)
    await eventually(lambda: listener.received() > 5)


async def test_junk_datagrams_at_the_sfu_port_are_counted_drops(
    media: MediaServer, join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    listener = await join(router, "listener", decode=False)
    pc = router.transports["listener"]._pc
    assert pc is not None
    local = hooks.ice_connections(pc)[0]._nominated[1].local_candidate
    # A STUN binding request whose ICE-CONTROLLING attribute is 4 bytes instead of 8.
    stun = struct.pack("!HHI12s", 0x0001, 8, 0x2112A442, b"x" * 12) + struct.pack(
        "!HHI", 0x802A, 4, 7
    )
    forged_srtp = _rtp(111, 1234) + b"\x00" * 16
    oversized = b"\x80" + b"\x00" * 3000
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # The listener's own checked address: what comes from it gets as far as decryption.
    own = hooks.ice_connections(listener.pc)[0]._nominated[1].protocol.transport
    try:
        for data in (stun, forged_srtp, b""):
            junk.sendto(data, (local.host, local.port))
        for data in (forged_srtp, oversized, b"\x07" * 40):
            own.sendto(data, (local.host, local.port))
        await eventually(
            lambda: all(
                media.stats().drops.get(reason, 0) >= 1
                for reason in (
                    "malformed_stun", "unknown_source", "empty", "srtp_unprotect_failed",
                    "oversized", "unknown_protocol",
                )
            )
        )
    finally:
        junk.close()
    before = listener.received()
    await eventually(lambda: listener.received() > before + 10)  # still hears the speaker
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def _rtp(pt: int, ssrc: int, seq: int = 1, payload: bytes = b"\x00" * 40) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, 960 * seq, ssrc) + payload


def test_bad_packets_are_counted_drops() -> None:
    stats = ForwardingStats()
    producer = Producer(
        participant_id="p",
        payload_type=111,
        ssrc=1234,
        audio_level_id=1,
        receiver=None,
        stats=stats,
        max_rtp_size=1200,
        allowed=True,
    )
    producer.handle_rtp(_rtp(111, 1234, payload=b"\x00" * 1300), 0)
    producer.handle_rtp(b"\x80\x6f", 0)
    # An audio level element two bytes long (RFC 6464 says one): aiortc's parser raised
    # struct.error out of the packet handler on this.
    long_level = struct.pack("!BBHII", 0x90, 111, 1, 960, 1234) + bytes.fromhex("bede0001118501")
    producer.handle_rtp(long_level + b"\x00" + b"opus", 0)
    producer.handle_rtp(_rtp(0, 1234), 0)
    producer.handle_rtp(_rtp(111, 999), 0)
    producer.handle_rtp(_rtp(111, 1234), 0)
    producer.allowed = False
    producer.handle_rtp(_rtp(111, 1234, seq=2), 0)
    assert dict(stats.drops) == {
        "oversized": 1,
        "malformed_rtp": 2,
        "unknown_payload_type": 1,
        "unknown_ssrc": 1,
        "not_permitted": 1,
    }
    assert producer.packets_received == 1
