"""``RoomMedia``: each room's media plane kept in step with the room.

Signalling tells the SFU what to do and relays what it reports: a participant's offer is
answered once the room says they are in it, with their right to speak; published events (a
role changed, a participant left, the room ended) become ``set_may_produce``, ``disconnect``
and ``close_router`` calls; the router's reports (active speakers, a transport lost by itself)
go back to the participants' connections. The SFU knows nothing of rooms or roles, and this
module knows nothing of where connections live: the hub's lookups are passed in at
construction.
"""

from __future__ import annotations

from collections.abc import Callable

from audio_rooms import errors
from audio_rooms.rooms import RoomService
from audio_rooms.sfu import MediaConfig, MediaServer, SpeakerLevel
from audio_rooms.sfu.producer import Tap
from audio_rooms.signalling import outbound as out
from audio_rooms.signalling.connection import Connection
from audio_rooms.state.store import Published

# (room_id, user_id) -> the participant's current connection on this node, if any.
FindConnection = Callable[[str, str], Connection | None]
# (room_id, message): send to every connection of the room on this node.
SendToRoom = Callable[[str, out.ServerMessage], None]


class RoomMedia:
    def __init__(
        self,
        config: MediaConfig | None,
        rooms: RoomService,
        connection: FindConnection,
        send_to_room: SendToRoom,
    ) -> None:
        # The media server is made here, so that every router reports to this from its start.
        self.media = (
            MediaServer(config, self._report_active_speakers, self._media_failed)
            if config is not None else None
        )
        self._rooms = rooms
        self._connection = connection
        self._send_to_room = send_to_room
        # The last active-speaker report per room: reports go out only when the list changes,
        # so a newcomer gets the current one when their media connects.
        self._active_speakers: dict[str, out.ActiveSpeakers] = {}

    async def answer(
        self, room_id: str, user_id: str, offer_sdp: str, address: str | None
    ) -> str:
        """Answer a participant's offer; ``address`` (the client's) is held to its quota."""
        if self.media is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        state = await self._rooms.live_state(room_id)
        me = state.get(user_id) or await self._rooms.store.audience.listener(room_id, user_id)
        if me is None:
            raise errors.NotInRoom("You are not in this room.")
        router = self.media.router(room_id)
        router.set_may_produce(user_id, me.may_speak)
        answer = await router.answer(user_id, offer_sdp, address)
        current = self._active_speakers.get(room_id)
        connection = self._connection(room_id, user_id)
        if current is not None and connection is not None:
            connection.send(current)
        return answer

    def add_tap(self, room_id: str, tap: Tap) -> None:
        """Hand ``tap`` the packets of the speakers the room's listeners hear (the relay of
        signalling/listen.py); the caller checked that its listener is in the room."""
        if self.media is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        self.media.router(room_id).add_tap(tap)

    def remove_tap(self, room_id: str, tap: Tap) -> None:
        router = self.media.get_router(room_id) if self.media is not None else None
        if router is not None:
            router.remove_tap(tap)

    async def disconnected(self, room_id: str, user_id: str, connection: Connection) -> None:
        """A participant's WebSocket ended: end its media unless a newer connection took over."""
        if self.media is None:
            return
        current = self._connection(room_id, user_id)
        router = self.media.get_router(room_id)
        if router is not None and (current is None or current is connection):
            await router.disconnect(user_id)

    def _media_failed(self, room_id: str, user_id: str, reason: str) -> None:
        """A transport ended by itself: its client re-offers at once rather than sit silent."""
        connection = self._connection(room_id, user_id)
        if connection is not None:
            connection.send(out.MediaFailed.of(reason))

    def _report_active_speakers(self, room_id: str, levels: list[SpeakerLevel]) -> None:
        speakers = [out.ActiveSpeaker(user_id=s.participant_id, level=round(s.level, 3))
                    for s in levels]
        message = out.ActiveSpeakers(speakers=speakers)
        self._active_speakers[room_id] = message
        self._send_to_room(room_id, message)

    async def on_published(self, published: Published) -> None:
        """Keep the media plane in step with what happened in a room."""
        room_id = published.room_id
        kinds = {e.type for e in published.events}
        if "room_ended" in kinds:
            self._active_speakers.pop(room_id, None)
            if self.media is not None:
                await self.media.close_router(room_id)
            return
        router = self.media.get_router(room_id) if self.media is not None else None
        if router is None:
            return
        # Only the participant an event is about can have gained or lost the right to speak.
        for event in published.events:
            if event.subject is None:
                continue
            if event.type in ("participant_left", "participant_removed"):
                router.set_may_produce(event.subject, False)
                await router.disconnect(event.subject)
                router.forget(event.subject)
            elif event.type in ("role_changed", "mute_changed"):
                router.set_may_produce(event.subject, event.subject in published.may_speak)
