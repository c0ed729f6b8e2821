"""Sender reports come from one batch timer (rtcp.py), and they stay true."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)

from audio_rooms.sfu import MediaServer, hooks, rtp, testing
from audio_rooms.sfu.beat import Beat
from audio_rooms.sfu.rtcp import SenderReports
from audio_rooms.sfu.testing import ToneTrack
from tests.conftest import eventually

from .conftest import Join

CLOCK_RATE = 48_000


async def test_batched_sender_reports_are_true(media_1s_reports: MediaServer, join: Join) -> None:
    media = media_1s_reports
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    # Decoding, so that its receiver sees the packets and answers with receiver reports.
    listener = await join(router, "listener", slots=3, decode=True)
    reports: list[tuple[float, RtcpSrPacket]] = []

    def on_rtcp(data: bytes) -> None:
        now = time.monotonic()
        for packet in RtcpPacket.parse(data):
            if isinstance(packet, RtcpSrPacket):
                reports.append((now, packet))

    testing.tap_rtcp(listener.pc.getTransceivers()[0].receiver.transport, on_rtcp)
    # Reports are counted over a fixed window: about three in 3.2 s at one a second.
    await asyncio.sleep(3.2)

    slot = listener.slots[0]
    assert slot.ssrc is not None and slot.packets
    # Only the slot that carries the speaker reports (idle slots are not active senders), and
    # about once a second.
    assert reports and {sr.ssrc for _, sr in reports} == {slot.ssrc}
    assert 2 <= len(reports) <= 5
    for at, sr in reports:
        received = [p for p in slot.packets if p.arrival <= at]
        # The counts are what was forwarded on this SSRC (a packet may still be in flight).
        assert len(received) - 2 <= sr.sender_info.packet_count <= len(received) + 2
        assert sr.sender_info.octet_count > 0
        # The RTP timestamp is on the forwarded stream's timeline, advanced to the report's time.
        last = received[-1]
        expected = last.timestamp + (at - last.arrival) * CLOCK_RATE
        assert abs(((sr.sender_info.rtp_timestamp - expected + 2**31) % 2**32) - 2**31) < 0.1 * (
            CLOCK_RATE
        )
    # NTP timestamps follow wall time.
    (t0, first), (t1, last_sr) = reports[0], reports[-1]
    ntp_elapsed = (last_sr.sender_info.ntp_timestamp - first.sender_info.ntp_timestamp) / 2**32
    assert abs(ntp_elapsed - (t1 - t0)) < 0.05

    # The listener's receiver reports answer them: the SFU's sender gets a round-trip time,
    # which needs the report's NTP reference to be the one it remembers. A report that
    # answers an older SR gives none, and the next one that can is let through 5 s later
    # (RtcpThinner), so this may take one such interval.
    transport = router.transports["listener"]
    sender = transport._pc.getTransceivers()[0].sender  # type: ignore[union-attr]
    rtt: list[float | None] = [None]

    async def measured() -> bool:
        stats = await sender.getStats()
        remote = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
        rtt[0] = remote[0].roundTripTime if remote else None
        return rtt[0] is not None

    await eventually(measured, within=8, every=0.1)
    assert rtt[0] is not None and 0 <= rtt[0] < 0.5
    assert media.sender_reports.sent >= len(reports)


async def test_slots_leave_the_timer_with_their_transport(media: MediaServer, join: Join) -> None:
    router = media.router("room")
    router.set_may_produce("speaker", True)
    await join(router, "speaker", mic=ToneTrack(440), slots=1, decode=False)
    await join(router, "listener", slots=3, decode=False)
    await eventually(lambda: len(media.sender_reports) == 4)
    await router.disconnect("listener")
    assert len(media.sender_reports) == 1
    await media.close_router("room")
    assert len(media.sender_reports) == 0


async def test_an_empty_wheel_leaves_the_beat() -> None:
    beat = Beat(interval=0.01)
    reports = SenderReports(beat)

    class Idle:
        closed = False
        path = None

    consumer = Idle()
    reports.add(object(), consumer, CLOCK_RATE)
    reports.add(object(), Idle(), CLOCK_RATE)
    assert len(reports) == 2
    await eventually(lambda: beat.beats >= 2)  # the wheel keeps the beat going
    reports.close()
    assert len(reports) == 0
    # The next beat finds the wheel empty, and with nothing else to do the beat stops.
    armed = beat.beats
    await eventually(lambda: beat.beats > armed)
    beats = beat.beats
    # A negative check: ten intervals pass without a beat.
    await asyncio.sleep(0.1)
    assert beat.beats == beats
    beat.close()


def _rr(lsr: int) -> bytes:
    block = RtcpReceiverInfo(
        ssrc=1, fraction_lost=0, packets_lost=0, highest_sequence=5, jitter=0, lsr=lsr, dlsr=0
    )
    return bytes(RtcpRrPacket(ssrc=7, reports=[block]))


def _sr() -> bytes:
    info = RtcpSenderInfo(ntp_timestamp=1 << 40, rtp_timestamp=3, packet_count=0, octet_count=0)
    return bytes(RtcpSrPacket(ssrc=7, sender_info=info))


def _sdes() -> bytes:
    return bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=7, items=[(1, b"cname")])]))


def test_scan_rtcp_tells_routine_reports_from_the_rest() -> None:
    assert rtp.scan_rtcp(_rr(0) + _sdes()) == (True, False, False)
    assert rtp.scan_rtcp(_rr(0x12345678) + _sdes()) == (True, False, True)
    assert rtp.scan_rtcp(_sr() + _sdes()) == (True, True, False)
    bye = bytes(RtcpByePacket(sources=[7]))
    assert rtp.scan_rtcp(_rr(0) + bye)[0] is False
    assert rtp.scan_rtcp((_rr(0) + _sdes())[:-2])[0] is False  # truncated
    assert rtp.scan_rtcp(b"")[0] is False
    assert rtp.scan_rtcp(b"\x00" * 8)[0] is False  # not version 2


async def test_routine_reports_reach_aiortc_at_most_every_interval() -> None:
    thinner = hooks.RtcpThinner(None, interval=0.3)
    routine, with_lsr = _sr() + _sdes(), _rr(0x12345678)
    bye = bytes(RtcpByePacket(sources=[7]))
    handed = [
        data
        for data in (routine, routine, with_lsr, with_lsr, bye, routine)
        if thinner.wanted(data)
    ]
    # The first routine one, the first that can give a round-trip time, every BYE.
    assert handed == [routine, with_lsr, bye]
    assert thinner.thinned == 3
    await asyncio.sleep(0.35)  # the thinner's interval (0.3 s) must pass
    assert thinner.wanted(routine)
    assert thinner.wanted(with_lsr)


def test_cheaper_stun_encoding_gives_the_same_bytes() -> None:
    import os

    import aioice.stun

    from audio_rooms.sfu.hooks.stun import (
        ORIGINAL_MESSAGE_INTEGRITY,
        ORIGINAL_PACK_ADDRESS,
        ORIGINAL_XOR_DATA,
    )

    hooks.speed_up_stun()
    for address in (("127.0.0.1", 1), ("192.0.2.7", 65535), ("2001:db8::1", 443), ("::1", 9)):
        tid = os.urandom(12)
        assert aioice.stun.pack_xor_address(address, tid) == ORIGINAL_PACK_ADDRESS(
            address, lambda x, tid=tid: ORIGINAL_XOR_DATA(x, tid)
        )
        packed = aioice.stun.pack_xor_address(address, tid)
        assert aioice.stun.unpack_xor_address(packed, tid) == address
    for size in (0, 1, 6, 18):
        data, tid = os.urandom(size), os.urandom(12)
        assert aioice.stun.xor_data(data, tid) == ORIGINAL_XOR_DATA(data, tid)
    for size in (20, 48, 100):
        data, key = os.urandom(size), os.urandom(22)
        assert aioice.stun.message_integrity(data, key) == ORIGINAL_MESSAGE_INTEGRITY(data, key)
    message = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING,
        message_class=aioice.stun.Class.RESPONSE,
        transaction_id=os.urandom(12),
    )
    message.attributes["XOR-MAPPED-ADDRESS"] = ("127.0.0.1", 5000)
    message.add_message_integrity(b"secret")
    message.add_fingerprint()
    parsed = aioice.stun.parse_message(bytes(message))
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == ("127.0.0.1", 5000)
    with pytest.raises(ValueError):
        aioice.stun.pack_xor_address(("not-an-address", 1), os.urandom(12))
