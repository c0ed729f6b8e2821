"""The network edge: how many connections a client address, and everyone together, may hold,
and how long a connection may take to say what it wants.

uvicorn closes idle keep-alive connections but has no deadline for a request's headers and no
cap per client address, so one address opening a thousand half-sent requests used up every file
descriptor and every endpoint stopped answering. :func:`edge_protocols` wraps uvicorn's
httptools HTTP protocol, and the WebSocket protocol a connection upgrades to, with:

- a **header deadline**: a request's line and headers must all arrive within
  ``AUDIO_ROOMS_HTTP_HEADER_TIMEOUT`` seconds of the connection opening (or of the request's
  first byte, on a kept-alive connection), and be at most ``..._HTTP_MAX_HEADER_BYTES``;
- an **idle deadline** while a request body arrives: ``..._HTTP_IDLE_TIMEOUT`` seconds without a
  byte and the connection is dropped (uvicorn applies the same to idle keep-alive connections);
- **caps**: connections open on the node, connections per client address, WebSockets per client
  address. A connection over a cap is answered at once with a short ``too_many_connections``
  response (503 for the node, 429 for the address) and closed, before the application sees it.

IPv6 clients are counted per /64, the block one subscriber usually gets. WebSockets stay open
while they answer pings (uvicorn's keepalive); a socket that never joins is closed by the room
WebSocket's own join deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from audio_rooms import addresses, errors
from audio_rooms.lean import ReceiveQueue, WriteGate
from audio_rooms.settings import Settings

logger = logging.getLogger(__name__)

# File descriptors the automatic connection cap leaves to everything else: media sockets,
# Redis, the database, log files.
AUTO_CAP_SHARE = 0.5


@dataclass
class ConnectionLimits:
    """Open connections by client address, and whether one more may come in."""

    total: int
    per_address: int
    websockets_per_address: int
    open: int = 0
    websockets: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    websockets_by_address: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    dropped: Counter[str] = field(default_factory=Counter)  # by reason
    # Reverse proxies: they carry many clients' connections, so only the node cap holds them;
    # the app counts each client by X-Forwarded-For instead.
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            total=connection_cap(settings),
            per_address=settings.max_connections_per_address,
            websockets_per_address=settings.max_websockets_per_address,
            proxies=tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies),
        )

    def is_proxy(self, transport: asyncio.BaseTransport) -> bool:
        """Whether the connection comes from one of the trusted reverse proxies."""
        if not self.proxies:
            return False
        peer = get_remote_addr(transport)  # type: ignore[arg-type]
        try:
            ip = ipaddress.ip_address(peer[0]) if peer is not None else None
        except ValueError:
            return False
        return ip is not None and any(ip in network for network in self.proxies)

    def admit(self, address: str, proxy: bool = False) -> str | None:
        """Count a new connection in, or return why it is refused: ``node`` or ``address``."""
        if self.open >= self.total:
            reason = "node"
        elif self.by_address[address] >= self.per_address and not proxy:
            reason = "address"
        else:
            self.open += 1
            self.by_address[address] += 1
            return None
        self.refused[reason] += 1
        return reason

    def release(self, address: str) -> None:
        self.open -= 1
        _decrement(self.by_address, address)

    def admit_websocket(self, address: str, proxy: bool = False) -> bool:
        if self.websockets_by_address[address] >= self.websockets_per_address and not proxy:
            self.refused["websocket_address"] += 1
            return False
        self.websockets += 1
        self.websockets_by_address[address] += 1
        return True

    def release_websocket(self, address: str) -> None:
        self.websockets -= 1
        _decrement(self.websockets_by_address, address)


def _decrement(counter: Counter[str], key: str) -> None:
    # Keys of gone clients are deleted: the counters stay as large as what is open now.
    if counter[key] <= 1:
        del counter[key]
    else:
        counter[key] -= 1


def client_key(transport: asyncio.BaseTransport) -> str:
    """The address a client is counted under (see :mod:`audio_rooms.addresses`)."""
    peer = get_remote_addr(transport)  # type: ignore[arg-type]
    return addresses.client_key(peer[0] if peer is not None else None)


def connection_cap(settings: Settings) -> int:
    """``AUDIO_ROOMS_MAX_CONNECTIONS``, or half the open-files limit when it is unset."""
    if settings.max_connections is not None:
        return settings.max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, int(soft * AUTO_CAP_SHARE))


def raise_fd_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit; return the soft limit.

    Every connection and every media port is a file descriptor, and the usual soft limit of
    1,024 is what an attacker exhausted first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-files limit from %d: %s", soft, exc)
    return soft


def _refusal(status: int, message: str) -> bytes:
    body = json.dumps(errors.TooManyConnections(message).to_wire()).encode()
    reason = {429: "Too Many Requests", 503: "Service Unavailable"}[status]
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


REFUSALS = {
    "node": _refusal(503, "This server has no room for another connection; try again."),
    "address": _refusal(429, "Too many connections from your address."),
    "websocket_address": _refusal(429, "Too many room connections from your address."),
}


def edge_protocols(
    limits: ConnectionLimits, header_timeout: float, idle_timeout: float, max_header_bytes: int
) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's HTTP and WebSocket protocol classes, bound to these limits and deadlines."""

    class EdgeWebSocketProtocol(WebSocketsSansIOProtocol):
        """Hands the connection's place back when the WebSocket ends, and holds less memory
        per connection than uvicorn's own (docs/benchmarks.md, "memory per connection")."""

        _address: str | None = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Lean stand-ins for the asyncio.Queue and asyncio.Event made just now (audio_rooms/
            # lean.py): the same calls, without four empty deques per connection.
            self.queue = ReceiveQueue()  # type: ignore[assignment]
            self.writable = WriteGate()  # type: ignore[assignment]
            self.writable.set()

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.accept":
                # The handshake's request and response (their headers parsed into objects) are
                # not read again once accepted; the scope keeps the headers the app reads.
                self.request = None  # type: ignore[assignment]
                self.response = None  # type: ignore[assignment]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._address = client_key(transport)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self._address is not None:
                limits.release_websocket(self._address)
                limits.release(self._address)
                self._address = None

    class EdgeHttpProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.ws_protocol_class = EdgeWebSocketProtocol
            self._address: str | None = None  # set while this connection holds a place
            self._proxy = False  # from a trusted reverse proxy: no per-address caps
            self._deadline: asyncio.TimerHandle | None = None
            self._header_bytes: int | None = 0  # None once the headers are complete
            self._reading_body = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            address = client_key(transport)
            self._proxy = limits.is_proxy(transport)
            refused = limits.admit(address, self._proxy)
            if refused is not None:
                transport.write(REFUSALS[refused])  # type: ignore[attr-defined]
                transport.close()
                return
            self._address = address
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm(header_timeout, "headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._address is None:
                return  # refused at the door: uvicorn never knew it
            limits.release(self._address)
            self._address = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._address is None:
                return
            if self._header_bytes is not None:
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self._drop("header_size")
                    return
            super().data_received(data)
            if self._reading_body:
                self._arm(idle_timeout, "body")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_bytes is None:  # the next request on a kept-alive connection
                self._header_bytes = 0
                self._arm(header_timeout, "headers")

        def on_headers_complete(self) -> None:
            self._disarm()
            self._header_bytes = None
            super().on_headers_complete()
            if not (self.parser.should_upgrade() and self._should_upgrade()):
                self._reading_body = True
                self._arm(idle_timeout, "body")

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_body = False
            self._disarm()

        def handle_websocket_upgrade(self) -> None:
            address = self._address
            assert address is not None
            if not limits.admit_websocket(address, self._proxy):
                self.transport.write(REFUSALS["websocket_address"])
                self.transport.close()
                return
            self._disarm()
            # From here the WebSocket protocol owns the connection and gives its place back.
            self._address = None
            super().handle_websocket_upgrade()

        def _arm(self, seconds: float, phase: str) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._drop, phase)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _drop(self, phase: str) -> None:
            """Too slow (or too much) before the application could act: drop it, freeing the
            descriptor now rather than after a polite close the client would not read."""
            self._deadline = None
            if phase == "body" and self.flow.read_paused:
                # uvicorn stopped reading until the application takes what it has: the silence
                # is ours, not the client's.
                self._arm(idle_timeout, phase)
                return
            limits.dropped[phase] += 1
            self.transport.abort()

    return EdgeHttpProtocol, EdgeWebSocketProtocol
