"""The listen WebSocket at ``/ws/rooms/{room_id}/listen``: a room's audio where UDP is blocked.

A participant whose browser gets no WebRTC media (UDP blocked or throttled) opens this socket
on the page's own origin, beside the room WebSocket it joined with, and receives the Opus
packets of the speakers a WebRTC listener's slots would carry, unmodified, one binary message
per packet (listen_frames.py). The server never decodes them.

The SFU hands each forwarded packet to a tap after its permission check, so a mute or a
demotion stops this path at the same packet as WebRTC. A :class:`ListenRelay` per room on this
node is that tap: it builds each packet's WebSocket frame once, gathers the frames of
``listen_batch_interval`` (40 ms: two packets of one speaker, six of three) and writes them to
every listening socket as one ``write``, so a socket costs a system call per batch rather than
per packet (still one WebSocket message per packet). A socket holding more than
``listen_max_lag`` seconds of audio not yet sent is skipped (frames dropped for it, counted)
rather than buffered, and one that stays behind for ``listen_stall_timeout`` is closed with
4008. The relay exists only while someone listens: with no relay, the SFU taps nothing.

What the client may send: ``listen`` first (with its token, or relying on the session cookie),
then ``ping`` at most. Frames are size- and rate-limited; unreadable ones are strikes, and too
many close the socket (4000), as on the room socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from audio_rooms import errors
from audio_rooms.logs import room_id_var, user_id_var
from audio_rooms.signalling import listen_frames
from audio_rooms.signalling import outbound as out
from audio_rooms.signalling.connection import CLOSE_TIMEOUT, CloseCode, Strikes, TokenBucket
from audio_rooms.signalling.frames import FrameWriter, binary_frame, text_frame
from audio_rooms.state.store import Published

if TYPE_CHECKING:
    from audio_rooms.services import Services
    from audio_rooms.signalling.media import FindConnection, RoomMedia

logger = logging.getLogger(__name__)

LISTEN_TIMEOUT = 15.0  # seconds to send ``listen`` after connecting
MAX_INBOUND_BYTES = 4096  # a listen message carries a token (at most 2 KiB); pings are tiny
INBOUND_PER_SECOND = 1.0
INBOUND_BURST = 5
# Kernel and transport buffer asked for a listen socket (FrameWriter caps the kernel at half):
# a few seconds of audio, so that a lag is seen as unsent bytes instead of hiding in the kernel.
SEND_BUFFER_BYTES = 64 * 1024
MIN_LAG_BYTES = 2048  # never skip for less than this: a frame or two in a quiet room
RATE_WINDOW = 1.0  # seconds over which a room's bytes per second are measured
WATCH_INTERVAL = 1.0  # seconds between checks that listeners' room sockets are still there


class ListenCounters:
    """What this node's listen sockets were sent and not sent (read by /metrics)."""

    def __init__(self) -> None:
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0  # skipped for sockets too far behind
        self.closed_slow = 0


