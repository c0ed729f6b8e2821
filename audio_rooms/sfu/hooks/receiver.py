"""What enters the SFU: datagrams filtered, SRTP decrypted in the datagram callback, receiver
reports, RTCP thinned."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.trsock
import struct
import time
from collections.abc import Callable, Container
from typing import Any, cast

from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket

from audio_rooms.sfu.hooks.names import (
    RECEIVER_RTCP_EXITED,
    RECEIVER_RTCP_STARTED,
    RECEIVER_STOP_DECODER,
    RECEIVER_STREAMS,
    RECEIVER_WAKE,
)
from audio_rooms.sfu.hooks.srtp import (
    RX_BUFFER_SIZE,
    UNPROTECT,
    UNPROTECT_RTCP,
    is_srtp,
    unprotect,
)
from audio_rooms.sfu.rtp import RtpHeader, scan_rtcp

RtpHandler = Callable[[bytes, int], None]
"""Called with a decrypted RTP packet and its arrival time (``time.perf_counter_ns()``)."""


# RFC 7983's demultiplexing by first byte: STUN is 0-3, DTLS 20-63, RTP and RTCP 128-191.
_STUN_LAST = 3
_DTLS_FIRST, _DTLS_LAST = 20, 63


def install_ingress(
    dtls: RTCDtlsTransport,
    handler: RtpHandler,
    rtcp: RtcpThinner,
    dropped: Callable[[str], None],
    validated: Container[tuple[str, int]],
) -> None:
    """Decrypt ``dtls``'s SRTP as each datagram comes off its socket; RTP goes to ``handler``.

    aiortc would queue every datagram, wake the DTLS transport's task for it, decrypt it through
    pylibsrtp and only then look at it. Here RTP and RTCP are handled synchronously in the
    datagram callback, with libsrtp called on a shared buffer: RTP goes to ``handler`` (which
    replaces aiortc's receivers) with the time it came off the socket, RTCP is first shown to
    ``rtcp`` (:class:`RtcpThinner`) and only what it wants reaches aiortc's RTCP handling (in a
    task of its own, as aiortc's is asynchronous). DTLS and STUN keep aiortc's and aioice's
    paths, as does SRTP that arrives before the DTLS handshake has given keys.

    Anyone can send to a media port, and aiortc's DTLS loop ends the transport on the first
    datagram it cannot index (an empty one). So before aioice or aiortc sees anything: empty
    datagrams are dropped; STUN goes to aioice (it authenticates requests itself); everything
    else is taken only from an address in ``validated`` (one that sent a valid STUN request:
    the peer's selected and checked addresses, see ``probe_only_requesters``) and only when
    its first byte says DTLS or RTP/RTCP (RFC 7983). ``dropped`` is told why a datagram went
    nowhere: ``empty``, ``unknown_source``, ``unknown_protocol``, ``oversized``,
    ``srtp_unprotect_failed`` (forged, replayed or corrupt: aiortc drops those silently),
    ``malformed_stun`` (aioice's parser would have raised out of the event loop's callback).
    """
    ice = dtls.transport
    conn = ice._connection
    original_data_received = conn.data_received
    original_rtcp = dtls._handle_rtcp_data
    clock = time.perf_counter_ns
    tasks: set[asyncio.Task[None]] = set()
    session: list[Any] = [None, None]  # the receiving pylibsrtp Session, its srtp_t

    def data_received(data: bytes, component: int) -> None:
        # aioice's route: what its STUN parser refused, and DTLS handed on by a bypass below.
        if not data:
            dropped("empty")
        elif data[0] <= _STUN_LAST:  # framed as STUN, yet not STUN: nothing else can take it
            dropped("malformed_stun")
        elif is_srtp(data):
            srtp_received(data, component)
        else:
            original_data_received(data, component)

    def srtp_received(data: bytes, component: int) -> None:
        rx = dtls._rx_srtp
        if rx is None:  # before the handshake gave keys: aiortc's queue, as before
            original_data_received(data, component)
            return
        now = clock()
        if len(data) > RX_BUFFER_SIZE:
            dropped("oversized")
            return
        if session[0] is not rx:
            session[0], session[1] = rx, rx._srtp[0]
        if 192 <= data[1] <= 208:  # aiortc's is_rtcp()
            plain = unprotect(UNPROTECT_RTCP, session[1], data)
            if plain is None:
                dropped("srtp_unprotect_failed")
            elif rtcp.wanted(plain):
                task = asyncio.ensure_future(original_rtcp(plain))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            return
        plain = unprotect(UNPROTECT, session[1], data)
        if plain is None:
            dropped("srtp_unprotect_failed")
            return
        handler(plain, now)

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        # SRTP queued before the handshake finished, decrypted later by aiortc.
        handler(data, clock())

    def bypass(protocol: Any) -> None:
        # aioice tries to parse every datagram as STUN and hands what fails on unchecked; RTP
        # and RTCP never are STUN (RFC 7983), so they skip the attempt.
        original = protocol.datagram_received
        component = protocol.local_candidate.component

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if not data:
                dropped("empty")
                return
            first = data[0]
            if first <= _STUN_LAST:
                try:
                    original(data, addr)
                except (ValueError, struct.error, IndexError, KeyError, UnicodeDecodeError):
                    # aioice's STUN parser raises these on a malformed attribute (an
                    # ICE-CONTROLLING that is not 8 bytes, say) out of the event loop's callback.
                    dropped("malformed_stun")
                return
            if (addr[0], addr[1]) not in validated:
                dropped("unknown_source")
            elif is_srtp(data):
                srtp_received(data, component)
            elif _DTLS_FIRST <= first <= _DTLS_LAST:
                original_data_received(data, component)  # aiortc's DTLS queue
            else:
                dropped("unknown_protocol")

        protocol.datagram_received = datagram_received

    conn.data_received = data_received  # type: ignore[method-assign]
    for protocol in conn._protocols:
        bypass(protocol)
    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]


def feed_receiver_report(receiver: RTCRtpReceiver, packet: RtpHeader, clock_rate: int) -> None:
    """Count ``packet`` in the statistics ``receiver``'s RTCP receiver reports are built from.

    Forwarded packets never reach ``_handle_rtp_packet``, so without this the publisher would
    hear no receiver reports (no loss or jitter feedback).
    """
    streams: dict[int, StreamStatistics] = getattr(receiver, RECEIVER_STREAMS)
    stats = streams.get(packet.ssrc)
    if stats is None:
        stats = streams[packet.ssrc] = StreamStatistics(clock_rate)
        wake: asyncio.Event | None = getattr(receiver, RECEIVER_WAKE, None)
        if wake is not None:
            wake.set()
    # StreamStatistics.add reads only the sequence number and timestamp (checked at start-up).
    stats.add(cast(RtpPacket, packet))


def silence_receiver(receiver: RTCRtpReceiver) -> None:
    """Stop the decoder thread aiortc starts for every receiver, as soon as it is started.

    The SFU never decodes, so each receiving participant would otherwise hold an idle thread.
    Its RTCP task (receiver reports) starts with the first stream it counts.
    """
    original_receive = receiver.receive

    async def receive(parameters: Any) -> None:
        await original_receive(parameters)
        getattr(receiver, RECEIVER_STOP_DECODER)()

    receiver.receive = receive  # type: ignore[method-assign]
    _lazy_receiver_reports(receiver)


def _lazy_receiver_reports(receiver: RTCRtpReceiver) -> None:
    """Start ``receiver``'s RTCP timer only once it has a stream to report on.

    aiortc's receiver wakes every 0.5-1.5 s to send receiver reports, and sends nothing while no
    stream has arrived: a listener's microphone line (which never carries audio) would keep an
    idle timer for its whole life. Until :func:`feed_receiver_report` counts a first packet the
    task only waits, without a timer; from then on it is aiortc's own loop.
    """
    original = receiver._run_rtcp
    wake = asyncio.Event()
    setattr(receiver, RECEIVER_WAKE, wake)

    async def run_rtcp() -> None:
        getattr(receiver, RECEIVER_RTCP_STARTED).set()
        try:
            await wake.wait()
        except asyncio.CancelledError:
            getattr(receiver, RECEIVER_RTCP_EXITED).set()
            return
        await original()

    receiver._run_rtcp = run_rtcp  # type: ignore[method-assign]


class RtcpThinner:
    """Which of a peer's incoming RTCP compounds aiortc gets to see.

    A listener sends a compound report about every second (receiver reports on its slots, a
    sender report for its silent microphone, SDES). aiortc parses each into objects and builds
    statistics nobody in the SFU reads, per listener per second. Kept in full: anything that is
    not SR/RR/SDES (BYE, NACK, PLI, REMB, ...), malformed packets (aiortc rejects them as
    before), every packet with a sender report while the peer's microphone stream is being
    received (its NTP time is what the SFU's receiver reports answer with, for the publisher's
    round-trip time). Routine reports otherwise reach aiortc once per ``interval``, and one
    whose report blocks can give a round-trip time (non-zero LSR) once per ``interval`` too, so
    the slots' senders keep measuring it.
    """

    def __init__(self, mic_receiver: RTCRtpReceiver | None, interval: float = 5.0) -> None:
        self._streams: dict[int, StreamStatistics] | None = (
            getattr(mic_receiver, RECEIVER_STREAMS) if mic_receiver is not None else None
        )
        self._interval = interval
        self._last_any = self._last_lsr = -interval
        self.thinned = 0

    def wanted(self, data: bytes) -> bool:
        """Whether the plain compound ``data`` should reach aiortc (counts those that don't)."""
        only_reports, has_sr, has_lsr = scan_rtcp(data)
        if only_reports and not (has_sr and self._streams):
            now = time.monotonic()
            if has_lsr and now - self._last_lsr >= self._interval:
                self._last_lsr = now
            elif now - self._last_any < self._interval:
                self.thinned += 1
                return False
            self._last_any = now
        return True
