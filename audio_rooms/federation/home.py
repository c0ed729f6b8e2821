"""The home server's side: this deployment's users listening to rooms on other deployments.

A user names a remote room as ``ROOM_ID@server``. Their home server (this one) asks for them,
and only if they consented to that server (``federation_consents``) and this server federates
with it. The other server (the origin) applies its own rules. The user's media connects to this
server's SFU only: a local router named after the remote room (``ROOM_ID@server``) takes the
room's stage from one pipe per room (sfu/pipe.py), however many of this server's users listen,
and fans it out to them. The origin never learns their addresses.

Who listens where is kept in Redis (``ar:fed:home:{ref}``: user -> display name), so every node
of this deployment can answer a request about it. The node that carries a remote room's media
refreshes it every :data:`REFRESH` seconds. The refresh keeps its users present at the origin,
keeps the pipe open, opens it again when the origin's stage moved or fell silent, and learns
the room's stage and counts for the users' clients (``state``). A removal or ban pushed by the
origin ends that user's media here at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from audio_rooms import errors
from audio_rooms.accounts.tokens import Identity
from audio_rooms.db.database import Database
from audio_rooms.federation.service import Federation
from audio_rooms.federation.signing import ConsentMissing, NotHomeServer
from audio_rooms.sfu import MediaServer
from audio_rooms.sfu.pipe import PipeKeys
from audio_rooms.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

REFRESH = 1.0
SILENCE = 3.0  # an inlet that heard nothing this long is opened again
IDLE = 15.0  # a remote room with no listener here for this long is let go
_REF = re.compile(r"^([A-Za-z0-9_-]{1,32})@([a-z0-9.-]{1,253})$")


@dataclass(frozen=True)
class RoomRef:
    room_id: str
    server: str

    @property
    def text(self) -> str:
        return f"{self.room_id}@{self.server}"

    @classmethod
    def parse(cls, text: str) -> RoomRef:
        match = _REF.match(text)
        if match is None:
            raise errors.InvalidField("A remote room is named ROOM_ID@server.", field="room")
        return cls(match.group(1), match.group(2))


def _members_key(ref: RoomRef) -> str:
    return f"ar:fed:home:{{{ref.text}}}"


def _dropped_key(ref: RoomRef, user_id: str) -> str:
    return f"ar:fed:home:{{{ref.text}}}:dropped:{user_id}"


class FederatedHome:
    def __init__(
        self, federation: Federation, db: Database, media: MediaServer | None, redis: Any
    ) -> None:
        self.federation = federation
        self.db = db
        self.media = media
        self.redis = redis
        self._pullers: dict[str, asyncio.Task[None]] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._you: dict[str, dict[str, Any]] = {}  # per remote room: each user's role there
        self._pulling: dict[str, int | None] = {}

    def _local(self, ref: RoomRef) -> None:
        if ref.server == self.federation.server_name:
            raise errors.InvalidField("That room is on this server: join it directly.",
                                      field="room")

    # --- consents -------------------------------------------------------------------------------

    async def consents(self, who: Identity) -> list[str]:
        if who.is_guest:
            raise errors.AccountRequired("Sign in to let your server join other servers' rooms.")
        return await self.db.consents(who.user_id)

    async def give_consent(self, who: Identity, server: str) -> None:
        if who.is_guest:
            raise errors.AccountRequired("Sign in to let your server join other servers' rooms.")
        if not re.fullmatch(r"[a-z0-9.-]{1,253}", server) or server == self.federation.server_name:
            raise errors.InvalidField("Not a server name.", field="server")
        await self.db.give_consent(who.user_id, server)

    async def withdraw_consent(self, who: Identity, server: str) -> None:
        if who.is_guest:
            return
        await self.db.withdraw_consent(who.user_id, server)
        # Rooms of that server this user is in: leave them (consent is revocable at once).
        async for raw in self.redis.scan_iter(match="ar:fed:home:{*@" + server + "}"):
            text = raw.decode() if isinstance(raw, bytes) else raw
            if await self.redis.hexists(text, who.user_id):
                ref = RoomRef.parse(text[len("ar:fed:home:{"):-1])
                await self.leave(who, ref)

    # --- joining, media, leaving ----------------------------------------------------------------

    async def join(self, who: Identity, ref: RoomRef) -> dict[str, Any]:
        self._local(ref)
        if who.is_guest:
            raise errors.AccountRequired("Sign in to join rooms on other servers.")
        self.federation.policy.check(ref.server)
        if not await self.db.has_consent(who.user_id, ref.server):
            raise ConsentMissing(f"You have not allowed joining rooms on {ref.server}.",
                                 server=ref.server)
        answer = await self.federation.request(
            ref.server, f"/rooms/{ref.room_id}/join",
            {"user": {"id": who.user_id, "display_name": who.display_name}},
        )
        await self.redis.hset(_members_key(ref), who.user_id, who.display_name)
        await self.redis.delete(_dropped_key(ref, who.user_id))
        if isinstance(answer.get("room"), dict):
            self._state[ref.text] = answer["room"]
        return {"room": answer.get("room"), "ref": ref.text}

    async def _member(self, who: Identity, ref: RoomRef) -> None:
        if not await self.redis.hexists(_members_key(ref), who.user_id):
            reason = await self.redis.get(_dropped_key(ref, who.user_id))
            if reason in (b"banned", "banned"):
                raise errors.Banned("You were banned from this room.")
            if reason in (b"removed", "removed"):
                raise errors.RemovedFromRoom("A moderator removed you from this room.")
            raise errors.NotInRoom("Join the room first.")

    async def offer(self, who: Identity, ref: RoomRef, sdp: str, address: str | None) -> str:
        if self.media is None:
            raise errors.ServiceUnavailable("This server relays no media.")
        await self._member(who, ref)
        router = self.media.router(ref.text)
        router.set_may_produce(who.user_id, False)  # listening only (docs/federation.md)
        answer = await router.answer(who.user_id, sdp, address)
        self._ensure_puller(ref)
        return answer

    async def state(self, who: Identity, ref: RoomRef) -> dict[str, Any]:
        await self._member(who, ref)
        state = self._state.get(ref.text)
        you = self._you.get(ref.text, {}).get(who.user_id)
        if state is None or you is None:
            reply = await self._refresh(ref, [who.user_id])
            state = reply.get("room") or {}
            you = (reply.get("you") or {}).get(who.user_id)
        return {"room": state, "ref": ref.text, "you": you}

    async def act(self, who: Identity, ref: RoomRef, action: str) -> dict[str, Any]:
        """Raise or lower a hand, answer an invitation, mute or unmute yourself, in a room on
        another server (which applies its own rules)."""
        await self._member(who, ref)
        answer = await self.federation.request(
            ref.server, f"/rooms/{ref.room_id}/act",
            {"user": {"id": who.user_id, "display_name": who.display_name}, "action": action},
        )
        self._ensure_puller(ref)
        return {"version": answer.get("version")}

    async def leave(self, who: Identity, ref: RoomRef) -> None:
        removed = await self.redis.hdel(_members_key(ref), who.user_id)
        router = self.media.get_router(ref.text) if self.media is not None else None
        if router is not None:
            await router.disconnect(who.user_id)
        if removed:
            with contextlib.suppress(errors.AudioRoomsError):
                await self.federation.request(
                    ref.server, f"/rooms/{ref.room_id}/leave",
                    {"user": {"id": who.user_id, "display_name": who.display_name}},
                )

    async def dropped(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The origin removed or banned one of our users: their media here ends now."""
        ref = RoomRef.parse(f"{room_id}@{origin}")
        user_id, reason = body.get("user"), body.get("reason")
        if not isinstance(user_id, str) or user_id.rpartition("@")[2] != (
            self.federation.server_name
        ):
            raise NotHomeServer("That user is not one of this server's.")
        await self._drop(ref, user_id, reason if reason in ("banned", "removed") else "removed")
        return {}

    async def _drop(self, ref: RoomRef, user_id: str, reason: str) -> None:
        await self.redis.hdel(_members_key(ref), user_id)
        await self.redis.set(_dropped_key(ref, user_id), reason, ex=24 * 3600)
        router = self.media.get_router(ref.text) if self.media is not None else None
        if router is not None:
            await router.disconnect(user_id)
        logger.info("federation: %s was %s from %s", user_id, reason, ref.text)

    # --- pulling the stage ----------------------------------------------------------------------

    def _ensure_puller(self, ref: RoomRef) -> None:
        task = self._pullers.get(ref.text)
        if task is None or task.done():
            self._pullers[ref.text] = asyncio.create_task(self._pull(ref), name=f"pull-{ref.text}")

    async def _refresh(self, ref: RoomRef, users: list[str]) -> dict[str, Any]:
        return await self.federation.request(
            ref.server, f"/rooms/{ref.room_id}/refresh", {"users": users}
        )

    async def _pull(self, ref: RoomRef) -> None:
        assert self.media is not None
        idle_since: float | None = None
        while True:
            router = self.media.get_router(ref.text)
            now = time.monotonic()
            if router is None or router.closed:
                return
            if router.transports:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since > IDLE:
                await self.media.close_router(ref.text)
                self._pulling.pop(ref.text, None)
                return
            try:
                raw = await self.redis.hgetall(_members_key(ref))
                users = sorted((k.decode() if isinstance(k, bytes) else k) for k in raw)
                reply = await self._refresh(ref, users)
                if isinstance(reply.get("room"), dict):
                    self._state[ref.text] = reply["room"]
                present = set(reply.get("present") or [])
                for user_id in users:
                    if user_id not in present:
                        await self._drop(ref, user_id, "removed")
                await self._keep_pipe(ref, reply.get("epoch"))
                raw_you = reply.get("you")
                you: dict[str, Any] = raw_you if isinstance(raw_you, dict) else {}
                self._you[ref.text] = you
                await self._keep_uplink(ref, you, bool(reply.get("uplink")))
            except errors.AudioRoomsError as exc:
                logger.info("federation: refreshing %s failed: %s", ref.text, exc)
            except Exception:
                logger.exception("federation: refreshing %s failed", ref.text)
            await asyncio.sleep(REFRESH)

    async def _keep_pipe(self, ref: RoomRef, epoch: Any) -> None:
        assert self.media is not None
        router = self.media.get_router(ref.text)
        if router is None:
            return
        inlet = router.inlet
        now = time.monotonic()
        if epoch is None:
            if inlet is not None:
                router.close_inlet()
            self._pulling.pop(ref.text, None)
            return
        if (
            inlet is not None and self._pulling.get(ref.text) == epoch
            and now - max(inlet.last_heard, inlet.opened_at) < SILENCE
        ):
            return
        inlet = await router.open_inlet(f"server:{ref.server}", self.media.config.pipe_host)
        assert inlet.address is not None
        reply = await self.federation.request(
            ref.server, f"/rooms/{ref.room_id}/pipe", {"address": list(inlet.address)}
        )
        if reply.get("waiting"):
            router.close_inlet()
            self._pulling.pop(ref.text, None)
            return
        try:
            keys = PipeKeys(base64.b64decode(reply["key"]),
                            (str(reply["source"][0]), int(reply["source"][1])))
            inlet.accept(keys)
        except (KeyError, TypeError, ValueError, IndexError):
            router.close_inlet()
            raise errors.MediaError("The other server sent an unusable pipe.") from None
        self._pulling[ref.text] = reply.get("epoch", epoch)
        logger.info("federation: pulling %s (epoch %s)", ref.text, reply.get("epoch"))

    async def _keep_uplink(self, ref: RoomRef, you: dict[str, Any], open_there: bool) -> None:
        """Send this server's users who may speak there to the origin (one pipe for all), and
        nobody else: the origin checks every packet against their role once more."""
        assert self.media is not None
        router = self.media.get_router(ref.text)
        if router is None:
            return
        speaking = False
        for user_id, info in you.items():
            may_speak = isinstance(info, dict) and bool(info.get("may_speak"))
            router.set_may_produce(user_id, may_speak)
            speaking = speaking or (may_speak and user_id in router.transports)
        edge = f"server:{ref.server}"
        has_pipe = edge in router.pipes
        if not speaking:
            if has_pipe:
                router.close_pipe(edge)
            return
        if has_pipe and open_there:
            return
        reply = await self.federation.request(ref.server, f"/rooms/{ref.room_id}/uplink", {})
        address = reply.get("address")
        if reply.get("waiting") or not isinstance(address, list) or len(address) != 2:
            return
        keys = router.open_pipe(edge, (str(address[0]), int(address[1])),
                                self.media.pipe_socket())
        await self.federation.request(
            ref.server, f"/rooms/{ref.room_id}/uplink-keys",
            {"key": base64.b64encode(keys.key).decode(), "source": list(keys.source)},
        )
        logger.info("federation: sending %s's speakers to %s", ref.text, ref.server)

    async def stop(self) -> None:
        await cancel_and_wait(*self._pullers.values())
        self._pullers.clear()
