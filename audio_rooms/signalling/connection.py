"""One participant's WebSocket: non-blocking sends, and an inbound budget.

Fan-out never awaits a client. On uvicorn's websockets protocol each message is one encoded
frame written to the socket's transport (signalling/frames.py), shared by every recipient;
elsewhere messages go into a queue that a per-connection writer task drains. Either way one
slow or stalled phone cannot hold back anyone else's deltas: once more than
``AUDIO_ROOMS_WS_SEND_BUFFER_BYTES`` wait for a client (in the kernel and the transport, or in
its queue) it is closed with TOO_SLOW, stops costing the room anything, and may resume within
the grace period, getting a fresh snapshot. A client that does not even read the close within
:data:`CLOSE_TIMEOUT` is cut off, so what it left unread is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from enum import IntEnum
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from audio_rooms.domain.events import Audience
from audio_rooms.domain.roles import Role
from audio_rooms.signalling.frames import FrameWriter, frames_of, text_frame
from audio_rooms.signalling.outbound import ServerMessage
from audio_rooms.state.store import Published

logger = logging.getLogger(__name__)

SEND_BUFFER_BYTES = 1 << 20  # the default of AUDIO_ROOMS_WS_SEND_BUFFER_BYTES
# Seconds a closing socket has to take its close frame (after what was buffered before it);
# then the connection is aborted and its buffers freed.
CLOSE_TIMEOUT = 10.0


class CloseCode(IntEnum):
    """WebSocket close codes; docs/protocol.md lists them and whether to reconnect."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server draining: reconnect
    BAD_FRAMES = 4000  # kept sending binary or oversized frames (ws_bad_frames_limit)
    NOT_AUTHENTICATED = 4001
    NOT_ALLOWED = 4003  # banned, not admitted by visibility, room full
    ROOM_NOT_FOUND = 4004
    TOO_SLOW = 4008  # fell too far behind; reconnect to get a fresh snapshot
    REPLACED = 4009  # the same user connected again elsewhere
    ROOM_ENDED = 4010
    REMOVED = 4011


# The closes after which a client must not reconnect, by the name the client shows them under
# (docs/protocol.md's table; served in /api/config so clients need not copy it).
TERMINAL_CLOSE_CODES: dict[CloseCode, str] = {
    CloseCode.NOT_AUTHENTICATED: "not_authenticated",
    CloseCode.NOT_ALLOWED: "not_allowed_in",
    CloseCode.ROOM_NOT_FOUND: "room_not_found",
    # Another tab or device of the same user took over; reconnecting would take it back and the
    # two would evict each other in a loop.
    CloseCode.REPLACED: "replaced",
    CloseCode.ROOM_ENDED: "room_ended",
    CloseCode.REMOVED: "removed",
}


class TokenBucket:
    """Inbound message budget: ``rate`` per second with bursts up to ``burst``."""

    __slots__ = ("burst", "rate", "tokens", "updated")  # one per connection: no dict each

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Strikes:
    """Offences within a sliding window: more than ``limit`` in ``window`` seconds is too many."""

    __slots__ = ("_times", "limit", "window")  # one per connection: no dict each

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] | None = None  # made at the first offence: most never offend

    def add(self) -> bool:
        """Record one offence; True when it is one too many."""
        now = time.monotonic()
        if self._times is None:
            self._times = deque()
        self._times.append(now)
        while self._times[0] < now - self.window:
            self._times.popleft()
        return len(self._times) > self.limit


