"""Every place where the SFU reaches into aiortc's (and aioice's) private internals.

aiortc has no packet-forwarding API: its receiver always decodes and its sender always encodes.
To forward Opus packets untouched we take the decrypted RTP before the receiver's jitter buffer,
and send rewritten packets through the subscriber's SRTP context and UDP socket directly. Those
points are private and can move in any release, so they are all here, aiortc is pinned exactly
(``aiortc==1.16.0``), :func:`check_compatibility` runs when a :class:`MediaServer` starts, and
``tests/sfu/test_hooks.py`` exercises each hook against real peers.

Nothing outside this module may touch a name that starts with an underscore on an aiortc or
aioice object.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.trsock
import hmac
import inspect
import ipaddress
import logging
import random
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, cast

import aioice.ice
import aioice.stun
import aioice.turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpByePacket, RtcpSdesPacket, RtcpSourceInfo, RtpPacket
from pylibsrtp import Session as SrtpSession
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from audio_rooms.sfu.errors import HookIncompatible
from audio_rooms.sfu.rtpheader import RtpHeader

logger = logging.getLogger(__name__)

# The NTP epoch (1900) is this many seconds before the Unix epoch (1970).
_NTP_EPOCH_OFFSET = 2_208_988_800

# Name-mangled private attributes, spelled once.
_RECEIVER_STREAMS = "_RTCRtpReceiver__remote_streams"
_RECEIVER_STOP_DECODER = "_RTCRtpReceiver__stop_decoder"
_SENDER_LSR = "_RTCRtpSender__lsr"
_SENDER_PACKETS = "_RTCRtpSender__packet_count"
_SENDER_OCTETS = "_RTCRtpSender__octet_count"
_SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
_SENDER_RTP_TS = "_RTCRtpSender__rtp_timestamp"

# libsrtp's srtp_protect(srtp_t ctx, void *rtp, int *len): protects in place, appending the
# authentication tag. Taken from pylibsrtp's cffi binding (the same libsrtp aiortc uses), so
# the forwarder can call it with its own buffer, and the compiled fast path by address.
SRTP_PROTECT: Any = _srtp_lib.srtp_protect
SRTP_OK: int = _srtp_lib.srtp_err_status_ok
# Room libsrtp may append to a packet (tag + MKI, SRTP_MAX_TRAILER_LEN in libsrtp 2).
SRTP_MAX_TRAILER = 144


def srtp_buffer(size: int) -> tuple[Any, Any]:
    """A C buffer of ``size`` bytes for :data:`SRTP_PROTECT` and an ``int *`` for its length."""
    return _srtp_ffi.new("unsigned char[]", size), _srtp_ffi.new("int *")


def srtp_buffer_view(buf: Any) -> memoryview:
    return memoryview(_srtp_ffi.buffer(buf))


def srtp_protect_address() -> int:
    """The address of libsrtp's ``srtp_protect`` (for the compiled fast path)."""
    return int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))


RtpHandler = Callable[[bytes, int], None]
"""Called with a decrypted RTP packet and its arrival time (``time.perf_counter_ns()``)."""