class Listener:
    """One listening socket: writes what it can keep up with, skips what it cannot."""

    def __init__(self, websocket: WebSocket, room_id: str, user_id: str,
                 counters: ListenCounters, stall_timeout: float) -> None:
        self.websocket = websocket
        self.room_id = room_id
        self.user_id = user_id
        self._counters = counters
        self._stall_timeout = stall_timeout
        self._frames = FrameWriter.attach(websocket, SEND_BUFFER_BYTES)
        # The ASGI path only (no shared frames): payloads waiting for the writer task.
        self._queue: deque[bytes | str] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._behind_since: float | None = None
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.dropped = 0

    def __repr__(self) -> str:
        return f"Listener(room={self.room_id} user={self.user_id})"

    @property
    def path(self) -> str:
        return "frames" if self._frames is not None else "asgi"

    def start(self) -> None:
        if self._frames is None:
            self._writer = asyncio.create_task(self._write(), name=f"listen-writer {self!r}")

    def send_text(self, text: str) -> None:
        if self.close_code is not None:
            return
        if self._frames is not None:
            self._frames.write(text_frame(text.encode()))
            return
        self._queue.append(text)
        self._wake.set()

    def offer(self, frames: bytes, payloads: list[bytes], limit: int, now: float) -> None:
        """Send a batch of audio frames (``frames``: their WebSocket frames back to back;
        ``payloads``: each one's message), or skip it if more than ``limit`` bytes are still
        unsent."""
        if self.close_code is not None:
            return
        counters = self._counters
        if self._frames is not None:
            if not self._frames.open:
                self.close(CloseCode.NORMAL)
                return
            behind = self._frames.unsent()
        else:
            behind = self._queued
        if behind > limit:
            self.dropped += len(payloads)
            counters.frames_dropped += len(payloads)
            if self._behind_since is None:
                self._behind_since = now
            elif now - self._behind_since > self._stall_timeout:
                logger.info("%r stayed %d bytes behind for %.0f s; closing", self, behind,
                            now - self._behind_since)
                counters.closed_slow += 1
                self.close(CloseCode.TOO_SLOW)
            return
        self._behind_since = None
        counters.frames_sent += len(payloads)
        if self._frames is not None:
            counters.bytes_sent += len(frames)
            self._frames.write(frames)
        else:
            for payload in payloads:
                counters.bytes_sent += len(payload)
                self._queue.append(payload)
                self._queued += len(payload)
            self._wake.set()

    def close(self, code: int) -> None:
        if self.close_code is not None:
            return
        self.close_code = code
        self._queue.clear()
        self._queued = 0
        if self._writer is not None:
            self._writer.cancel()
        self._writer = asyncio.create_task(self._close_socket(), name=f"listen-close {self!r}")

    async def wait_closed(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write(self) -> None:
        try:
            while True:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                item = self._queue.popleft()
                if isinstance(item, str):
                    await self.websocket.send_text(item)
                else:
                    self._queued -= len(item)
                    await self.websocket.send_bytes(item)
        except (OSError, RuntimeError, WebSocketDisconnect):
            self.close(CloseCode.NORMAL)

    async def _close_socket(self) -> None:
        try:
            if self.websocket.application_state is not WebSocketState.CONNECTED:
                return
            async with asyncio.timeout(CLOSE_TIMEOUT):
                with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                    await self.websocket.close(self.close_code or CloseCode.NORMAL)
        except TimeoutError:
            if self._frames is not None:
                self._frames.abort()
        finally:
            self.closed.set()


class ListenRelay:
    """A room's listen sockets on this node, and the tap that feeds them."""

    def __init__(self, room_id: str, max_lag: float, batch_interval: float) -> None:
        self.room_id = room_id
        self.listeners: dict[str, Listener] = {}
        self._max_lag = max_lag
        self._batch_interval = batch_interval
        self._loop = asyncio.get_running_loop()
        # Frames tapped since the last flush, with and without their WebSocket headers.
        self._frames: list[bytes] = []
        self._payloads: list[bytes] = []
        self._flush: asyncio.Handle | None = None
        self._speakers: dict[str, int] = {}  # speaker id -> the number in their frames
        self._next_number = 0
        self._window_start = time.monotonic()
        self._window_bytes = 0
        self._rate = 0.0  # bytes per second of this room's frames, over the last window

    def __repr__(self) -> str:
        return f"ListenRelay({self.room_id}, {len(self.listeners)} listeners)"

    def __call__(self, speaker: str, seq: int, timestamp: int, payload: bytes,
                 level: int) -> None:
        """The router's tap: one packet of a relayed speaker, after the permission check."""
        number = self._speakers.get(speaker)
        if number is None:
            number = self._speakers[speaker] = self._next_number
            self._next_number = (self._next_number + 1) & 0xFF
        data = listen_frames.encode(number, seq, timestamp, level, payload)
        self._frames.append(binary_frame(data))  # once, whoever receives it
        self._payloads.append(data)
        if self._flush is None:
            self._flush = (
                self._loop.call_later(self._batch_interval, self.flush)
                if self._batch_interval > 0
                else self._loop.call_soon(self.flush)  # what one loop iteration brought
            )

    def flush(self) -> None:
        """Write the frames gathered since the last flush to every listener, in one piece."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        payloads = self._payloads
        if not payloads:
            return
        frames = self._frames[0] if len(self._frames) == 1 else b"".join(self._frames)
        self._frames, self._payloads = [], []
        now = time.monotonic()
        self._window_bytes += len(frames)
        if now - self._window_start >= RATE_WINDOW:
            self._rate = self._window_bytes / (now - self._window_start)
            self._window_start = now
            self._window_bytes = 0
        limit = max(MIN_LAG_BYTES, int(self._rate * self._max_lag))
        for listener in list(self.listeners.values()):
            listener.offer(frames, payloads, limit, now)

    def close(self) -> None:
        """Stop: what is gathered and not yet written is dropped (nobody is left to hear it)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._frames, self._payloads = [], []


class ListenRelays:
    """Every room's relay on this node, made with the room's first listener and dropped (its
    tap removed) with the last.

    A listen socket lives beside its user's room WebSocket on this node: it is closed when
    that one ends for good (the room socket's end calls :meth:`close_user`), and when it has
    been gone for longer than the grace period in which a dropped client may resume.
    """

    def __init__(self, room_media: RoomMedia, connection: FindConnection, max_lag: float,
                 stall_timeout: float, grace_period: float, batch_interval: float) -> None:
        self.counters = ListenCounters()
        self.stall_timeout = stall_timeout
        self._room_media = room_media
        self._connection = connection
        self._max_lag = max_lag
        self._batch_interval = batch_interval
        self._grace_period = grace_period
        self._relays: dict[str, ListenRelay] = {}
        self._missing: dict[Listener, float] = {}  # listeners whose room socket is gone, since
        self._watch: asyncio.Task[None] | None = None

    def in_room(self, room_id: str, user_id: str) -> bool:
        """Whether the user's room WebSocket is connected to this node."""
        return self._connection(room_id, user_id) is not None

    def listener_count(self) -> int:
        return sum(len(r.listeners) for r in self._relays.values())

    def attach(self, listener: Listener) -> None:
        """Start feeding ``listener``; one the same user had in the room is replaced (4009)."""
        relay = self._relays.get(listener.room_id)
        if relay is None:
            relay = ListenRelay(listener.room_id, self._max_lag, self._batch_interval)
            self._room_media.add_tap(listener.room_id, relay)
            self._relays[listener.room_id] = relay
        old = relay.listeners.get(listener.user_id)
        if old is not None:
            old.close(CloseCode.REPLACED)
        relay.listeners[listener.user_id] = listener
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_rooms(), name="listen-watch")

    async def _watch_rooms(self) -> None:
        """Close the listen sockets whose room socket has been gone past the grace period."""
        try:
            while self._relays:
                await asyncio.sleep(WATCH_INTERVAL)
                now = time.monotonic()
                for relay in list(self._relays.values()):
                    for listener in list(relay.listeners.values()):
                        if self.in_room(relay.room_id, listener.user_id):
                            self._missing.pop(listener, None)
                        elif now - self._missing.setdefault(listener, now) > self._grace_period:
                            listener.close(CloseCode.NORMAL)
                self._missing = {
                    listener: since for listener, since in self._missing.items()
                    if listener.close_code is None
                }
        finally:
            self._watch = None

    def detach(self, listener: Listener) -> None:
        relay = self._relays.get(listener.room_id)
        if relay is None or relay.listeners.get(listener.user_id) is not listener:
            return
        del relay.listeners[listener.user_id]
        if not relay.listeners:
            del self._relays[listener.room_id]
            self._room_media.remove_tap(listener.room_id, relay)
            relay.close()

    def close_user(self, room_id: str, user_id: str, code: int) -> None:
        relay = self._relays.get(room_id)
        listener = relay.listeners.get(user_id) if relay is not None else None
        if listener is not None:
            listener.close(code)

    def close_all(self, code: int) -> None:
        for relay in list(self._relays.values()):
            for listener in list(relay.listeners.values()):
                listener.close(code)
        if self._watch is not None:
            self._watch.cancel()

    async def on_published(self, published: Published) -> None:
        """Whoever leaves the room, is removed, or sees it end stops listening at once."""
        relay = self._relays.get(published.room_id)
        if relay is None:
            return
        for event in published.events:
            if event.type == "room_ended":
                for listener in list(relay.listeners.values()):
                    listener.close(CloseCode.ROOM_ENDED)
            elif event.type == "participant_removed" and event.subject is not None:
                self.close_user(published.room_id, event.subject, CloseCode.REMOVED)
            elif event.type == "participant_left" and event.subject is not None:
                self.close_user(published.room_id, event.subject, CloseCode.NORMAL)


