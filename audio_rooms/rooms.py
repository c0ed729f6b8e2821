"""Rooms as the application sees them: durable records in SQL, live state in Redis.

``RoomService`` is where a request becomes a transition: it gathers the facts the pure domain
needs (is this user banned, does a moderator follow them, is their invite link current), runs
the transition atomically in Redis, then writes what must outlive the live room (bans, the
moderation log, the end time) to SQL. It also decides who may see a room that not everyone may
join, and reads the lobby a page at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from audio_rooms import errors
from audio_rooms.accounts.tokens import Identity
from audio_rooms.audience import Audience
from audio_rooms.db.records import BanRecord, ModerationEntry, RoomRecord, RoomStatus, UserRecord
from audio_rooms.domain import actions as a
from audio_rooms.domain.events import participant_joined
from audio_rooms.domain.roles import Visibility
from audio_rooms.domain.room import Limits, Participant, RoomState, new_room
from audio_rooms.domain.transitions import Outcome, apply, host_rotate_invite
from audio_rooms.state.store import Published, RoomStore

logger = logging.getLogger(__name__)

# A lobby page of live rooms skips rooms the viewer may not see; it reads at most this many
# batches before answering with what it found (and a cursor to read on).
LOBBY_BATCHES = 4

# A listener's join holds their place this long until their connection's heartbeats take over
# (the hub's first one comes at once): a join whose socket never attaches is dropped after it.
JOIN_PRESENCE_SECONDS = 60.0
JOIN_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Joined:
    state: RoomState  # the stage when the join was decided
    me: Participant
    resumed: bool  # already in the room (another tab, a reconnect): same role


class RoomRecords(Protocol):
    """The durable side of rooms: records, their start and end, and the lobby's reads."""

    async def create_room(
        self,
        title: str,
        description: str,
        visibility: str,
        host_id: str,
        scheduled_start: datetime | None,
        start_now: bool,
    ) -> RoomRecord: ...

    async def get_room(self, room_id: str) -> RoomRecord | None: ...

    async def open_rooms_count(self, host_id: str) -> int: ...

    async def mark_room_started(self, room_id: str, at: datetime) -> RoomRecord: ...

    async def mark_room_ended(self, room_id: str, at: datetime) -> RoomRecord: ...

    async def rooms_with_hosts(self, room_ids: list[str]) -> dict[str, tuple[RoomRecord, str]]: ...

    async def scheduled_page(
        self, viewer_id: str | None, offset: int, limit: int
    ) -> list[tuple[RoomRecord, str]]: ...


class RoomModeration(Protocol):
    """Bans that outlive a live room, and the log of what moderators did."""

    async def is_banned(self, room_id: str | None, user_id: str) -> bool: ...

    async def add_ban(
        self, room_id: str | None, user_id: str, by_user_id: str, reason: str = ""
    ) -> BanRecord: ...

    async def log_moderation(
        self,
        room_id: str,
        actor_id: str,
        action: str,
        target_id: str | None,
        detail: dict[str, Any] | None = None,
    ) -> ModerationEntry: ...


class People(Protocol):
    """Who people are, and whom they follow (social rooms are seen through follows)."""

    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def followers_among(self, user_id: str, candidate_ids: list[str]) -> set[str]: ...

    async def followed_by_any(self, user_ids: list[str], limit: int) -> list[str]: ...


class RoomDatabase(RoomRecords, RoomModeration, People, Protocol):
    """All that RoomService reads and writes in SQL; :class:`~audio_rooms.db.Database` is one."""


@dataclass(frozen=True, slots=True)
class LobbyPage:
    rooms: list[dict[str, Any]]
    next_cursor: str | None