# --- compatibility -----------------------------------------------------------------------------


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def compatibility_problems() -> list[str]:
    """Name every private aiortc/aioice detail the hooks rely on that is missing or changed."""
    problems: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    need(hasattr(RTCDtlsTransport, "_handle_rtp_data"), "RTCDtlsTransport._handle_rtp_data")
    need(
        "await self._handle_rtp_data(" in _source(RTCDtlsTransport._recv_next),
        "RTCDtlsTransport._recv_next awaits self._handle_rtp_data(data, arrival_time_ms=...)",
    )
    need(
        "self.transport._recv()" in _source(RTCDtlsTransport._recv_next),
        "RTCDtlsTransport._recv_next reads datagrams through self.transport._recv()",
    )
    need(
        "_tx_srtp" in _source(RTCDtlsTransport._setup_srtp),
        "RTCDtlsTransport._tx_srtp (the SRTP sender context)",
    )
    setup = _source(RTCDtlsTransport._setup_srtp)
    need(
        'self._ssl.export_keying_material(\n            b"EXTRACTOR-dtls_srtp"' in setup
        and 'if self._role == "server":\n            srtp_tx_key = srtp_profile.get_key_and_salt('
        "view, 1)" in setup,
        "RTCDtlsTransport._ssl / _role (the DTLS-SRTP keys, RFC 5764 4.2)",
    )
    need(
        "elif first_byte > 127 and first_byte < 192 and self._rx_srtp:"
        in _source(RTCDtlsTransport._recv_next)
        and "self._rx_srtp.unprotect_rtcp(data)" in _source(RTCDtlsTransport._recv_next),
        "RTCDtlsTransport._rx_srtp (the SRTP receiver context, set by the handshake)",
    )
    need(
        "self._protocols += host_protocols"
        in _source(aioice.ice.Connection.get_component_candidates),
        "aioice Connection._protocols (one StunProtocol per local candidate)",
    )
    need(
        "self.receiver.data_received(data, self.local_candidate.component)"
        in _source(aioice.ice.StunProtocol.datagram_received),
        "aioice StunProtocol.datagram_received hands non-STUN data on unchecked",
    )
    need(
        "self.receiver.data_received(" in _source(aioice.ice.StunProtocol.datagram_received),
        "aioice StunProtocol.datagram_received -> Connection.data_received",
    )
    need(
        "get_host_addresses(" in _source(aioice.ice.Connection.gather_candidates),
        "aioice Connection.gather_candidates uses get_host_addresses()",
    )
    need(
        "_nominated" in _source(aioice.ice.Connection.sendto),
        "aioice Connection._nominated (the selected candidate pair per component)",
    )
    need(
        hasattr(aioice.ice, "CONSENT_INTERVAL") and hasattr(aioice.ice, "CONSENT_FAILURES"),
        "aioice.ice.CONSENT_INTERVAL / CONSENT_FAILURES",
    )
    need(
        "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())" in _source(RTCRtpSender.send),
        "RTCRtpSender.send starts its RTCP task from self._run_rtcp()",
    )
    need(
        "self.__rtcp_started.set()" in _source(RTCRtpSender._run_rtcp)
        and "self.__rtcp_exited.set()" in _source(RTCRtpSender._run_rtcp)
        and "self.__rtcp_started.wait()" in _source(RTCRtpSender.stop),
        "RTCRtpSender.__rtcp_started / __rtcp_exited (awaited by stop())",
    )
    need(
        "self.__lsr = " in _source(RTCRtpSender._run_rtcp)
        and "self.__lsr_time = " in _source(RTCRtpSender._run_rtcp),
        "RTCRtpSender.__lsr / __lsr_time (last sender report, for round-trip time)",
    )
    need(
        "self.__cname = parameters.rtcp.cname" in _source(RTCRtpSender.send),
        "RTCRtpSender.__cname (the SDES CNAME of its reports)",
    )
    need(hasattr(RTCRtpSender, "_send_rtcp"), "RTCRtpSender._send_rtcp")
    need(
        "self.__packet_count" in _source(RTCRtpSender.getStats),
        "RTCRtpSender.__packet_count / __octet_count",
    )
    need(
        hasattr(RTCRtpReceiver, _RECEIVER_STOP_DECODER),
        "RTCRtpReceiver.__stop_decoder",
    )
    need(
        set(re.findall(r"packet\.(\w+)", _source(StreamStatistics.add)))
        == {"sequence_number", "timestamp"},
        "aiortc StreamStatistics.add reads only packet.sequence_number and packet.timestamp",
    )
    need(
        "self.__remote_streams[packet.ssrc].add(packet)"
        in _source(RTCRtpReceiver._handle_rtp_packet),
        "RTCRtpReceiver.__remote_streams (StreamStatistics per SSRC, read by receiver reports)",
    )
    need(
        "self.__decoder_thread.start()" in _source(RTCRtpReceiver.receive),
        "RTCRtpReceiver.receive starts a decoder thread",
    )
    need(
        "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())"
        in _source(RTCRtpReceiver.receive)
        and "self.__rtcp_started.set()" in _source(RTCRtpReceiver._run_rtcp)
        and "self.__rtcp_exited.set()" in _source(RTCRtpReceiver._run_rtcp)
        and "self.__rtcp_started.wait()" in _source(RTCRtpReceiver.stop),
        "RTCRtpReceiver._run_rtcp and its __rtcp_started / __rtcp_exited events",
    )
    need(
        "await self._handle_rtcp_data(data)" in _source(RTCDtlsTransport._recv_next),
        "RTCDtlsTransport._recv_next awaits self._handle_rtcp_data(data) with plain RTCP",
    )
    need(
        "pack_address(value, lambda x: xor_data(x, transaction_id))"
        in _source(aioice.stun.pack_xor_address)
        and 'xpad = pack("!HI", COOKIE >> 16, COOKIE) + transaction_id'
        in _source(_ORIGINAL_XOR_DATA)
        and "ipaddress.ip_address(value[0])" in _source(_ORIGINAL_PACK_ADDRESS),
        "aioice.stun pack_xor_address -> pack_address / xor_data (module globals)",
    )
    consent = _source(aioice.ice.Connection.query_consent)
    need(
        "await asyncio.sleep(CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))" in consent
        and "request = self.build_request(pair, nominate=False)" in consent
        and "retransmissions=0," in consent
        and "if failures >= CONSENT_FAILURES:" in consent
        and "self._query_consent_task = None" in consent
        and "return await self.close()" in consent
        and "self._query_consent_task = asyncio.create_task(self.query_consent())"
        in _source(aioice.ice.Connection.connect),
        "aioice Connection.query_consent (the consent loop align_consent() copies)",
    )
    need(
        hasattr(asyncio.BaseEventLoop, "_add_reader") or hasattr(
            asyncio.selector_events.BaseSelectorEventLoop, "_add_reader"
        ),
        "asyncio selector loop _add_reader / _remove_reader",
    )
    need(
        "def _read_ready(self):"
        in _source(getattr(asyncio.selector_events, "_SelectorDatagramTransport", None))
        and "self._sock_fd = sock.fileno()"
        in _source(getattr(asyncio.selector_events, "_SelectorTransport", None)),
        "asyncio _SelectorDatagramTransport._read_ready / _sock_fd",
    )
    need(
        "= message_integrity(" in _source(aioice.stun.Message.add_message_integrity)
        and "message_integrity(self._integrity_data, key)"
        in _source(aioice.stun.Message.check_message_integrity)
        and "set_body_length(data, len(data) - HEADER_LENGTH + INTEGRITY_LENGTH)"
        in _source(_ORIGINAL_MESSAGE_INTEGRITY),
        "aioice.stun.message_integrity (a module global, HMAC-SHA1 with the length adjusted)",
    )
    need(
        "self._srtp = " in _source(SrtpSession.__init__),
        "pylibsrtp Session._srtp (pointer to the srtp_t context)",
    )
    need(
        str(_srtp_ffi.typeof(_srtp_lib.srtp_protect)).startswith(
            "<ctype 'srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
        ),
        "libsrtp 2 srtp_protect(srtp_t, void *, int *) in pylibsrtp's binding",
    )
    need(
        "_sock" in _source(asyncio.trsock.TransportSocket.__init__),
        "asyncio TransportSocket._sock (the datagram transport's socket)",
    )
    return problems


