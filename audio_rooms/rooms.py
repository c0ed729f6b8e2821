"""Rooms as the application sees them: durable records in SQL, live state in Redis.

``RoomService`` is where a request becomes a transition: it gathers the facts the pure domain
needs (is this user banned, do they follow a moderator, is their invite link genuine), runs the
transition atomically in Redis, then writes what must outlive the live room (bans, the
moderation log, the end time) to SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import UTC, datetime
from typing import Any

from audio_rooms import errors
from audio_rooms.accounts.tokens import Identity
from audio_rooms.db.database import Database
from audio_rooms.db.records import RoomRecord, RoomStatus
from audio_rooms.domain import actions as a
from audio_rooms.domain.roles import Visibility
from audio_rooms.domain.room import Limits, RoomState, new_room
from audio_rooms.domain.transitions import Outcome
from audio_rooms.state.store import RoomStore

logger = logging.getLogger(__name__)

class RoomService:
    def __init__(self, db: Database, store: RoomStore, secret: str, limits: Limits) -> None:
        self.db = db
        self.store = store
        self._secret = secret.encode()
        self.limits = limits

    # --- lifecycle -----------------------------------------------------------------------------

    async def create(
        self,
        host: Identity,
        title: str,
        description: str,
        visibility: str,
        scheduled_start: datetime | None,
    ) -> RoomRecord:
        if host.is_guest:
            raise errors.AccountRequired("Sign in to host a room.")
        await self.refuse_banned_account(host)
        if scheduled_start is not None and scheduled_start <= datetime.now(UTC):
            scheduled_start = None  # a start time in the past means now
        record = await self.db.create_room(
            title=title,
            description=description,
            visibility=visibility,
            host_id=host.user_id,
            scheduled_start=scheduled_start,
            start_now=scheduled_start is None,
        )
        if record.status is RoomStatus.LIVE:
            await self._go_live(record)
        return record

    async def start(self, host: Identity, room_id: str) -> RoomRecord:
        record = await self.get(room_id)
        if record.host_id != host.user_id:
            raise errors.NotPermitted("Only the room's host can start it.")
        await self.refuse_banned_account(host)
        if record.status is RoomStatus.ENDED:
            raise errors.RoomEnded("This room has ended.")
        if record.status is RoomStatus.SCHEDULED:
            record = await self.db.mark_room_started(room_id, datetime.now(UTC))
        if await self.store.load(room_id) is None:
            await self._go_live(record)
        return record

    async def _go_live(self, record: RoomRecord) -> None:
        state = new_room(
            record.id,
            record.title,
            Visibility(record.visibility.value),
            record.host_id,
            now=time.time(),
            limits=self.limits,
        )
        await self.store.create(state)

    async def get(self, room_id: str) -> RoomRecord:
        record = await self.db.get_room(room_id)
        if record is None:
            raise errors.RoomNotFound("No such room.")
        return record

    # --- participation -------------------------------------------------------------------------

    async def refuse_banned_account(self, who: Identity) -> None:
        """Raise AccountBanned for an account banned from the whole server.

        Banning revokes the account's sessions, but a sign-in afterwards gets a new one: what
        keeps them out is this check wherever they would take part.
        """
        if not who.is_guest and await self.db.is_banned(None, who.user_id):
            raise errors.AccountBanned("This account is banned from this server.")

    async def join(self, who: Identity, room_id: str, invite: str | None) -> Outcome:
        state = await self.live_state(room_id)
        moderator_ids: list[str] = [p.user_id for p in state.moderators()]
        if state.host_id not in moderator_ids:
            moderator_ids.append(state.host_id)
        banned = await self.db.is_banned(room_id, who.user_id)
        if banned:  # from this room, or from the server: say which
            await self.refuse_banned_account(who)
        follows = (
            not who.is_guest
            and state.visibility is Visibility.SOCIAL
            and await self.db.follows_any(who.user_id, moderator_ids)
        )
        action = a.Join(
            display_name=who.display_name,
            is_guest=who.is_guest,
            follows_moderator=follows,
            has_invite=invite is not None and self.check_invite(room_id, invite),
            banned=banned,
        )
        return await self.store.transition(room_id, who.user_id, action)

    async def act(self, who: Identity, room_id: str, action: a.Action) -> Outcome:
        outcome = await self.store.transition(room_id, who.user_id, action)
        await self._record(who, room_id, action, outcome)
        return outcome

    async def _record(
        self, who: Identity, room_id: str, action: a.Action, outcome: Outcome
    ) -> None:
        """Write what must outlive the live room. The live state already holds; a failure here
        is logged, not raised, so that the actor is not told that a completed action failed."""
        try:
            target = getattr(action, "target", None)
            if isinstance(action, a.Ban) and target:
                await self.db.add_ban(room_id, target, who.user_id, "banned by a moderator")
            # The moderation log: what a moderator did to someone, and ending the room.
            if isinstance(action, a.TargetedAction | a.EndRoom) and outcome.events:
                await self.db.log_moderation(room_id, who.user_id, action.name, target, {})
            if not outcome.state.live:
                await self.ended(room_id)
        except errors.AudioRoomsError:
            logger.exception("room %s: could not record %s by %s", room_id, action.name,
                             who.user_id)

    async def ended(self, room_id: str) -> None:
        """Record in SQL that a live room ended (by a moderator, or with no moderator left)."""
        record = await self.db.get_room(room_id)
        if record is not None and record.ended_at is None:
            await self.db.mark_room_ended(room_id, datetime.now(UTC))

    async def live_state(self, room_id: str) -> RoomState:
        state = await self.store.load(room_id)
        if state is None:
            record = await self.db.get_room(room_id)
            if record is None:
                raise errors.RoomNotFound("No such room.")
            if record.status is RoomStatus.ENDED:
                raise errors.RoomEnded("This room has ended.")
            raise errors.RoomNotLive("This room has not started yet.")
        if not state.live:
            raise errors.RoomEnded("This room has ended.")
        return state

    # --- invite links --------------------------------------------------------------------------

    def invite_token(self, room_id: str) -> str:
        digest = hmac.new(self._secret, f"invite:{room_id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def check_invite(self, room_id: str, token: str) -> bool:
        return hmac.compare_digest(self.invite_token(room_id), token)

    # --- lobby ---------------------------------------------------------------------------------

    async def summary(self, record: RoomRecord) -> dict[str, Any]:
        state = await self.store.load(record.id) if record.status is RoomStatus.LIVE else None
        status = record.status
        if state is not None and not state.live:
            # Ended in the live state (the authority), which SQL records just after the
            # room_ended event went out: a client that asks at once must not read "live".
            status, state = RoomStatus.ENDED, None
        host = await self.db.get_user(record.host_id)
        speakers = (
            [
                {"user_id": p.user_id, "display_name": p.display_name, "role": p.role.value}
                for p in state.participants.values()
                if p.role.on_stage
            ]
            if state
            else []
        )
        return {
            "id": record.id,
            "title": record.title,
            "description": record.description,
            "visibility": record.visibility.value,
            "host": {
                "id": record.host_id,
                "display_name": host.display_name if host else record.host_id,
            },
            "status": status.value,
            "scheduled_start": _iso(record.scheduled_start),
            "started_at": _iso(record.started_at),
            "ended_at": _iso(record.ended_at),
            "speakers": speakers,
            "speaker_count": len(speakers),
            "listener_count": state.count(on_stage=False) if state else 0,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