class RoomService:
    def __init__(
        self,
        db: RoomDatabase,
        store: RoomStore,
        secret: str,
        limits: Limits,
        max_rooms_per_account: int = 10,
    ) -> None:
        self.db = db
        self.store = store
        self._secret = secret.encode()
        self.limits = limits
        self.max_rooms_per_account = max_rooms_per_account
        self.audience = Audience(store, db)

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
        if await self.db.open_rooms_count(host.user_id) >= self.max_rooms_per_account:
            raise errors.TooManyRooms(
                f"You already have {self.max_rooms_per_account} live or scheduled rooms; "
                "end one first.", limit=self.max_rooms_per_account,
            )
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

    async def join(
        self, who: Identity, room_id: str, invite: str | None, address: str
    ) -> Joined:
        """Let ``who`` in, or raise why not. The host and people on stage come back through a
        transition or as they are; a listener's join touches a constant number of keys
        whatever the room's size (state/audience.py), checked against the version of the
        room the rules below were applied to."""
        banned = await self.db.is_banned(room_id, who.user_id)
        if banned:  # from this room, or from the server: say which
            await self.refuse_banned_account(who)
        tag = self.address_tag(address)
        if who.is_guest:
            # A guest token costs nothing to mint, so a guest is kept out by where they
            # connect from as well (docs/rooms.md weighs what that costs shared addresses).
            door = await self.store.door_for(room_id, tag)
            if door == "removed":
                raise errors.RemovedFromRoom("A moderator removed you from this room.")
            banned = banned or door == "banned"
        for _ in range(JOIN_ATTEMPTS):
            state = await self.live_state(room_id)
            on_stage = state.get(who.user_id)
            if on_stage is not None:
                return Joined(state, on_stage, resumed=True)
            action = await self._join_action(who, state, invite, banned)
            if who.user_id == state.host_id:
                outcome = await self.store.transition(room_id, who.user_id, action)
                me = outcome.state.get(who.user_id)
                assert me is not None
                return Joined(outcome.state, me, resumed=not outcome.events)
            now = self.store.clock()
            # The rules of admission (bans, removal, visibility, guests) on this version;
            # the capacity is counted by the script itself.
            listener = apply(state, who.user_id, action, now).state.get(who.user_id)
            assert listener is not None
            result = await self.store.audience.join(
                room_id, listener, state.version, now + JOIN_PRESENCE_SECONDS,
                tag if who.is_guest else "",
            )
            if result in ("joined", "present"):
                if result == "present":
                    listener = await self.store.audience.listener(room_id, who.user_id) or listener
                else:
                    await self.store.tell(room_id, (participant_joined(
                        listener.to_wire(), who.user_id),))
                return Joined(state, listener, resumed=result == "present")
            if result == "full":
                raise errors.RoomFull("This room is full.")
            if result == "ended":
                raise errors.RoomEnded("This room has ended.")
            if result == "missing":
                raise errors.RoomNotFound("No such room.")
            # "stale", "stage", "host": the room changed since it was read; read it again.
        raise errors.VersionConflict("The room is too busy right now; try again.")

    async def _join_action(
        self, who: Identity, state: RoomState, invite: str | None, banned: bool
    ) -> a.Join:
        followed = (
            not who.is_guest
            and state.visibility is Visibility.SOCIAL
            and bool(await self.db.followers_among(who.user_id, _moderator_ids(state)))
        )
        return a.Join(
            display_name=who.display_name,
            is_guest=who.is_guest,
            followed_by_moderator=followed,
            has_invite=invite is not None and self.check_invite(state, invite),
            banned=banned,
        )

    async def act(self, who: Identity, room_id: str, action: a.Action) -> Outcome:
        outcome = await self.store.transition(room_id, who.user_id, action)
        if isinstance(action, a.Remove | a.Ban) and outcome.events:
            await self.store.shut_door(
                room_id, action.target, "banned" if isinstance(action, a.Ban) else "removed"
            )
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

    async def on_published(self, published: Published) -> None:
        """Record in SQL the end of a room, whichever node or sweep ended it."""
        if any(e.type == "room_ended" for e in published.events):
            await self.ended(published.room_id)

    async def snapshot_for_hub(self, room_id: str, viewer: str
                               ) -> tuple[dict[str, Any], int] | None:
        view = await self.snapshot(room_id, viewer)
        return (view[0], view[1].version) if view else None

    async def snapshot(self, room_id: str, viewer: str) -> tuple[dict[str, Any], RoomState] | None:
        """What ``viewer`` is shown of the room now (SNAPSHOT in docs/protocol.md): the stage,
        themselves, the hands a moderator handles, and the audience's count, sample and first
        page; with the state it was read from. None once the room is gone."""
        state = await self.store.view(room_id, viewer)
        if state is None:
            return None
        snapshot = state.snapshot(viewer)
        if state.live:
            snapshot["audience"] = await self.audience.for_welcome(state)
        else:
            snapshot["audience"] = {"count": 0, "sample": [],
                                    "page": {"listeners": [], "next": None}}
        return snapshot, state

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

    # --- invite links and addresses -----------------------------------------------------------

    def invite_token(self, room_id: str, epoch: int) -> str:
        digest = hmac.new(self._secret, f"invite:{room_id}:{epoch}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def check_invite(self, state: RoomState, token: str) -> bool:
        return hmac.compare_digest(self.invite_token(state.room_id, state.invite_epoch), token)

    async def rotate_invite(self, who: Identity, room_id: str) -> str:
        """Void every invite link of the room so far; return the new link's token."""
        state = await self.live_state(room_id)
        if state.get(who.user_id) is not None:
            outcome = await self.store.transition(room_id, who.user_id, a.RotateInvite())
        else:
            outcome = await self.store.change(
                room_id, lambda s, now: host_rotate_invite(s, who.user_id, now)
            )
        return self.invite_token(room_id, outcome.state.invite_epoch)

    def address_tag(self, address: str) -> str:
        """A client address as kept in Redis: keyed, so the store holds no addresses."""
        digest = hmac.new(self._secret, f"address:{address}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    # --- who may see a room ----------------------------------------------------------------------

    async def visible_summary(
        self, viewer: Identity | None, room_id: str, invite: str | None
    ) -> dict[str, Any]:
        """A room's summary, or ``room_not_found`` for anyone who may not join it: a social or
        closed room is not described to outsiders, not even by a different error."""
        record = await self.get(room_id)
        state = await self.store.load(room_id) if record.status is RoomStatus.LIVE else None
        if state is not None and not state.live:
            state = None
        has_invite = invite is not None and state is not None and self.check_invite(state, invite)
        if state is not None and viewer is not None and state.get(viewer.user_id) is None:
            listener = await self.store.audience.listener(room_id, viewer.user_id)
            if listener is not None:  # in the audience: may see the room it is in
                state = replace(state, participants={**state.participants,
                                                     listener.user_id: listener})
        followers = await self._followers(viewer, [(record, state)])
        if not has_invite and not _may_see(viewer, record, state, followers):
            raise errors.RoomNotFound("No such room.")
        return await self.summary(record)

    async def _followers(
        self, viewer: Identity | None, rooms: list[tuple[RoomRecord, RoomState | None]]
    ) -> set[str]:
        """The hosts and moderators of these social rooms who follow ``viewer``: one query."""
        if viewer is None or viewer.is_guest:
            return set()
        candidates: set[str] = set()
        for record, state in rooms:
            if record.visibility.value == Visibility.SOCIAL.value:
                candidates.add(record.host_id)
                if state is not None:
                    candidates.update(_moderator_ids(state))
        return await self.db.followers_among(viewer.user_id, sorted(candidates))

    # --- lobby ---------------------------------------------------------------------------------

    async def summary(self, record: RoomRecord) -> dict[str, Any]:
        state = await self.store.load(record.id) if record.status is RoomStatus.LIVE else None
        host = await self.db.get_user(record.host_id)
        listeners = await self.store.audience.count(record.id) if state is not None else 0
        return _summary(record, host.display_name if host else record.host_id, state, listeners)

    async def live_page(self, viewer: Identity | None, offset: int, limit: int) -> LobbyPage:
        """Live rooms the viewer may see, busiest first: each batch is one Redis pipeline and
        two SQL queries, however many rooms it holds."""
        rooms: list[dict[str, Any]] = []
        position = offset
        for _ in range(LOBBY_BATCHES):
            ids = await self.store.ranked_live_rooms(position, limit)
            states = await self.store.load_many(ids)
            counts = await self.store.audience.counts(ids)
            records = await self.db.rooms_with_hosts(ids)
            followers = await self._followers(
                viewer, [(records[i][0], states.get(i)) for i in ids if i in records]
            )
            hidden = [i for i in ids if i in records
                      and records[i][0].visibility.value != Visibility.OPEN.value]
            listening = (await self.store.audience.listening_in(hidden, viewer.user_id)
                         if viewer is not None and hidden else set())
            for room_id in ids:
                position += 1
                state = states.get(room_id)
                if room_id not in records or state is None or not state.live:
                    continue  # ended between the ranking and this read
                record, host_name = records[room_id]
                if room_id not in listening and not _may_see(viewer, record, state, followers):
                    continue
                rooms.append(_summary(record, host_name, state, counts.get(room_id, 0)))
                if len(rooms) == limit:
                    return LobbyPage(rooms, str(position))
            if len(ids) < limit:
                return LobbyPage(rooms, None)
        return LobbyPage(rooms, str(position))

    async def scheduled_page(self, viewer: Identity | None, offset: int, limit: int) -> LobbyPage:
        viewer_id = viewer.user_id if viewer and not viewer.is_guest else None
        rows = await self.db.scheduled_page(viewer_id, offset, limit + 1)
        rooms = [_summary(record, host_name, None, 0) for record, host_name in rows[:limit]]
        return LobbyPage(rooms, str(offset + limit) if len(rows) > limit else None)


def _moderator_ids(state: RoomState) -> list[str]:
    ids: list[str] = [p.user_id for p in state.moderators()]
    return ids if state.host_id in ids else [*ids, state.host_id]


def _may_see(
    viewer: Identity | None, record: RoomRecord, state: RoomState | None, followers: set[str]
) -> bool:
    """Whether ``viewer`` may join (so may see) the room, invite links aside."""
    if record.visibility.value == Visibility.OPEN.value:
        return True
    if viewer is None:
        return False
    if viewer.user_id == record.host_id or (state and state.get(viewer.user_id)):
        return True
    if viewer.is_guest or record.visibility.value != Visibility.SOCIAL.value:
        return False
    deciders = set(_moderator_ids(state)) if state else {record.host_id}
    return bool(deciders & followers)


def _summary(
    record: RoomRecord, host_name: str, state: RoomState | None, listeners: int
) -> dict[str, Any]:
    status = record.status
    if state is not None and not state.live:
        # Ended in the live state (the authority), which SQL records just after the
        # room_ended event went out: a client that asks at once must not read "live".
        status, state = RoomStatus.ENDED, None
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
        "host": {"id": record.host_id, "display_name": host_name},
        "status": status.value,
        "scheduled_start": _iso(record.scheduled_start),
        "started_at": _iso(record.started_at),
        "ended_at": _iso(record.ended_at),
        "speakers": speakers,
        "speaker_count": len(speakers),
        "listener_count": listeners if state else 0,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