def check_compatibility() -> None:
    """Raise :class:`HookIncompatible` if the installed aiortc no longer has what we hook."""
    problems = compatibility_problems()
    if problems:
        raise HookIncompatible(
            "the installed aiortc/aioice changed internals the SFU hooks: " + "; ".join(problems),
            problems=problems,
        )


# --- ICE: gathering, consent -------------------------------------------------------------------


def ice_connections(pc: RTCPeerConnection) -> list[aioice.ice.Connection]:
    """The aioice connections behind a peer connection's transceivers (bundled ones once)."""
    seen: dict[int, aioice.ice.Connection] = {}
    for transceiver in pc.getTransceivers():
        conn = transceiver.receiver.transport.transport.iceGatherer._connection
        seen[id(conn)] = conn
    return list(seen.values())


async def _bind_udp(
    conn: aioice.ice.Connection, address: str, port_min: int | None, port_max: int | None
) -> aioice.ice.StunProtocol | None:
    loop = asyncio.get_running_loop()
    if port_min is None or port_max is None:
        ports = [0]
    else:
        ports = list(range(port_min, port_max + 1))
        random.shuffle(ports)
    for port in ports:
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(conn), local_addr=(address, port)
            )
        except OSError:
            continue
        sock = protocol.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        return protocol
    logger.warning("no free UDP port on %s in %s-%s", address, port_min, port_max)
    return None


def restrict_gathering(
    pc: RTCPeerConnection,
    addresses: Iterable[str],
    port_min: int | None = None,
    port_max: int | None = None,
    announced_address: str | None = None,
) -> None:
    """Make ``pc`` gather host candidates on exactly ``addresses`` (loopback allowed).

    aioice's gathering asks every interface except 127.0.0.1 and binds ephemeral ports; a server
    needs configured addresses, a port range and an announced (public) address instead. This
    replaces ``gather_candidates`` on each of ``pc``'s aioice connections (not process-wide).
    STUN and TURN candidates still come from the connection's configured servers. Call it after
    the transceivers exist and before ``setLocalDescription``.
    """
    wanted = tuple(addresses)
    for conn in ice_connections(pc):
        conn.gather_candidates = _make_gather(  # type: ignore[method-assign]
            conn, wanted, port_min, port_max, announced_address
        )


