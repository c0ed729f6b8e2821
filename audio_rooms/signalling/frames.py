"""Encode a message once, write the same WebSocket frame to every connection.

A room delta goes to every participant unchanged, and server-to-client frames are not masked,
so its frame bytes are the same for everyone. Writing those bytes straight to each connection's
transport costs a few microseconds, where the ASGI path (Starlette, uvicorn, websockets: state
checks, frame building, a drain per message) costs tens: for 1,000 listeners that is the
difference between a role change reaching everyone in a few milliseconds or in a tenth of a
second. See docs/benchmarks.md.

This reaches into uvicorn's sans-I/O ``websockets`` protocol (what ``uvicorn[standard]`` picks
by default), so it is confined to this module, used only when the connection is exactly that
protocol, open, with no extension negotiated (the server turns permessage-deflate off), and
covered by tests/signalling/test_frames.py, which fails if an upgrade takes the fast path away.
Anything else falls back to the ordinary ASGI send.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import socket
import struct
import sys
import termios
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from audio_rooms.state.store import Published

logger = logging.getLogger(__name__)

SCOPE_KEY = "audio_rooms.ws_protocol"

_UVICORN_WEBSOCKETS = "uvicorn.protocols.websockets.websockets_sansio_impl"
# The protocol's attributes this module reads; if one goes missing, the fast path is off.
_NEEDED = ("transport", "conn", "handshake_complete", "close_sent", "disconnected")
_OPCODE_TEXT = 0x81  # FIN + text
_OPCODE_BINARY = 0x82  # FIN + binary
# Linux's ioctl for the bytes a TCP socket has not had acknowledged yet (SIOCOUTQ).
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)
# Linux's ioctl for the bytes a TCP socket has not even sent yet (SIOCOUTQNSD): unlike the
# above, not inflated by the bytes in flight on a long round trip.
_OUTQNSD: int | None = 0x894B if sys.platform.startswith("linux") else None


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455 5.2), as a server sends it."""
    return _frame(_OPCODE_TEXT, payload)


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented binary frame, as a server sends it."""
    return _frame(_OPCODE_BINARY, payload)


def _frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", opcode, 126, length)
    else:
        header = struct.pack("!BBQ", opcode, 127, length)
    return header + payload


class ExposeProtocol:
    """ASGI middleware: records the server's protocol object of a WebSocket in its scope.

    Starlette wraps ``send`` in closures further in; here, outermost, it is still uvicorn's
    bound method, whose ``__self__`` is the protocol that owns the transport.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SCOPE_KEY] = getattr(send, "__self__", None)
        await self.app(scope, receive, send)


def frames_of(published: Published) -> list[bytes]:
    """A published message's events as text frames, built once for all recipients."""
    cached: list[bytes] | None = published.__dict__.get("_frames")
    if cached is None:
        cached = [text_frame(text.encode()) for _, text in published.wire]
        published.__dict__["_frames"] = cached
    return cached


class FrameWriter:
    """Writes whole frames to one connection's transport, in the event loop's thread, and
    says how far the client lags behind them.

    A client that stops reading first fills the kernel's send queue (which Linux grows to
    megabytes on its own), then the transport's buffer. Counting only the latter let a client
    sit megabytes behind unnoticed, so :meth:`attach` caps the kernel's share at half the
    bound and :meth:`backlog_over` counts both.
    """

    def __init__(self, protocol: Any, transport: asyncio.WriteTransport, fd: int | None,
                 kernel_cap: int | None) -> None:
        self._protocol = protocol
        self._transport = transport
        self._fd = fd  # the socket, for asking the kernel what it still holds (None: cannot)
        self._kernel_cap = kernel_cap  # most the kernel may hold for this socket (None: unknown)

    @classmethod
    def attach(cls, websocket: WebSocket, send_buffer_bytes: int) -> FrameWriter | None:
        """A writer for this accepted WebSocket, or None where only the ASGI path is safe."""
        protocol = websocket.scope.get(SCOPE_KEY)
        # The server runs a subclass of uvicorn's (edge.py, for connection caps).
        if protocol is None or not any(
            cls.__module__ == _UVICORN_WEBSOCKETS for cls in type(protocol).__mro__
        ):
            return None
        if not all(hasattr(protocol, name) for name in _NEEDED):
            return None
        transport = protocol.transport
        # Duck-typed: uvloop's transports (what uvicorn runs on) are not asyncio subclasses.
        if not all(
            callable(getattr(transport, m, None))
            for m in ("write", "is_closing", "get_write_buffer_size", "abort")
        ):
            return None
        if getattr(protocol.conn, "extensions", None):
            return None  # a negotiated extension (compression) changes the frames
        fd, kernel_cap = _cap_kernel_buffer(transport, send_buffer_bytes)
        return cls(protocol, transport, fd, kernel_cap)

    @property
    def open(self) -> bool:
        p = self._protocol
        return bool(
            p.handshake_complete
            and not p.close_sent
            and not p.disconnected
            and not self._transport.is_closing()
        )

    def write(self, frame: bytes) -> None:
        self._transport.write(frame)

    def abort(self) -> None:
        """Drop the connection and everything still buffered for it, at once."""
        if not self._protocol.disconnected:
            self._transport.abort()

    def backlog_over(self, limit: int) -> int | None:
        """The bytes written for this client that it has not taken yet (the transport's buffer
        plus the kernel's send queue), when they are more than ``limit``; else None.

        Cheap on the fan-out path: while the transport's buffer is empty the kernel holds at
        most its capped buffer, under ``limit``, and the kernel is not asked.
        """
        buffered = int(self._transport.get_write_buffer_size())
        if buffered > limit:
            return buffered
        if buffered == 0 and self._kernel_cap is not None and self._kernel_cap <= limit:
            return None
        total = buffered + self._kernel_queued()
        return total if total > limit else None

    def unsent(self) -> int:
        """The bytes written for this client that have not left this machine yet (the
        transport's buffer and the kernel's unsent queue): how far a stream lags behind the
        live edge, whatever the round trip."""
        return int(self._transport.get_write_buffer_size()) + self._kernel_queued(_OUTQNSD)

    def _kernel_queued(self, request: int | None = _OUTQ) -> int:
        if self._fd is None or request is None:
            return 0
        out = array.array("i", [0])
        try:
            fcntl.ioctl(self._fd, request, out, True)
        except OSError:
            return 0
        return out[0]


def _cap_kernel_buffer(transport: Any, send_buffer_bytes: int) -> tuple[int | None, int | None]:
    """Cap the socket's kernel send buffer at half ``send_buffer_bytes``: its file descriptor
    and the cap the kernel granted, or Nones where the socket cannot be reached.

    Linux doubles the value asked for (for its bookkeeping) and reports the doubled size, so a
    quarter is asked; it also stops growing the buffer by itself once one is set.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None, None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes // 4)
        granted = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        return int(sock.fileno()), granted
    except (OSError, AttributeError) as exc:
        logger.debug("could not cap a WebSocket's send buffer: %s", exc)
        return None, None
