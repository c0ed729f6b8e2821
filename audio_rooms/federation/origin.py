"""The origin's side of a federated room: another deployment's users listen to a room here.

Their home server (never the user directly) asks, signed, on their behalf:

* ``join``: the user joins as a listener. It goes through the same admission rules as a local
  listener (bans keyed by ``user@home``, removal, capacity), plus federation's own: the room's
  host opened it to other servers (``interconnected``), this server allows the home server, and
  the user's id is on the home server that asks.
* ``pipe``: open a pipe from the room's origin node to the home server's inlet. It is one pipe
  per home server and room, whatever the number of its users (sfu/pipe.py, the cascade's pipe),
  so this server never learns their network addresses.
* ``refresh``: every second or so, from the home server. It keeps its listed users present and
  its pipe open, and answers with the room's current counts and stage and which of the listed
  users are still in it.
* ``leave``.

A removal or ban of a remote user is pushed to their home server at once (``dropped``), and
so is the end of the room (``ended``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from audio_rooms import errors
from audio_rooms.accounts.tokens import Identity
from audio_rooms.cascade import OriginMoved
from audio_rooms.db import Locale
from audio_rooms.domain import actions as a
from audio_rooms.federation.service import Federation
from audio_rooms.federation.signing import NotHomeServer, RoomNotInterconnected
from audio_rooms.rooms import RoomService
from audio_rooms.signalling.media import RoomMedia
from audio_rooms.state.bus import BusError, NodeUnreachable
from audio_rooms.state.store import Published

logger = logging.getLogger(__name__)

PRESENCE = 30.0  # seconds a remote listener stays without a refresh from its home server
MAX_USERS = 10_000  # users one refresh may list
MAX_ID = 300


def edge_id(server: str) -> str:
    """The pipe's name at the origin: one per home server."""
    return f"server:{server}"


def _user(body: dict[str, Any], origin: str) -> tuple[str, str]:
    user = body.get("user")
    if not isinstance(user, dict):
        raise errors.InvalidField("user is required", field="user")
    user_id, name = user.get("id"), user.get("display_name")
    if not isinstance(user_id, str) or not 3 <= len(user_id) <= MAX_ID:
        raise errors.InvalidField("bad user id", field="user.id")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise errors.InvalidField("bad display name", field="user.display_name")
    if user_id.rpartition("@")[2] != origin:
        raise NotHomeServer("A server may only ask for its own users.")
    return user_id, name


