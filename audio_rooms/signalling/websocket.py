"""The participant WebSocket at ``/ws/rooms/{room_id}``.

Life of a connection: the client sends ``join`` (with a token, or relying on the session
cookie); the server answers ``welcome`` with a snapshot of the room at some version, then every
delta after that version, in order. Every later message is validated and answered with its
effect, or with an ``error`` that leaves the connection up. Only authentication failures,
bans, removal, the end of the room and a stream of unreadable frames close it, with the codes in
:class:`CloseCode`. Every frame, readable or not, is paid for from the connection's budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from audio_rooms import errors
from audio_rooms.addresses import client_key
from audio_rooms.domain import actions as a
from audio_rooms.domain import reactions
from audio_rooms.logs import room_id_var, user_id_var
from audio_rooms.signalling import messages as m
from audio_rooms.signalling import outbound as out
from audio_rooms.signalling.connection import CloseCode, Connection, Strikes, TokenBucket
from audio_rooms.turn import client_ice_servers

if TYPE_CHECKING:
    from audio_rooms.accounts.tokens import Identity
    from audio_rooms.services import Services

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 15.0
MAX_MESSAGES_BEFORE_JOIN = 5

_JOIN_CLOSE_CODES: dict[type[errors.AudioRoomsError], CloseCode] = {
    errors.NotAuthenticated: CloseCode.NOT_AUTHENTICATED,
    errors.RoomNotFound: CloseCode.ROOM_NOT_FOUND,
    errors.RoomEnded: CloseCode.ROOM_ENDED,
    errors.RemovedFromRoom: CloseCode.REMOVED,
}


async def room_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    room_id = websocket.path_params["room_id"][:64]
    await websocket.accept()
    if services.hub.draining:
        await _refuse(websocket, errors.Draining("The server is restarting."), CloseCode.GOING_AWAY)
        return
    session = _Session(services, websocket, room_id)
    await session.run()


async def _refuse(websocket: WebSocket, error: errors.AudioRoomsError, code: int) -> None:
    try:
        await websocket.send_json(out.Error.of(error, None).wire())
        await websocket.close(code)
    except (OSError, RuntimeError, WebSocketDisconnect):
        pass


class _Session:
    def __init__(self, services: Services, websocket: WebSocket, room_id: str) -> None:
        self.services = services
        self.websocket = websocket
        self.room_id = room_id
        # What per-address limits count this client under (an IPv6 client by its /64).
        self.address = client_key(websocket.client.host if websocket.client else None)
        self.settings = services.settings
        self.budget = TokenBucket(self.settings.ws_messages_per_second, self.settings.ws_burst)
        self.bad_frames = Strikes(self.settings.ws_bad_frames_limit,
                                  self.settings.ws_bad_frames_window)
        self.identity: Identity | None = None
        self.connection: Connection | None = None
        self.left = False
        self._last_rate_error = 0.0

    async def run(self) -> None:
        room_id_var.set(self.room_id)
        try:
            joined = await self._join()
            if not joined:
                return
            await self._serve()
        except WebSocketDisconnect:
            pass
        finally:
            await self._finish()

    # --- join ----------------------------------------------------------------------------------

    async def _join(self) -> bool:
        join: m.JoinMessage | None = None
        for _ in range(MAX_MESSAGES_BEFORE_JOIN):
            try:
                raw = await asyncio.wait_for(self._receive(), JOIN_TIMEOUT)
            except TimeoutError:
                break
            if raw is None:
                return False
            if isinstance(raw, errors.AudioRoomsError):
                if self.bad_frames.add():
                    await _refuse(self.websocket, raw, CloseCode.BAD_FRAMES)
                    return False
                await self._error(raw, None)
                continue
            try:
                message = m.parse(raw)
            except errors.AudioRoomsError as exc:
                await self._error(exc, m.ref_of(raw))
                continue
            if isinstance(message, m.JoinMessage):
                join = message
                break
            error = errors.NotInRoom("Send a join message first.")
            await self.websocket.send_json(out.Error.of(error, message.ref).wire())
        if join is None:
            await _refuse(
                self.websocket,
                errors.NotAuthenticated("No join message."),
                CloseCode.NOT_AUTHENTICATED,
            )
            return False
        try:
            self.identity = await self.services.auth.identify(self.websocket, join.token)
            user_id_var.set(self.identity.user_id)
            joined = await self.services.rooms.join(
                self.identity, self.room_id, join.invite, self.address
            )
        except errors.AudioRoomsError as exc:
            code = _JOIN_CLOSE_CODES.get(type(exc), CloseCode.NOT_ALLOWED)
            if isinstance(exc, errors.RoomNotLive | errors.VersionConflict):
                code = CloseCode.GOING_AWAY
            await _refuse(self.websocket, exc, code)
            return False
        except (RedisError, OSError):
            logger.exception("room %s: live state unreachable during a join", self.room_id)
            await _refuse(
                self.websocket,
                errors.ServiceUnavailable("Live state is unreachable; try again."),
                CloseCode.GOING_AWAY,
            )
            return False
        me = joined.me
        resumed = joined.resumed
        connection = Connection(self.websocket, self.room_id, self.identity.user_id, me.role,
                                self.settings.ws_send_buffer_bytes)
        self.connection = connection
        connection.start()
        await self.services.hub.attach(connection)
        # Read the snapshot only now that this node receives the room's deltas: none is missed.
        view = await self.services.rooms.snapshot(self.room_id, self.identity.user_id)
        state = view[1] if view else None
        current = state.get(self.identity.user_id) if state and state.live else None
        if view is None or state is None or current is None:
            connection.close(CloseCode.ROOM_ENDED if state is None or not state.live
                             else CloseCode.NORMAL)
            return False
        me = current
        connection.role = me.role
        connection.send(
            out.Welcome.of(
                you=out.You(user_id=me.user_id, display_name=me.display_name,
                            role=me.role.value, is_guest=me.is_guest),
                room=view[0],
                version=state.version,
                resumed=resumed,
                ice_servers=self._ice_servers(),
                ice_servers_ttl=self.settings.turn_ttl,
                slots=self.settings.media_slots,
            )
        )
        connection.ready(state.version)
        logger.info("room %s: %s joined as %s%s", self.room_id, me.user_id, me.role.value,
                    " (resumed)" if resumed else "")
        return True

    # --- messages ------------------------------------------------------------------------------

    async def _receive(self) -> str | errors.AudioRoomsError | None:
        """The next frame's text; the error a binary or oversized frame earns instead; or None
        once the client is gone."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        limit = self.settings.ws_max_message_bytes
        text = message.get("text")
        if text is None:
            return errors.MalformedMessage("Send text frames of JSON.")
        if len(text) > limit and len(text.encode()) > limit:
            return errors.MessageTooLarge(f"Messages are limited to {limit} bytes.")
        return str(text)

    async def _serve(self) -> None:
        connection = self.connection
        assert connection is not None
        while not connection.closing:
            raw = await self._receive()
            if raw is None:
                return
            if isinstance(raw, errors.AudioRoomsError) and self.bad_frames.add():
                logger.info("room %s: closing a socket that keeps sending unreadable frames",
                            self.room_id)
                connection.close(CloseCode.BAD_FRAMES)
                return
            if not self.budget.take():
                now = time.monotonic()
                if now - self._last_rate_error > 1.0:
                    self._last_rate_error = now
                    ref = m.ref_of(raw) if isinstance(raw, str) else None
                    await self._error(errors.RateLimited("Slow down."), ref)
                continue
            if isinstance(raw, errors.AudioRoomsError):
                self.services.metrics.messages.labels("invalid").inc()
                await self._error(raw, None)
                continue
            try:
                message = m.parse(raw)
            except errors.AudioRoomsError as exc:
                self.services.metrics.messages.labels("invalid").inc()
                await self._error(exc, m.ref_of(raw))
                continue
            self.services.metrics.messages.labels(message.type).inc()  # type: ignore[attr-defined]
            try:
                await self._handle(message)
            except errors.AudioRoomsError as exc:
                await self._error(exc, message.ref)
            except RedisError:
                logger.exception("room %s: live state unreachable", self.room_id)
                unavailable = errors.ServiceUnavailable("Live state is unreachable; try again.")
                await self._error(unavailable, message.ref)
            except ValueError:
                # Input that passed the schema but not some parser further in: a bug to fix,
                # and still no reason to drop the sender's socket.
                logger.exception("room %s: a %s message could not be handled", self.room_id,
                                 message.type)  # type: ignore[attr-defined]
                await self._error(errors.BadRequest("That message could not be handled."),
                                  message.ref)

    async def _handle(self, message: m.Message) -> None:
        assert self.identity is not None and self.connection is not None
        if isinstance(message, m.PingMessage):
            self.connection.send(out.Pong(ref=message.ref))
            return
        if isinstance(message, m.JoinMessage):
            raise errors.AlreadyInRoom("You are already in this room.")
        if isinstance(message, m.ReactionMessage):
            # Tallied, not a transition: it goes out in the room's next reactions batch.
            self.services.hub.react(self.room_id, reactions.check(message.emoji))
            if message.ref is not None:
                self.connection.send(out.Ack(ref=message.ref, version=self.connection.version))
            return
        if isinstance(message, m.AudiencePageMessage):
            self.connection.send(out.AudiencePage.of(await self._audience_page(message),
                                                     message.ref))
            return
        if isinstance(message, m.IceServersMessage):
            self.connection.send(
                out.IceServers.of(self._ice_servers(), self.settings.turn_ttl, message.ref)
            )
            return
        if isinstance(message, m.MediaOfferMessage):
            answer = await self.services.room_media.answer(
                self.room_id, self.identity.user_id, message.sdp, self.address
            )
            self.connection.send(out.MediaAnswer(sdp=answer, ref=message.ref))
            return
        action = m.to_action(message)
        if action is None:
            raise errors.UnknownMessageType("That message is not understood here.")
        outcome = await self.services.rooms.act(self.identity, self.room_id, action)
        if message.ref is not None:
            self.connection.send(out.Ack(ref=message.ref, version=outcome.state.version))
        if isinstance(action, a.Leave):
            self.left = True
            self.connection.close(CloseCode.NORMAL)

    async def _audience_page(self, message: m.AudiencePageMessage) -> dict[str, Any]:
        assert self.identity is not None
        audience = self.services.rooms.audience
        if message.followed:
            page = await audience.followed(self.room_id, self.identity.user_id, message.limit)
        else:
            try:
                page = await audience.page(self.room_id, message.cursor, message.limit)
            except ValueError:
                raise errors.InvalidField("That cursor is not one this server gave.",
                                          field="cursor") from None
        return page.to_wire()

    def _ice_servers(self) -> list[dict[str, Any]]:
        """ICE servers with TURN credentials for this participant (they last ``turn_ttl``)."""
        assert self.identity is not None
        s = self.settings
        return client_ice_servers(
            s.stun_urls, s.turn_urls, s.turn_secret, s.turn_ttl, self.identity.user_id
        )

    async def _error(self, error: errors.AudioRoomsError, ref: str | None) -> None:
        self.services.metrics.errors.labels(error.code).inc()
        payload = out.Error.of(error, ref)
        if self.connection is not None:
            self.connection.send(payload)
        elif self.websocket.application_state is WebSocketState.CONNECTED:
            await self.websocket.send_json(payload.wire())

    # --- the end -------------------------------------------------------------------------------

    async def _finish(self) -> None:
        connection = self.connection
        if connection is None or self.identity is None:
            return
        gone = self.left or (connection.closing and connection.closed_for_good)
        if connection.close_code is not None:
            self.services.metrics.closes.labels(str(connection.close_code)).inc()
        try:
            await self.services.hub.detach(connection, left=gone)
        except OSError:
            logger.warning("room %s: could not record that %s disconnected", self.room_id,
                           self.identity.user_id)
        await self.services.room_media.disconnected(self.room_id, self.identity.user_id,
                                                    connection)
        if gone and self.services.listen is not None:
            self.services.listen.close_user(self.room_id, self.identity.user_id,
                                            CloseCode.NORMAL)
        connection.close(CloseCode.NORMAL)
        await connection.wait_closed()
