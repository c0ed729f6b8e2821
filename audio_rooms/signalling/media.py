"""``RoomMedia``: each room's media plane kept in step with the room, across nodes.

Signalling tells the SFU what to do and relays what it reports. A participant's offer arrives
on the node of its WebSocket; it is answered by the node chosen for it (docs/cascade.md): a
stage member's by the room's origin, a listener's by an edge (this node while it has room).
When that is another node the offer goes there over the bus and the answer comes back; the
client connects to whatever candidates the answer names, so it never needs to know.

Published events (a role changed, a participant left, the room ended) become
``set_may_produce``, ``disconnect`` and ``close_router`` calls on whichever node carries the
participant's media (every node with a router follows its room's events). A speaker may produce
only on the room's origin. A listener on an edge who is invited on stage is asked to offer
again (``media_moved``) and lands on the origin. The origin's active speakers go to the room's
connections on every node over the room's channel. The SFU knows nothing of rooms or roles.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from audio_rooms import errors
from audio_rooms.cascade import Cascade, CascadeConfig, OriginMoved
from audio_rooms.rooms import RoomService
from audio_rooms.sfu import MediaConfig, MediaServer, SpeakerLevel
from audio_rooms.sfu.producer import Tap
from audio_rooms.signalling import outbound as out
from audio_rooms.signalling.connection import Connection
from audio_rooms.signalling.hub import Hub
from audio_rooms.state.bus import BusError, NodeBus, NodeUnreachable
from audio_rooms.state.leases import OriginLeases
from audio_rooms.state.nodes import NodeInfo
from audio_rooms.state.store import Published
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

# (room_id, user_id) -> the participant's current connection on this node, if any.
FindConnection = Callable[[str, str], Connection | None]

MAX_SDP = 64 * 1024  # an offer relayed to another node (the WebSocket's own limit is lower)


class RoomMedia:
    def __init__(
        self,
        config: MediaConfig | None,
        rooms: RoomService,
        hub: Hub,
        node_id: str,
        bus: NodeBus,
        leases: OriginLeases,
        nodes: Callable[[], tuple[list[NodeInfo], float]],
        cascade: CascadeConfig,
    ) -> None:
        # The media server is made here, so that every router reports to this from its start.
        self.media = (
            MediaServer(config, self._report_active_speakers, self._media_failed)
            if config is not None else None
        )
        self.node_id = node_id
        self.bus = bus
        self._rooms = rooms
        self._hub = hub
        self.cascade = (
            Cascade(node_id, self.media, leases, bus, nodes, cascade)
            if self.media is not None else None
        )
        if self.cascade is not None:
            self.cascade.notify = self._notify
            self.cascade.on_router_closed = self._router_closed
        self._pending: set[asyncio.Task[None]] = set()
        bus.handlers.update(offer=self._on_offer, disconnect=self._on_disconnect,
                            media_failed=self._on_media_failed)

    def start(self) -> None:
        if self.cascade is not None:
            self.cascade.start()

    async def stop(self) -> None:
        if self.cascade is not None:
            await self.cascade.stop()
        await cancel_and_wait(*self._pending)

    # --- offers ---------------------------------------------------------------------------------

    async def answer(
        self, room_id: str, user_id: str, offer_sdp: str, address: str | None
    ) -> str:
        """Answer a participant's offer; ``address`` (the client's) is held to its quota."""
        cascade = self.cascade
        if cascade is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        me = await self._member(room_id, user_id)
        stage = me.role.on_stage
        tried: list[str] = []
        for _ in range(3):
            if stage:
                target = (await cascade.origin(room_id)).node_id
            else:
                target = cascade.edge(exclude=tuple(tried))
            try:
                answer = await self._answer_on(target, room_id, user_id, offer_sdp, address,
                                               stage)
            except NodeUnreachable:
                logger.warning("media: %s did not answer an offer of room %s", target, room_id)
                cascade.suspect(target)
                tried.append(target)
                continue
            except OriginMoved:
                tried.append(target)
                continue
            previous = cascade.placed.get((room_id, user_id))
            cascade.placed[(room_id, user_id)] = target
            if previous is not None and previous != target:
                await self._disconnect_on(previous, room_id, user_id)
            current = self._hub.active_speakers.get(room_id)
            connection = self._hub.connection(room_id, user_id)
            if current is not None and connection is not None:
                connection.send(current)
            return answer
        raise errors.MediaNodeUnreachable("No media node could take this offer; try again.")

    async def _answer_on(
        self, target: str, room_id: str, user_id: str, sdp: str, address: str | None, stage: bool
    ) -> str:
        if target == self.node_id:
            return await self.answer_here(room_id, user_id, sdp, address, stage, self.node_id)
        assert self.cascade is not None
        try:
            reply = await self.bus.call(
                target, "offer",
                {"room": room_id, "user": user_id, "sdp": sdp, "address": address,
                 "stage": stage},
                self.cascade.config.request_timeout + 2,
            )
        except BusError as exc:
            if exc.code == OriginMoved.code:
                raise OriginMoved(exc.message) from None
            raise errors.error_class(exc.code)(exc.message or None) from None
        answer = reply.get("sdp")
        if not isinstance(answer, str):
            raise NodeUnreachable(f"{target} sent no answer")
        return answer

    async def answer_here(
        self, room_id: str, user_id: str, sdp: str, address: str | None, stage: bool,
        ws_node: str,
    ) -> str:
        """Answer on this node's media server (an offer placed here, from any node)."""
        assert self.media is not None and self.cascade is not None
        if stage:
            await self.cascade.take_origin(room_id)
        me = await self._member(room_id, user_id)
        router = self.media.router(room_id)
        await self._hub.watch(room_id)
        router.set_may_produce(user_id, me.may_speak and self.cascade.is_origin(room_id))
        self.cascade.served[(room_id, user_id)] = ws_node
        answer = await router.answer(user_id, sdp, address)
        self.cascade.kick(room_id)
        return answer

    async def _member(self, room_id: str, user_id: str) -> Any:
        state = await self._rooms.live_state(room_id)
        me = state.get(user_id) or await self._rooms.store.audience.listener(room_id, user_id)
        if me is None:
            raise errors.NotInRoom("You are not in this room.")
        return me

    async def _on_offer(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        room_id, user_id, sdp = body.get("room"), body.get("user"), body.get("sdp")
        address, stage = body.get("address"), body.get("stage")
        if (
            not isinstance(room_id, str) or not isinstance(user_id, str)
            or not isinstance(sdp, str) or len(sdp) > MAX_SDP
            or not (address is None or isinstance(address, str)) or not isinstance(stage, bool)
        ):
            raise errors.MalformedMessage("bad offer")
        if self.media is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        return {"sdp": await self.answer_here(room_id, user_id, sdp, address, stage, sender)}

    # --- ends -----------------------------------------------------------------------------------

    def add_tap(self, room_id: str, tap: Tap) -> None:
        """Hand ``tap`` the packets of the speakers the room's listeners hear (the relay of
        signalling/listen.py); the caller checked that its listener is in the room."""
        if self.media is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        self.media.router(room_id).add_tap(tap)
        if self.cascade is not None:
            self.cascade.kick(room_id)  # an edge with only relay listeners pulls the stage too

    def remove_tap(self, room_id: str, tap: Tap) -> None:
        router = self.media.get_router(room_id) if self.media is not None else None
        if router is not None:
            router.remove_tap(tap)

    async def disconnected(self, room_id: str, user_id: str, connection: Connection) -> None:
        """A participant's WebSocket ended: end its media unless a newer connection took over."""
        if self.cascade is None:
            return
        current = self._hub.connection(room_id, user_id)
        if current is not None and current is not connection:
            return
        target = self.cascade.placed.pop((room_id, user_id), None)
        if target is not None:
            await self._disconnect_on(target, room_id, user_id)

    async def _disconnect_on(self, node_id: str, room_id: str, user_id: str) -> None:
        if node_id == self.node_id:
            await self._disconnect_here(room_id, user_id)
        else:
            await self.bus.tell(node_id, "disconnect", {"room": room_id, "user": user_id})

    async def _disconnect_here(self, room_id: str, user_id: str) -> None:
        router = self.media.get_router(room_id) if self.media is not None else None
        if router is not None:
            await router.disconnect(user_id)
        if self.cascade is not None:
            self.cascade.served.pop((room_id, user_id), None)

    async def _on_disconnect(self, sender: str, body: dict[str, Any]) -> None:
        room_id, user_id = body.get("room"), body.get("user")
        # Only the node of the participant's WebSocket may end its media here.
        if (
            isinstance(room_id, str) and isinstance(user_id, str) and self.cascade is not None
            and self.cascade.served.get((room_id, user_id)) == sender
        ):
            await self._disconnect_here(room_id, user_id)

    def _media_failed(self, room_id: str, user_id: str, reason: str) -> None:
        """A transport ended by itself: its client re-offers at once rather than sit silent."""
        if self.cascade is not None:
            self._spawn(self.cascade.tell_participant(room_id, user_id, reason))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _on_media_failed(self, sender: str, body: dict[str, Any]) -> None:
        room_id, user_id, reason = body.get("room"), body.get("user"), body.get("reason")
        if not (isinstance(room_id, str) and isinstance(user_id, str) and isinstance(reason, str)):
            return
        if self.cascade is not None and self.cascade.placed.get((room_id, user_id)) == sender:
            del self.cascade.placed[(room_id, user_id)]
            self._notify(room_id, user_id, reason)

    def _notify(self, room_id: str, user_id: str, reason: str) -> None:
        connection = self._hub.connection(room_id, user_id)
        if connection is not None:
            try:
                message = out.MediaFailed.of(reason)
            except ValueError:
                logger.warning("media: unknown media_failed reason %r", reason)
                return
            connection.send(message)

    # --- reports and events ---------------------------------------------------------------------

    def _report_active_speakers(self, room_id: str, levels: list[SpeakerLevel]) -> None:
        if self.cascade is None or not self.cascade.is_origin(room_id):
            return  # an edge sees the same speakers; the origin alone reports them
        speakers = [out.ActiveSpeaker(user_id=s.participant_id, level=round(s.level, 3))
                    for s in levels]
        self._spawn(
            self._hub.publish_active_speakers(room_id, out.ActiveSpeakers(speakers=speakers))
        )

    def _router_closed(self, room_id: str) -> None:
        self._spawn(self._hub.unwatch(room_id))

    async def on_published(self, published: Published) -> None:
        """Keep the media plane in step with what happened in a room."""
        room_id = published.room_id
        kinds = {e.type for e in published.events}
        if "room_ended" in kinds:
            if self.cascade is not None:
                for key in [k for k in self.cascade.placed if k[0] == room_id]:
                    del self.cascade.placed[key]
                if self.media is not None and self.media.get_router(room_id) is not None:
                    await self.cascade.close_room(room_id)
            return
        router = self.media.get_router(room_id) if self.media is not None else None
        if router is None or self.cascade is None:
            return
        origin = self.cascade.is_origin(room_id)
        # Only the participant an event is about can have gained or lost the right to speak.
        for event in published.events:
            user_id = event.subject
            if user_id is None:
                continue
            if event.type in ("participant_left", "participant_removed"):
                router.set_may_produce(user_id, False)
                await router.disconnect(user_id)
                router.forget(user_id)
                self.cascade.served.pop((room_id, user_id), None)
            elif event.type in ("role_changed", "mute_changed"):
                may_speak = user_id in published.may_speak
                router.set_may_produce(user_id, may_speak and origin)
                if may_speak and not origin and user_id in router.transports:
                    # Invited on stage while listening on an edge: speak through the origin.
                    await router.disconnect(user_id)
                    await self.cascade.tell_participant(room_id, user_id, "media_moved")