def _make_gather(
    conn: aioice.ice.Connection,
    addresses: tuple[str, ...],
    port_min: int | None,
    port_max: int | None,
    announced_address: str | None,
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def gather_candidates() -> None:
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        for component in sorted(conn._components):
            host_protocols = []
            for address in addresses:
                protocol = await _bind_udp(conn, address, port_min, port_max)
                if protocol is None:
                    continue
                bound = protocol.transport.get_extra_info("sockname")
                shown = announced_address or bound[0]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", shown),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=shown,
                    port=bound[1],
                    type="host",
                )
                host_protocols.append(protocol)
                conn._local_candidates.append(protocol.local_candidate)
            conn._protocols += host_protocols
            if conn.stun_server or conn.turn_server:
                # Reuse aioice's own STUN/TURN gathering with no extra host addresses: it only
                # queries servers from the sockets it is handed, so hand it ours.
                await _gather_server_candidates(conn, component, host_protocols)
        conn._local_candidates_end = True

    return gather_candidates


async def _gather_server_candidates(
    conn: aioice.ice.Connection, component: int, host_protocols: list[aioice.ice.StunProtocol]
) -> None:
    tasks: list[asyncio.Task[Any]] = []
    if conn.stun_server:
        for protocol in host_protocols:
            if ":" not in protocol.transport.get_extra_info("sockname")[0]:
                tasks.append(
                    asyncio.create_task(
                        aioice.ice.server_reflexive_candidate(protocol, conn.stun_server)
                    )
                )
    if conn.turn_server:
        tasks.append(
            asyncio.create_task(
                aioice.ice.relayed_candidate(
                    component=component,
                    hide_related_address=False,
                    protocol_factory=lambda: aioice.ice.StunProtocol(conn),
                    turn_server=conn.turn_server,
                    turn_username=conn.turn_username,
                    turn_password=conn.turn_password,
                    turn_ssl=conn.turn_ssl,
                    turn_transport=conn.turn_transport,
                )
            )
        )
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=5)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is None:
            candidate, relay_protocol = task.result()
            conn._local_candidates.append(candidate)
            if relay_protocol is not None:
                conn._protocols.append(relay_protocol)


def set_consent_timing(interval: float, failures: int) -> None:
    """Set RFC 7675 consent-freshness timing for every aioice connection in this process.

    aioice reads these module constants on every check, so this is process-wide by nature: a
    peer is declared gone after about ``interval * failures`` seconds without answers (aioice's
    default 5 s x 6).
    """
    # Declared int, but only ever multiplied into an asyncio.sleep() delay.
    aioice.ice.CONSENT_INTERVAL = interval  # type: ignore[assignment]
    aioice.ice.CONSENT_FAILURES = failures


_ORIGINAL_XOR_DATA = aioice.stun.xor_data
_ORIGINAL_PACK_ADDRESS = aioice.stun.pack_address
_ORIGINAL_MESSAGE_INTEGRITY = aioice.stun.message_integrity
_XOR_PAD = struct.pack("!HI", aioice.stun.COOKIE >> 16, aioice.stun.COOKIE)
_ADDRESSES: dict[str, tuple[int, bytes]] = {}


def _xor_data(data: bytes, transaction_id: bytes) -> bytes:
    """aioice's ``xor_data`` without its byte-by-byte loop (same result, same errors)."""
    n = len(data)
    pad = _XOR_PAD + transaction_id
    if n > len(pad):
        return _ORIGINAL_XOR_DATA(data, transaction_id)
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad[:n], "big")).to_bytes(n, "big")


def _pack_address(value: tuple[str, int], xor: Callable[[bytes], bytes] = lambda x: x) -> bytes:
    """aioice's ``pack_address`` with the parsed address remembered per host string."""
    host = value[0]
    known = _ADDRESSES.get(host)
    if known is None:
        address = ipaddress.ip_address(host)  # raises exactly as aioice would
        protocol = (
            aioice.stun.IPV4_PROTOCOL
            if isinstance(address, ipaddress.IPv4Address)
            else aioice.stun.IPV6_PROTOCOL
        )
        if len(_ADDRESSES) > 10_000:
            _ADDRESSES.clear()
        known = _ADDRESSES[host] = (protocol, address.packed)
    protocol, packed = known
    return struct.pack("!BB", 0, protocol) + xor(struct.pack("!H", value[1]) + packed)