class FederatedOrigin:
    def __init__(self, federation: Federation, rooms: RoomService, media: RoomMedia) -> None:
        self.federation = federation
        self.rooms = rooms
        self.media = media
        self._tasks: set[asyncio.Task[None]] = set()

    async def _interconnected(self, room_id: str) -> Any:
        state = await self.rooms.live_state(room_id)
        if not state.interconnected:
            raise RoomNotInterconnected("The host has not opened this room to other servers.")
        return state

    async def join(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        user_id, name = _user(body, origin)
        await self._interconnected(room_id)
        who = Identity(user_id, name, is_guest=False, locale=Locale.EN)
        joined = await self.rooms.join(who, room_id, None, f"server:{origin}")
        await self.rooms.store.keep_present(room_id, [user_id], PRESENCE)
        view = await self.rooms.snapshot(room_id, user_id)
        snapshot = view[0] if view else None
        return {"room": snapshot, "you": joined.me.to_record(), "version": joined.state.version}

    async def leave(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        user_id, name = _user(body, origin)
        with contextlib.suppress(errors.NotInRoom, errors.RoomEnded, errors.RoomNotFound):
            await self.rooms.act(Identity(user_id, name, False, Locale.EN), room_id, a.Leave())
        return {}

    async def pipe(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._interconnected(room_id)
        address = body.get("address")
        if (
            not isinstance(address, list) or len(address) != 2
            or not isinstance(address[0], str) or not isinstance(address[1], int)
            or len(address[0]) > 64
        ):
            raise errors.InvalidField("bad pipe address", field="address")
        cascade = self.media.cascade
        if cascade is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        lease = await cascade.leases.read(room_id)
        if lease is None:
            return {"waiting": True}  # nobody on stage has connected yet: ask again later
        request = {"room": room_id, "epoch": lease.epoch, "address": address,
                   "edge": edge_id(origin)}
        try:
            if lease.node_id == cascade.node_id:
                reply = await cascade.open_pipe_for(request)
            else:
                reply = await cascade.bus.call(lease.node_id, "pipe", request,
                                               cascade.config.request_timeout)
        except (NodeUnreachable, BusError, OriginMoved):
            return {"waiting": True}
        return {**reply, "epoch": lease.epoch}

    async def refresh(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        users = body.get("users")
        if not isinstance(users, list) or len(users) > MAX_USERS or not all(
            isinstance(u, str) and u.rpartition("@")[2] == origin for u in users
        ):
            raise errors.InvalidField("users must be this server's users", field="users")
        state = await self.rooms.live_state(room_id)
        people = {u: p for u in users if (p := state.get(u)) is not None}
        listening = [u for u in users if u not in people]
        if listening:
            # One round trip for all of them: a refresh costs the same for 1 user or 1,000.
            for listener in await self.rooms.store.audience.listeners(room_id, listening):
                people[listener.user_id] = listener
        present = list(people)
        hands = set(state.hand_queue)
        you = {
            user_id: {
                "role": p.role.value, "may_speak": p.may_speak,
                "invited": user_id in state.invitations, "hand_raised": user_id in hands,
            }
            for user_id, p in people.items()
        }
        await self.rooms.store.keep_present(room_id, present, PRESENCE)
        cascade = self.media.cascade
        epoch = None
        if cascade is not None:
            lease = await cascade.leases.read(room_id)
            if lease is not None:
                epoch = lease.epoch
                with contextlib.suppress(NodeUnreachable):
                    await cascade.bus.tell(lease.node_id, "refresh",
                                           {"room": room_id, "epoch": lease.epoch,
                                            "edge": edge_id(origin)})
        view = await self.rooms.snapshot(room_id, present[0] if present else "")
        return {"present": present, "epoch": epoch, "room": view[0] if view else None,
                "interconnected": state.interconnected, "you": you,
                "uplink": await self._has_uplink(room_id, origin)}

    # --- remote speakers ----------------------------------------------------------------------

    async def act(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """What a remote user may do themselves: hands, invitations, their own microphone."""
        user_id, name = _user(body, origin)
        kind = body.get("action")
        made = {
            "raise_hand": a.RaiseHand, "lower_hand": a.LowerHand,
            "accept_invitation": a.AcceptInvitation, "decline_invitation": a.DeclineInvitation,
        }.get(kind if isinstance(kind, str) else "")
        action: a.Action
        if made is not None:
            action = made()
        elif kind == "mute":
            action = a.Mute(user_id)
        elif kind == "unmute":
            action = a.Unmute(user_id)
        else:
            raise errors.InvalidField("Not an action a remote user may take.", field="action")
        outcome = await self.rooms.act(Identity(user_id, name, False, Locale.EN), room_id, action)
        return {"version": outcome.state.version}

    async def _origin_call(self, room_id: str, op: str, body: dict[str, Any]
                           ) -> dict[str, Any] | None:
        """``op`` on the node holding the room's origin lease (None: no origin yet)."""
        cascade = self.media.cascade
        if cascade is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        lease = await cascade.leases.read(room_id)
        if lease is None:
            return None
        request = {"room": room_id, "epoch": lease.epoch, **body}
        try:
            if lease.node_id == cascade.node_id:
                return await cascade.handle_here(op, request)
            return await cascade.bus.call(lease.node_id, op, request,
                                          cascade.config.request_timeout)
        except (NodeUnreachable, BusError, OriginMoved):
            return None

    async def _has_uplink(self, room_id: str, origin: str) -> bool:
        reply = await self._origin_call(room_id, "uplink_state", {"server": origin})
        return bool(reply and reply.get("open"))

    async def uplink(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Open an inlet on the room's origin node for ``origin``'s speakers."""
        await self._interconnected(room_id)
        reply = await self._origin_call(room_id, "uplink", {"server": origin})
        return reply if reply is not None else {"waiting": True}

    async def uplink_keys(self, origin: str, room_id: str, body: dict[str, Any]
                          ) -> dict[str, Any]:
        key, source = body.get("key"), body.get("source")
        if (
            not isinstance(key, str) or len(key) > 100 or not isinstance(source, list)
            or len(source) != 2 or not isinstance(source[0], str)
            or not isinstance(source[1], int)
        ):
            raise errors.InvalidField("bad uplink keys", field="key")
        reply = await self._origin_call(
            room_id, "uplink_keys", {"server": origin, "key": key, "source": source})
        return reply if reply is not None else {"waiting": True}

    # --- pushed to home servers ----------------------------------------------------------------

    async def on_published(self, published: Published) -> None:
        """Tell a remote user's home server at once when they were removed or banned. Every
        node following the room sees the event; the first to mark it in Redis pushes it."""
        own = self.federation.server_name
        if not self.federation.enabled:
            return
        for event in published.events:
            if event.type == "participant_removed" and event.subject:
                server = event.subject.rpartition("@")[2]
                mark = f"ar:fed:pushed:{published.room_id}:{published.version}:{event.subject}"
                if server and server != own and await self.rooms.store.redis.set(
                    mark, 1, nx=True, ex=120
                ):
                    self._push(server, f"/rooms/{published.room_id}/dropped",
                               {"user": event.subject,
                                "reason": "banned" if event.data.get("banned") else "removed"})

    def _push(self, server: str, path: str, body: dict[str, Any]) -> None:
        async def send() -> None:
            try:
                await self.federation.request(server, path, body)
            except errors.AudioRoomsError as exc:
                logger.warning("federation: could not tell %s %s: %s", server, path, exc)

        task = asyncio.create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