class Connection:
    def __init__(self, websocket: WebSocket, room_id: str, user_id: str, role: Role,
                 send_buffer_bytes: int = SEND_BUFFER_BYTES) -> None:
        self.websocket = websocket
        self.room_id = room_id
        self.user_id = user_id
        self.role = role
        self.version = 0  # deltas at or below this version are already in the client's snapshot
        self.send_buffer_bytes = send_buffer_bytes
        self._frames = FrameWriter.attach(websocket, send_buffer_bytes)
        # The ASGI path only: texts for the writer task, and their size in bytes (roughly:
        # characters) for the bound. None is the sentinel that ends the writer.
        self._outbox: deque[str | None] | None = None  # made by start(), if it is needed
        self._queued = 0
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._close_code: int | None = None
        self._ready = False
        self._pending: list[Published] = []
        self.needs_snapshot = False  # the role changed what this client may see

    def __repr__(self) -> str:
        return f"Connection(room={self.room_id} user={self.user_id})"

    def start(self) -> None:
        if self._frames is None:
            self._outbox = deque()
            self._wake = asyncio.Event()
            self._writer = asyncio.create_task(self._write(), name=f"ws-writer {self!r}")

    @property
    def shares_frames(self) -> bool:
        """Whether messages go out as shared encoded frames (the fast path)."""
        return self._frames is not None

    @property
    def close_code(self) -> int | None:
        """Why the server closed this connection (None while it has not)."""
        return self._close_code

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    @property
    def closed_for_good(self) -> bool:
        """Closed because the participant is no longer in the room (no grace period applies)."""
        return self._close_code in (CloseCode.ROOM_ENDED, CloseCode.REMOVED, CloseCode.NORMAL)

    def send(self, message: ServerMessage) -> None:
        self.send_text(json.dumps(message.wire(), ensure_ascii=False, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        if self._frames is not None:
            self.send_frame(text_frame(text.encode()))
            return
        if self.closing or self._outbox is None:
            return
        if self._queued > self.send_buffer_bytes:
            logger.warning("%r fell %d bytes behind; closing", self, self._queued)
            self.close(CloseCode.TOO_SLOW)
            return
        self._outbox.append(text)
        self._queued += len(text)
        if self._wake is not None:
            self._wake.set()

    def send_frame(self, frame: bytes) -> None:
        """Write one encoded text frame (the frame path only)."""
        assert self._frames is not None
        if self.closing:
            return
        if not self._frames.open:
            self._close_code = CloseCode.NORMAL  # the client is gone; nothing more to send
            return
        behind = self._frames.backlog_over(self.send_buffer_bytes)
        if behind is not None:
            logger.warning("%r fell %d bytes behind; closing", self, behind)
            self.close(CloseCode.TOO_SLOW)
            return
        self._frames.write(frame)

    def close(self, code: int) -> None:
        """Send what is queued, then close with ``code``."""
        if self._close_code is not None:
            return
        self._close_code = code
        if self._frames is not None:
            self._writer = asyncio.create_task(self._close_socket(), name=f"ws-close {self!r}")
            # The close goes out behind whatever is buffered, and the server would keep a
            # socket that never takes it (and that buffer) for as long as the peer stays up.
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._frames.abort)
            return
        if self._outbox is None:  # never started: nothing to send first
            self._writer = asyncio.create_task(self._close_socket(), name=f"ws-close {self!r}")
            return
        if code == CloseCode.TOO_SLOW:
            self._outbox.clear()  # what the client is not reading: close without it
            self._queued = 0
            if self._writer is not None:
                self._writer.cancel()  # it may be stuck sending to a socket nobody reads
        self._outbox.append(None)
        if self._wake is not None:
            self._wake.set()

    async def wait_closed(self) -> None:
        if self._writer:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write(self) -> None:
        assert self._wake is not None and self._outbox is not None
        try:
            while True:
                while not self._outbox:
                    self._wake.clear()
                    await self._wake.wait()
                text = self._outbox.popleft()
                if text is None:
                    break
                self._queued -= len(text)
                await self.websocket.send_text(text)
        except (OSError, RuntimeError, WebSocketDisconnect):
            logger.debug("%r: send failed, client gone", self)
        finally:
            await self._close_socket()

    async def _close_socket(self) -> None:
        """Close with the code; a client that will not take even that within
        :data:`CLOSE_TIMEOUT` (it stopped reading) is cut off. The close waits behind what was
        already buffered, and the server's own close timer would wait for that buffer forever.
        """
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                    await self.websocket.close(self._close_code or CloseCode.NORMAL)
        except TimeoutError:
            logger.info("%r did not take its close in %.0f s; cutting it off", self,
                        CLOSE_TIMEOUT)
            if self._frames is not None:
                self._frames.abort()

    # --- room deltas ---------------------------------------------------------------------------

    def ready(self, version: int) -> None:
        """The snapshot at ``version`` was sent: deliver newer deltas, including those that
        arrived while the snapshot was being read."""
        self.version = version
        self._ready = True
        pending, self._pending = self._pending, []
        for published in pending:
            self.deliver(published)

    def deliver(self, published: Published) -> None:
        if not self._ready:
            self._pending.append(published)
            return
        if published.version < self.version or (
            published.version == self.version and published.changed
        ):
            return
        self.version = published.version
        frames = frames_of(published) if self._frames is not None else None
        for i, (event, text) in enumerate(published.wire):
            if event.subject == self.user_id:
                self._track_self(event.type, event.data)
            if (
                event.audience is Audience.ALL
                or self.role.moderates
                or event.subject == self.user_id
            ):
                if frames is not None:
                    self.send_frame(frames[i])
                else:
                    self.send_text(text)
        if self.closing:
            return
        for event, _ in published.wire:
            if event.type == "room_ended":
                self.close(CloseCode.ROOM_ENDED)
            elif event.subject == self.user_id and event.type == "participant_removed":
                self.close(CloseCode.REMOVED)
            elif event.subject == self.user_id and event.type == "participant_left":
                self.close(CloseCode.NORMAL)

    def _track_self(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "role_changed":
            role = Role(data["role"])
            if role.moderates and not self.role.moderates:
                # Moderators see the hand queue and invitations, which were hidden until now.
                self.needs_snapshot = True
            self.role = role

    def hold(self) -> None:
        """Queue deltas until :meth:`ready` (a fresh snapshot is being read)."""
        self._ready = False