def speed_up_stun() -> None:
    """Make aioice's STUN encoding cheaper, process-wide (idempotent).

    Every consent check (RFC 7675, each peer every ~5 s both ways) builds a STUN message with an
    XOR-MAPPED-ADDRESS: aioice XORs it byte by byte in Python and parses the IP address string
    each time. The replacements compute the same bytes (``tests/sfu/test_rtcp.py`` compares
    them); aioice's ``pack_xor_address`` looks both names up in its module at each call. Each
    message's HMAC-SHA1 (MESSAGE-INTEGRITY, made or checked for every STUN message) is computed
    by the one-shot ``hmac.digest`` rather than through an ``hmac.HMAC`` object.
    """
    aioice.stun.xor_data = _xor_data
    aioice.stun.pack_address = _pack_address
    aioice.stun.message_integrity = _message_integrity


def _message_integrity(data: bytes, key: bytes) -> bytes:
    """aioice's ``message_integrity``: HMAC-SHA1 over the message with its length adjusted."""
    length = len(data) - aioice.stun.HEADER_LENGTH + aioice.stun.INTEGRITY_LENGTH
    return hmac.digest(key, data[:2] + length.to_bytes(2, "big") + data[4:], "sha1")


# --- ingress -----------------------------------------------------------------------------------


# Decrypting ingress in place: one buffer for the whole process (one event loop, no
# concurrency). A datagram larger than this is no RTP the SFU accepts.
RX_BUFFER_SIZE = 2048
_RX_BUF, _RX_LEN = srtp_buffer(RX_BUFFER_SIZE)
_RX_VIEW = srtp_buffer_view(_RX_BUF)
_UNPROTECT: Any = _srtp_lib.srtp_unprotect
_UNPROTECT_RTCP: Any = _srtp_lib.srtp_unprotect_rtcp


def _unprotect(fn: Any, ctx: Any, data: bytes) -> bytes | None:
    """``data`` authenticated and decrypted by libsrtp's ``fn`` with ``ctx``, or None."""
    n = len(data)
    _RX_VIEW[:n] = data
    _RX_LEN[0] = n
    if fn(ctx, _RX_BUF, _RX_LEN) != SRTP_OK:
        return None
    return bytes(_RX_VIEW[: _RX_LEN[0]])


def _is_srtp(data: bytes) -> bool:
    """RTP or RTCP by its first byte (RFC 7983: 128-191), as aiortc tells them apart."""
    return len(data) >= 12 and 127 < data[0] < 192


def install_ingress(
    dtls: RTCDtlsTransport,
    handler: RtpHandler,
    rtcp: RtcpThinner,
    dropped: Callable[[str], None],
) -> None:
    """Decrypt ``dtls``'s SRTP as each datagram comes off its socket; RTP goes to ``handler``.

    aiortc would queue every datagram, wake the DTLS transport's task for it, decrypt it through
    pylibsrtp and only then look at it. Here RTP and RTCP are handled synchronously in the
    datagram callback, with libsrtp called on a shared buffer: RTP goes to ``handler`` (which
    replaces aiortc's receivers) with the time it came off the socket, RTCP is first shown to
    ``rtcp`` (:class:`RtcpThinner`) and only what it wants reaches aiortc's RTCP handling (in a
    task of its own, as aiortc's is asynchronous). DTLS and STUN keep aiortc's and aioice's
    paths, as does SRTP that arrives before the DTLS handshake has given keys. ``dropped`` is
    told why a datagram went nowhere: ``oversized``, ``srtp_unprotect_failed`` (forged,
    replayed or corrupt: aiortc drops those silently), ``malformed_stun`` (aioice's parser
    would have raised out of the event loop's callback).
    """
    ice = dtls.transport
    conn = ice._connection
    original_data_received = conn.data_received
    original_rtcp = dtls._handle_rtcp_data
    clock = time.perf_counter_ns
    tasks: set[asyncio.Task[None]] = set()
    session: list[Any] = [None, None]  # the receiving pylibsrtp Session, its srtp_t

    def data_received(data: bytes, component: int) -> None:
        rx = dtls._rx_srtp
        if rx is None or not _is_srtp(data):
            original_data_received(data, component)
            return
        now = clock()
        if len(data) > RX_BUFFER_SIZE:
            dropped("oversized")
            return
        if session[0] is not rx:
            session[0], session[1] = rx, rx._srtp[0]
        if 192 <= data[1] <= 208:  # aiortc's is_rtcp()
            plain = _unprotect(_UNPROTECT_RTCP, session[1], data)
            if plain is None:
                dropped("srtp_unprotect_failed")
            elif rtcp.wanted(plain):
                task = asyncio.ensure_future(original_rtcp(plain))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            return
        plain = _unprotect(_UNPROTECT, session[1], data)
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
            if _is_srtp(data):
                data_received(data, component)
                return
            try:
                original(data, addr)
            except (ValueError, struct.error, IndexError, KeyError, UnicodeDecodeError):
                # aioice's STUN parser raises these on a malformed attribute (an ICE-CONTROLLING
                # that is not 8 bytes, say) out of the event loop's callback.
                dropped("malformed_stun")

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
    streams: dict[int, StreamStatistics] = getattr(receiver, _RECEIVER_STREAMS)
    stats = streams.get(packet.ssrc)
    if stats is None:
        stats = streams[packet.ssrc] = StreamStatistics(clock_rate)
        wake: asyncio.Event | None = getattr(receiver, _RECEIVER_WAKE, None)
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
        getattr(receiver, _RECEIVER_STOP_DECODER)()

    receiver.receive = receive  # type: ignore[method-assign]
    _lazy_receiver_reports(receiver)


