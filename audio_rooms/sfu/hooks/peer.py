"""A whole peer connection: where its datagrams can be watched or dropped, and guards on its start.

The taps and faults built on these (for tests and load clients) are in
:mod:`audio_rooms.sfu.testing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from audio_rooms.sfu.hooks.ice import ice_connections

RtpData = Callable[[bytes, int], Coroutine[Any, Any, None]]
"""aiortc's handler of a decrypted RTP packet and its arrival time in ms."""
RtcpData = Callable[[bytes], Coroutine[Any, Any, None]]
"""aiortc's handler of a decrypted RTCP datagram."""
Send = Callable[[bytes], Coroutine[Any, Any, None]]
"""aioice's send of one datagram on the selected pair."""


def wrap_rtp_data(dtls: RTCDtlsTransport, wrap: Callable[[RtpData], RtpData]) -> None:
    """Replace ``dtls``'s handler of decrypted RTP with ``wrap(handler)``."""
    dtls._handle_rtp_data = wrap(dtls._handle_rtp_data)  # type: ignore[method-assign,assignment]


def wrap_rtcp_data(dtls: RTCDtlsTransport, wrap: Callable[[RtcpData], RtcpData]) -> None:
    """Replace ``dtls``'s handler of decrypted RTCP with ``wrap(handler)``."""
    dtls._handle_rtcp_data = wrap(dtls._handle_rtcp_data)  # type: ignore[method-assign,assignment]


def wrap_send(dtls: RTCDtlsTransport, wrap: Callable[[Send], Send]) -> None:
    """Replace how ``dtls``'s ICE transport sends a datagram with ``wrap(send)``."""
    ice = dtls.transport
    ice._send = wrap(ice._send)  # type: ignore[assignment]


def udp_transports(pc: RTCPeerConnection) -> list[asyncio.BaseTransport]:
    """The asyncio transports of every local candidate of ``pc``'s ICE connections."""
    return [
        protocol.transport for conn in ice_connections(pc) for protocol in conn._protocols
    ]


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