_REFUSAL_CODES: dict[type[errors.AudioRoomsError], CloseCode] = {
    errors.NotAuthenticated: CloseCode.NOT_AUTHENTICATED,
    errors.RoomNotFound: CloseCode.ROOM_NOT_FOUND,
    errors.RoomEnded: CloseCode.ROOM_ENDED,
    errors.NotInRoom: CloseCode.NOT_ALLOWED,
}


async def listen_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    room_id = websocket.path_params["room_id"][:64]
    room_id_var.set(room_id)
    await websocket.accept()
    relays = services.listen
    if services.hub.draining or relays is None:
        error = (errors.Draining("The server is restarting.") if services.hub.draining
                 else errors.ServiceUnavailable("This server relays no media."))
        await _refuse(websocket, error, CloseCode.GOING_AWAY)
        return
    budget = TokenBucket(INBOUND_PER_SECOND, INBOUND_BURST)
    strikes = Strikes(services.settings.ws_bad_frames_limit,
                      services.settings.ws_bad_frames_window)
    try:
        user_id = await _admit(services, websocket, room_id, strikes)
    except errors.AudioRoomsError as exc:
        code = _REFUSAL_CODES.get(type(exc), CloseCode.NOT_ALLOWED)
        if isinstance(exc, errors.RoomNotLive | errors.ServiceUnavailable):
            code = CloseCode.GOING_AWAY
        services.metrics.errors.labels(exc.code).inc()
        await _refuse(websocket, exc, code)
        return
    except WebSocketDisconnect:
        return
    if user_id is None:
        return
    user_id_var.set(user_id)
    listener = Listener(websocket, room_id, user_id, relays.counters, relays.stall_timeout)
    listener.start()
    try:
        relays.attach(listener)
    except errors.AudioRoomsError as exc:
        await _refuse(websocket, exc, CloseCode.GOING_AWAY)
        return
    logger.info("room %s: %s listens over the WebSocket (%s)", room_id, user_id, listener.path)
    listener.send_text(_dump({"type": "listening", "version": listen_frames.VERSION,
                              "slots": services.settings.media_slots}))
    try:
        await _serve(listener, budget, strikes)
    except WebSocketDisconnect:
        pass
    finally:
        relays.detach(listener)
        listener.close(listener.close_code or CloseCode.NORMAL)
        await listener.wait_closed()
        if listener.close_code is not None and listener.close_code != CloseCode.NORMAL:
            services.metrics.closes.labels(str(listener.close_code)).inc()
        logger.info("room %s: %s stopped listening (%d frames skipped)", room_id, user_id,
                    listener.dropped)


