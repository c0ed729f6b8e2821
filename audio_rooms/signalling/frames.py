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

import asyncio
import struct
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from audio_rooms.state.store import Published

SCOPE_KEY = "audio_rooms.ws_protocol"

_UVICORN_WEBSOCKETS = "uvicorn.protocols.websockets.websockets_sansio_impl"
# The protocol's attributes this module reads; if one goes missing, the fast path is off.
_NEEDED = ("transport", "conn", "handshake_complete", "close_sent", "disconnected")
_OPCODE_TEXT = 0x81  # FIN + text


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455 5.2), as a server sends it."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", _OPCODE_TEXT, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", _OPCODE_TEXT, 126, length)
    else:
        header = struct.pack("!BBQ", _OPCODE_TEXT, 127, length)
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
    """Writes whole frames to one connection's transport, in the event loop's thread."""

    def __init__(self, protocol: Any, transport: asyncio.WriteTransport) -> None:
        self._protocol = protocol
        self._transport = transport

    @classmethod
    def attach(cls, websocket: WebSocket) -> FrameWriter | None:
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
            for m in ("write", "is_closing", "get_write_buffer_size")
        ):
            return None
        if getattr(protocol.conn, "extensions", None):
            return None  # a negotiated extension (compression) changes the frames
        return cls(protocol, transport)

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

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel: how far this client lags."""
        return int(self._transport.get_write_buffer_size())