_RECEIVER_WAKE = "_audio_rooms_rtcp_wake"
_RECEIVER_RTCP_STARTED = "_RTCRtpReceiver__rtcp_started"
_RECEIVER_RTCP_EXITED = "_RTCRtpReceiver__rtcp_exited"


def _lazy_receiver_reports(receiver: RTCRtpReceiver) -> None:
    """Start ``receiver``'s RTCP timer only once it has a stream to report on.

    aiortc's receiver wakes every 0.5-1.5 s to send receiver reports, and sends nothing while no
    stream has arrived: a listener's microphone line (which never carries audio) would keep an
    idle timer for its whole life. Until :func:`feed_receiver_report` counts a first packet the
    task only waits, without a timer; from then on it is aiortc's own loop.
    """
    original = receiver._run_rtcp
    wake = asyncio.Event()
    setattr(receiver, _RECEIVER_WAKE, wake)

    async def run_rtcp() -> None:
        getattr(receiver, _RECEIVER_RTCP_STARTED).set()
        try:
            await wake.wait()
        except asyncio.CancelledError:
            getattr(receiver, _RECEIVER_RTCP_EXITED).set()
            return
        await original()

    receiver._run_rtcp = run_rtcp  # type: ignore[method-assign]


# --- the event loop: deferred reads, aligned consent timers ------------------------------------


def deferrable_readers(pc: RTCPeerConnection) -> list[tuple[int, Callable[[], None]]]:
    """``(fd, read_ready)`` of each UDP socket of ``pc`` that asyncio reads (not TURN ones).

    ``read_ready`` is the asyncio datagram transport's own reader callback: whoever calls it
    when the socket is readable reads one datagram into aioice, as the event loop would.
    """
    readers = []
    for conn in ice_connections(pc):
        for protocol in conn._protocols:
            transport = protocol.transport
            fd = getattr(transport, "_sock_fd", None)
            read_ready = getattr(transport, "_read_ready", None)
            if isinstance(fd, int) and fd >= 0 and callable(read_ready):
                readers.append((fd, read_ready))
    return readers


def loop_remove_reader(fd: int) -> None:
    """Stop the running event loop's selector watching ``fd`` (a transport's socket)."""
    asyncio.get_running_loop()._remove_reader(fd)  # type: ignore[attr-defined]


def loop_add_reader(fd: int, callback: Callable[[], None]) -> None:
    """Watch ``fd`` in the running event loop's selector again, with ``callback``."""
    asyncio.get_running_loop()._add_reader(fd, callback)  # type: ignore[attr-defined]


_CONN_LOG_INFO = "_Connection__log_info"


def align_consent(conn: aioice.ice.Connection, sleep: Callable[[float], Awaitable[None]]) -> None:
    """Make ``conn``'s RFC 7675 consent checks wait with ``sleep`` (a beat-aligned sleep).

    The same loop as aioice's ``Connection.query_consent``; only its timer differs, so that
    every connection's check shares a wake-up with the others due on the same beat.
    """

    async def query_consent() -> None:
        assert conn.remote_password is not None
        failures = 0
        while True:
            await sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
            for pair in conn._nominated.values():
                request = conn.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request,
                        pair.remote_addr,
                        integrity_key=conn.remote_password.encode("utf8"),
                        retransmissions=0,
                    )
                    failures = 0
                except aioice.stun.TransactionError:
                    failures += 1
                if failures >= aioice.ice.CONSENT_FAILURES:
                    getattr(conn, _CONN_LOG_INFO)("Consent to send expired")
                    conn._query_consent_task = None
                    return await conn.close()

    conn.query_consent = query_consent  # type: ignore[method-assign]


