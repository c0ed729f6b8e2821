"""The compatibility check: every private detail the hooks rely on, named, checked at start-up."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.trsock
import inspect
import re
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from pylibsrtp import Session as SrtpSession
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

from audio_rooms.sfu.errors import HookIncompatible
from audio_rooms.sfu.hooks.names import RECEIVER_STOP_DECODER
from audio_rooms.sfu.hooks.stun import (
    ORIGINAL_MESSAGE_INTEGRITY,
    ORIGINAL_PACK_ADDRESS,
    ORIGINAL_XOR_DATA,
)


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
        "view, 1)"
        in setup,
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
        "self.check_incoming(message, addr, protocol)"
        in _source(aioice.ice.Connection.request_received)
        and "check_message_integrity(" in _source(aioice.ice.Connection.request_received)
        and "self.check_start_task(pair)" in _source(aioice.ice.Connection.check_incoming)
        and "self.check_start_task(pair)" in _source(aioice.ice.Connection._check_periodic)
        and "State.WAITING" in _source(aioice.ice.Connection._check_periodic)
        and 'self.respond_error(message, addr, protocol, (401, "Unauthenticated"))'
        in _source(aioice.ice.Connection.request_received),
        "aioice Connection.check_incoming (authenticated requests only) / check_start_task"
        " / respond_error",
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
        hasattr(RTCRtpReceiver, RECEIVER_STOP_DECODER),
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
        in _source(ORIGINAL_XOR_DATA)
        and "ipaddress.ip_address(value[0])" in _source(ORIGINAL_PACK_ADDRESS),
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
        hasattr(asyncio.BaseEventLoop, "_add_reader")
        or hasattr(asyncio.selector_events.BaseSelectorEventLoop, "_add_reader"),
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
        in _source(ORIGINAL_MESSAGE_INTEGRITY),
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
