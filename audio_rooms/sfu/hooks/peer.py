"""A whole peer connection: taps and faults for tests and load clients, guards on its start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from audio_rooms.sfu.hooks.ice import ice_connections


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