# --- incoming RTCP ----------------------------------------------------------------------------

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202


def scan_rtcp(data: bytes) -> tuple[bool, bool, bool]:
    """Look at a plain compound RTCP packet without parsing it into objects.

    Returns ``(only_reports, has_sr, has_lsr)``: whether it holds nothing but sender reports,
    receiver reports and SDES (well formed), whether one is a sender report, and whether a
    report block refers to a sender report (a non-zero LSR: round-trip time can be measured).
    """
    pos, end = 0, len(data)
    has_sr = has_lsr = False
    if end < 4:
        return False, False, False
    while pos < end:
        if end - pos < 4 or data[pos] >> 6 != 2:
            return False, has_sr, has_lsr
        pt = data[pos + 1]
        nxt = pos + 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
        if nxt > end:
            return False, has_sr, has_lsr
        if pt in (RTCP_SR, RTCP_RR):
            blocks = pos + (28 if pt == RTCP_SR else 8)
            count = data[pos] & 0x1F
            if blocks + 24 * count > nxt:
                return False, has_sr, has_lsr
            has_sr = has_sr or pt == RTCP_SR
            for i in range(count):
                lsr = blocks + 24 * i + 16
                if data[lsr : lsr + 4] != b"\0\0\0\0":
                    has_lsr = True
        elif pt != RTCP_SDES:
            return False, has_sr, has_lsr
        pos = nxt
    return True, has_sr, has_lsr


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
            getattr(mic_receiver, _RECEIVER_STREAMS) if mic_receiver is not None else None
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


# --- egress ------------------------------------------------------------------------------------


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


_GCM_PROFILES = {b"SRTP_AEAD_AES_128_GCM": 16, b"SRTP_AEAD_AES_256_GCM": 32}
_GCM_SALT = 12


def gcm_master_key(dtls: RTCDtlsTransport) -> bytes | None:
    """The sending master key || salt of ``dtls``'s SRTP session if it is AES-GCM, else None.

    Exported again from the DTLS session exactly as aiortc's ``_setup_srtp`` does (RFC 5764
    4.2: client key, server key, client salt, server salt; a client sends with the client's).
    """
    ssl = dtls._ssl
    if ssl is None:
        return None
    key_len = _GCM_PROFILES.get(ssl.get_selected_srtp_profile())
    if key_len is None:
        return None
    view = ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (key_len + _GCM_SALT))
    idx = 1 if dtls._role == "server" else 0
    key = view[idx * key_len : (idx + 1) * key_len]
    salt = view[2 * key_len + idx * _GCM_SALT : 2 * key_len + (idx + 1) * _GCM_SALT]
    return bytes(key + salt)


class SenderCounters:
    """What a forwarded stream really sent, for the idle sender's RTCP sender reports."""

    __slots__ = ("last_rtp_timestamp", "last_send_ns", "octets", "packets")

    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0
        self.last_rtp_timestamp = 0
        self.last_send_ns = 0  # time.perf_counter_ns() of the last packet


_SENDER_LSR_TIME = "_RTCRtpSender__lsr_time"
_SENDER_CNAME = "_RTCRtpSender__cname"
_SENDER_RTCP_STARTED = "_RTCRtpSender__rtcp_started"
_SENDER_RTCP_EXITED = "_RTCRtpSender__rtcp_exited"
_SR_HEADER = 0x80C8_0006  # V=2, RC=0, PT=200 (SR), length 6 (28 bytes)
_SR = struct.Struct("!IIQIII")