async def _admit(services: Services, websocket: WebSocket, room_id: str,
                 strikes: Strikes) -> str | None:
    """The user id of a participant of the room who sent ``listen``; None if they left."""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise errors.NotAuthenticated("No listen message.")
        try:
            message = await asyncio.wait_for(websocket.receive(), left)
        except TimeoutError:
            raise errors.NotAuthenticated("No listen message.") from None
        if message["type"] == "websocket.disconnect":
            return None
        parsed = _parse(message.get("text"))
        if isinstance(parsed, errors.AudioRoomsError):
            if strikes.add():
                raise parsed
            await websocket.send_text(_dump(out.Error.of(parsed, None).wire()))
            continue
        if parsed.get("type") != "listen":
            raise errors.NotAuthenticated("Send a listen message first.")
        token = parsed.get("token")
        if token is not None and not isinstance(token, str):
            raise errors.NotAuthenticated("That session token is not valid.")
        identity = await services.auth.identify(websocket, token)
        try:
            state = await services.rooms.live_state(room_id)
            me = state.get(identity.user_id) or await services.rooms.store.audience.listener(
                room_id, identity.user_id)
        except (RedisError, OSError):
            raise errors.ServiceUnavailable("Live state is unreachable; try again.") from None
        if me is None or not services.listen or not services.listen.in_room(
                room_id, identity.user_id):
            raise errors.NotInRoom("Join the room (its WebSocket, on this server) first.")
        return identity.user_id


async def _serve(listener: Listener, budget: TokenBucket, strikes: Strikes) -> None:
    """Read what the client sends (pings at most) until it goes or the socket is closed."""
    websocket = listener.websocket
    closed = asyncio.ensure_future(listener.closed.wait())
    try:
        while listener.close_code is None:
            receive = asyncio.ensure_future(websocket.receive())
            await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            parsed = _parse(message.get("text")) if budget.take() else errors.RateLimited(
                "Send nothing but an occasional ping.")
            if isinstance(parsed, errors.AudioRoomsError):
                if strikes.add():
                    logger.info("%r keeps sending what it should not; closing", listener)
                    listener.close(CloseCode.BAD_FRAMES)
                    return
                if not isinstance(parsed, errors.RateLimited):
                    listener.send_text(_dump(out.Error.of(parsed, None).wire()))
                continue
            if parsed.get("type") == "ping":
                ref = parsed.get("ref")
                listener.send_text(_dump({"type": "pong",
                                          "ref": ref if isinstance(ref, str) else None}))
            else:
                listener.send_text(_dump(out.Error.of(
                    errors.UnknownMessageType("Only ping is understood here."), None).wire()))
    finally:
        closed.cancel()


def _parse(text: str | None) -> dict[str, object] | errors.AudioRoomsError:
    if text is None:
        return errors.MalformedMessage("Send text frames of JSON.")
    if len(text) > MAX_INBOUND_BYTES:
        return errors.MessageTooLarge(f"Messages here are limited to {MAX_INBOUND_BYTES} bytes.")
    try:
        value = json.loads(text)
    except ValueError:
        return errors.MalformedMessage("That is not JSON.")
    if not isinstance(value, dict):
        return errors.MalformedMessage("Send a JSON object.")
    return value


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _refuse(websocket: WebSocket, error: errors.AudioRoomsError, code: int) -> None:
    try:
        await websocket.send_text(_dump(out.Error.of(error, None).wire()))
        await websocket.close(code)
    except (OSError, RuntimeError, WebSocketDisconnect):
        pass
