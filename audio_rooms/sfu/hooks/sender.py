"""What leaves the SFU: the egress path of a connected transport, and RTCP sender reports."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.trsock
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

import aioice.ice
import aioice.stun
import aioice.turn
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtcpByePacket
from pylibsrtp._binding import ffi as _srtp_ffi

from audio_rooms.sfu import rtp
from audio_rooms.sfu.hooks.names import (
    SENDER_CNAME,
    SENDER_LSR,
    SENDER_LSR_TIME,
    SENDER_NTP,
    SENDER_OCTETS,
    SENDER_PACKETS,
    SENDER_RTCP_EXITED,
    SENDER_RTCP_STARTED,
    SENDER_RTP_TS,
)
from audio_rooms.sfu.hooks.srtp import gcm_master_key


class EgressPath:
    """Where a subscriber's packets go: its SRTP context and its selected UDP pair.

    ``protect`` and ``sendto`` are the public-API way (pylibsrtp ``Session.protect`` and the
    asyncio transport's ``sendto``, which buffers when the socket would block). The forwarder's
    hot path uses the same context and socket one level down: ``srtp`` (libsrtp's ``srtp_t``,
    for :data:`SRTP_PROTECT`), ``srtp_address`` (the same pointer as an integer, for the
    compiled fast path) and ``sock``, the non-blocking UDP socket itself (None when the pair
    is relayed through TURN: a datagram must then be wrapped by aioice, so it goes through
    ``sendto``). ``session`` keeps the pylibsrtp session, and so the context, alive.
    """

    __slots__ = (
        "addr",
        "protect",
        "sendto",
        "session",
        "sock",
        "srtp",
        "srtp_address",
        "srtp_master",
    )

    def __init__(
        self,
        protect: Callable[[bytes], bytes],
        sendto: Callable[[bytes, tuple[str, int]], None],
        addr: tuple[str, int],
        session: Any = None,
        sock: socket.socket | None = None,
        srtp_master: bytes | None = None,
    ) -> None:
        self.protect = protect
        self.sendto = sendto
        self.addr = addr
        self.session = session
        self.sock = sock
        # The sending master key || salt of an AES-GCM session: the compiled fast path
        # protects with its own context derived from it (srtp_gcm.c) instead of libsrtp's.
        self.srtp_master = srtp_master
        self.srtp: Any = None
        self.srtp_address = 0
        if session is not None:
            self.srtp = session._srtp[0]
            self.srtp_address = int(_srtp_ffi.cast("uintptr_t", self.srtp))


def egress_path(dtls: RTCDtlsTransport) -> EgressPath | None:
    """The SRTP context and socket of a connected DTLS transport (None until it is)."""
    if dtls.state != "connected" or dtls._tx_srtp is None:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return None
    transport = pair.protocol.transport
    sock: socket.socket | None = None
    if not isinstance(transport, aioice.turn.TurnTransport):
        wrapper = transport.get_extra_info("socket")
        # asyncio hands out a TransportSocket wrapper; its socket is non-blocking.
        raw = getattr(wrapper, "_sock", wrapper)
        if isinstance(raw, socket.socket) and raw.type == socket.SOCK_DGRAM:
            sock = raw
    return EgressPath(
        dtls._tx_srtp.protect,
        transport.sendto,
        pair.remote_addr,
        dtls._tx_srtp,
        sock,
        gcm_master_key(dtls),
    )


class SenderCounters(Protocol):
    """What a forwarded stream really sent (a slot's counters), for its RTCP sender reports."""

    @property
    def packets(self) -> int: ...

    @property
    def octets(self) -> int: ...

    @property
    def last_rtp_timestamp(self) -> int: ...

    @property
    def last_send_ns(self) -> int:
        """``time.perf_counter_ns()`` of the last packet."""
        ...


def take_over_sender_reports(sender: RTCRtpSender, counters: SenderCounters) -> None:
    """Stop ``sender``'s own RTCP timer: the SFU's batch timer sends its reports instead.

    aiortc runs one ``_run_rtcp`` task per sender, waking every 0.5-1.5 s; with several slots per
    listener those timers are most of what an idle listener costs. Call this before the sender
    starts (before the connection connects). Its RTCP task then only waits (no timer) until the
    sender stops, and sends the RTCP BYE aiortc would send, if the slot ever reported. The
    reports themselves come from :func:`sender_report`.
    """

    async def run_rtcp() -> None:
        getattr(sender, SENDER_RTCP_STARTED).set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            pass
        try:
            if counters.packets:
                await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        finally:
            getattr(sender, SENDER_RTCP_EXITED).set()

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


def sender_report(sender: RTCRtpSender, counters: SenderCounters, clock_rate: int) -> bytes | None:
    """An RTCP SR + SDES (plain, not yet protected) describing what was forwarded on ``sender``.

    None when the slot has carried nothing (RFC 3550 6.4: only active senders send SRs) or the
    sender has not started. The packet and octet counts are the forwarded stream's; the RTP
    timestamp is the last forwarded one advanced by the wall time since it was sent, paired
    with now's NTP time. The sender's own statistics and round-trip-time reference (what aiortc
    would have set when sending its report) are updated to match.
    """
    if not counters.packets:
        return None
    cname: str | None = getattr(sender, SENDER_CNAME)
    if cname is None:
        return None
    now = time.time()
    elapsed = max(0.0, (time.perf_counter_ns() - counters.last_send_ns) / 1e9)
    rtp_ts = (counters.last_rtp_timestamp + int(elapsed * clock_rate)) & 0xFFFFFFFF
    ntp = rtp.ntp_from_unix(now)
    ssrc = sender._ssrc
    sr = rtp.sender_report(ssrc, ntp, rtp_ts, counters.packets, counters.octets)
    setattr(sender, SENDER_LSR, (ntp >> 16) & 0xFFFFFFFF)
    setattr(sender, SENDER_LSR_TIME, now)
    setattr(sender, SENDER_PACKETS, counters.packets)
    setattr(sender, SENDER_OCTETS, counters.octets)
    setattr(sender, SENDER_NTP, ntp)
    setattr(sender, SENDER_RTP_TS, rtp_ts)
    return sr + rtp.sdes(ssrc, cname)


def send_rtcp(path: EgressPath, data: bytes) -> bool:
    """Protect a plain RTCP packet with the subscriber's SRTCP context and send it."""
    session = path.session
    if session is None:
        return False
    try:
        datagram = session.protect_rtcp(data)
    except Exception:  # pylibsrtp raises its own Error for a context in a bad state
        return False
    sock = path.sock
    if sock is not None:
        try:
            sock.sendto(datagram, path.addr)
            return True
        except BlockingIOError:
            pass
        except OSError:
            return False
    try:
        path.sendto(datagram, path.addr)
    except Exception:
        return False
    return True