def take_over_sender_reports(sender: RTCRtpSender, counters: SenderCounters) -> None:
    """Stop ``sender``'s own RTCP timer: the SFU's batch timer sends its reports instead.

    aiortc runs one ``_run_rtcp`` task per sender, waking every 0.5-1.5 s; with several slots per
    listener those timers are most of what an idle listener costs. Call this before the sender
    starts (before the connection connects). Its RTCP task then only waits (no timer) until the
    sender stops, and sends the RTCP BYE aiortc would send, if the slot ever reported. The
    reports themselves come from :func:`sender_report`.
    """

    async def run_rtcp() -> None:
        getattr(sender, _SENDER_RTCP_STARTED).set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            pass
        try:
            if counters.packets:
                await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        finally:
            getattr(sender, _SENDER_RTCP_EXITED).set()

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
    cname: str | None = getattr(sender, _SENDER_CNAME)
    if cname is None:
        return None
    now = time.time()
    elapsed = max(0.0, (time.perf_counter_ns() - counters.last_send_ns) / 1e9)
    rtp_ts = (counters.last_rtp_timestamp + int(elapsed * clock_rate)) & 0xFFFFFFFF
    ntp = ntp_from_unix(now)
    ssrc = sender._ssrc
    sr = _SR.pack(
        _SR_HEADER,
        ssrc,
        ntp,
        rtp_ts,
        counters.packets & 0xFFFFFFFF,
        counters.octets & 0xFFFFFFFF,
    )
    setattr(sender, _SENDER_LSR, (ntp >> 16) & 0xFFFFFFFF)
    setattr(sender, _SENDER_LSR_TIME, now)
    setattr(sender, _SENDER_PACKETS, counters.packets)
    setattr(sender, _SENDER_OCTETS, counters.octets)
    setattr(sender, _SENDER_NTP, ntp)
    setattr(sender, _SENDER_RTP_TS, rtp_ts)
    return sr + _sdes(ssrc, cname)


_SDES_CACHE: dict[tuple[int, str], bytes] = {}


def _sdes(ssrc: int, cname: str) -> bytes:
    key = (ssrc, cname)
    data = _SDES_CACHE.get(key)
    if data is None:
        if len(_SDES_CACHE) > 100_000:
            _SDES_CACHE.clear()
        data = _SDES_CACHE[key] = bytes(
            RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=ssrc, items=[(1, cname.encode())])])
        )
    return data


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


def ntp_from_unix(t: float) -> int:
    seconds = int(t) + _NTP_EPOCH_OFFSET
    fraction = int((t % 1) * (1 << 32))
    return (seconds << 32) | fraction


def default_host_addresses() -> list[str]:
    """aioice's own choice: every interface's addresses except loopback."""
    return aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)


def tap_rtp(
    dtls: RTCDtlsTransport, callback: Callable[[bytes], None], passthrough: bool = True
) -> None:
    """Show every decrypted RTP packet of ``dtls`` to ``callback`` (test and load clients).

    With ``passthrough`` the packet then takes aiortc's normal path (jitter buffer, decoder);
    without, it stops here, which is what a load client that only counts packets wants.
    """
    original = dtls._handle_rtp_data

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        callback(data)
        if passthrough:
            await original(data, arrival_time_ms)

    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]


def tap_rtcp(dtls: RTCDtlsTransport, callback: Callable[[bytes], None]) -> None:
    """Show every decrypted RTCP datagram of ``dtls`` to ``callback``, then handle it (tests)."""
    original = dtls._handle_rtcp_data

    async def handle_rtcp_data(data: bytes) -> None:
        callback(data)
        await original(data)

    dtls._handle_rtcp_data = handle_rtcp_data  # type: ignore[method-assign]


def filter_outgoing(dtls: RTCDtlsTransport, keep: Callable[[bytes], bool]) -> None:
    """Drop datagrams ``dtls`` sends for which ``keep`` is false (a lossy link in tests).

    ``keep`` sees the protected datagram; its first two bytes tell RTP from RTCP.
    """
    ice = dtls.transport
    original_send = ice._send

    async def send(data: bytes) -> None:
        if keep(data):
            await original_send(data)

    ice._send = send


def sever(pc: RTCPeerConnection) -> None:
    """Close ``pc``'s sockets without a word to the peer: a client that vanished (tests)."""
    for conn in ice_connections(pc):
        for protocol in conn._protocols:
            protocol.transport.close()


def guard_late_start(pc: RTCPeerConnection) -> None:
    """Keep aiortc from starting transports, senders or receivers of a closed connection.

    aiortc connects in a task of its own (``__connect``) that is not cancelled by ``close()``.
    If the connection is closed while that task is between two transceivers, it goes on to
    start senders whose RTP/RTCP tasks nobody will ever stop (a leak per early leave), or fails
    with an unretrieved ``InvalidStateError``. Every start first checks whether ``pc`` is
    closed (``signalingState`` turns "closed" as ``close()`` begins).
    """

    def closed() -> bool:
        return pc.signalingState == "closed"

    def guard(obj: Any, name: str) -> None:
        original = getattr(obj, name)

        async def start(*args: Any, **kwargs: Any) -> None:
            if not closed():
                await original(*args, **kwargs)

        setattr(obj, name, start)

    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        guard(transceiver.sender, "send")
        guard(transceiver.receiver, "receive")
        dtls = transceiver.receiver.transport
        if id(dtls) not in seen:
            seen.add(id(dtls))
            guard(dtls, "start")
            guard(dtls.transport, "start")
