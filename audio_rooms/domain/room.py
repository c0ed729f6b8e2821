"""Room state: the participants with their roles, the hand queue, invitations and bans.

States are immutable values. ``participants`` is a dict kept in join order and never mutated
after construction: transitions copy it. The state store relies on that to write only the
participants whose object changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NewType

from audio_rooms.domain.roles import LiveStatus, Role, Visibility

UserId = NewType("UserId", str)
RoomId = NewType("RoomId", str)


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: UserId
    display_name: str
    role: Role
    is_guest: bool
    joined_at: float
    role_since: float
    self_muted: bool = True
    muted_by_moderator: bool = False

    @property
    def may_speak(self) -> bool:
        """Whether the media plane may forward this participant's microphone right now."""
        return self.role.on_stage and not self.self_muted and not self.muted_by_moderator

    def to_wire(self, hand_raised: bool = False) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "role": self.role.value,
            "is_guest": self.is_guest,
            "self_muted": self.self_muted,
            "muted_by_moderator": self.muted_by_moderator,
            "hand_raised": hand_raised,
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "u": self.user_id,
            "n": self.display_name,
            "r": self.role.value,
            "g": self.is_guest,
            "j": self.joined_at,
            "s": self.role_since,
            "m": self.self_muted,
            "M": self.muted_by_moderator,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Participant:
        return cls(
            user_id=UserId(data["u"]),
            display_name=data["n"],
            role=Role(data["r"]),
            is_guest=bool(data["g"]),
            joined_at=float(data["j"]),
            role_since=float(data["s"]),
            self_muted=bool(data["m"]),
            muted_by_moderator=bool(data["M"]),
        )


@dataclass(frozen=True, slots=True)
class Limits:
    max_speakers: int = 20
    max_listeners: int = 5000


@dataclass(frozen=True, slots=True)
class RoomState:
    room_id: RoomId
    title: str
    visibility: Visibility
    host_id: UserId
    created_at: float
    limits: Limits = Limits()
    status: LiveStatus = LiveStatus.LIVE
    version: int = 0
    participants: dict[UserId, Participant] = field(default_factory=dict)
    hand_queue: tuple[UserId, ...] = ()
    invitations: frozenset[UserId] = frozenset()
    removed: frozenset[UserId] = frozenset()  # removed or banned: may not rejoin this room
    end_reason: str | None = None
    accounts_only: bool = False  # a moderator closed the door to guests
    interconnected: bool = False  # the host let other deployments' users in (federation)
    invite_epoch: int = 0  # part of every invite link's MAC: rotating it voids older links

    @property
    def live(self) -> bool:
        return self.status is LiveStatus.LIVE

    def get(self, user_id: str) -> Participant | None:
        return self.participants.get(UserId(user_id))

    def count(self, on_stage: bool) -> int:
        return sum(1 for p in self.participants.values() if p.role.on_stage == on_stage)

    def moderators(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.role.moderates]

    def snapshot(self, viewer: str | None) -> dict[str, Any]:
        """What ``viewer`` may see: the hand queue is for moderators (and your own hand)."""
        me = self.get(viewer) if viewer else None
        moderator_view = bool(me and me.role.moderates)
        hands = set(self.hand_queue)
        return {
            "id": self.room_id,
            "title": self.title,
            "visibility": self.visibility.value,
            "host_id": self.host_id,
            "status": self.status.value,
            "version": self.version,
            "participants": [
                p.to_wire(
                    hand_raised=p.user_id in hands and (moderator_view or p.user_id == viewer)
                )
                for p in self.participants.values()
            ],
            "hand_queue": list(self.hand_queue) if moderator_view else [],
            "invited": bool(viewer and viewer in self.invitations),
            "accounts_only": self.accounts_only,
            "interconnected": self.interconnected,
            "limits": {
                "max_speakers": self.limits.max_speakers,
                "max_listeners": self.limits.max_listeners,
            },
        }

    def meta_record(self) -> dict[str, Any]:
        """Everything but the participants, for the state store."""
        return {
            "room_id": self.room_id,
            "title": self.title,
            "visibility": self.visibility.value,
            "host_id": self.host_id,
            "created_at": self.created_at,
            "max_speakers": self.limits.max_speakers,
            "max_listeners": self.limits.max_listeners,
            "status": self.status.value,
            "version": self.version,
            "hand_queue": list(self.hand_queue),
            "invitations": sorted(self.invitations),
            "removed": sorted(self.removed),
            "end_reason": self.end_reason,
            "accounts_only": self.accounts_only,
            "interconnected": self.interconnected,
            "invite_epoch": self.invite_epoch,
        }

    @classmethod
    def from_records(
        cls, meta: dict[str, Any], participants: list[Participant]
    ) -> RoomState:
        ordered = sorted(participants, key=lambda p: (p.joined_at, p.user_id))
        return cls(
            room_id=RoomId(meta["room_id"]),
            title=meta["title"],
            visibility=Visibility(meta["visibility"]),
            host_id=UserId(meta["host_id"]),
            created_at=float(meta["created_at"]),
            limits=Limits(int(meta["max_speakers"]), int(meta["max_listeners"])),
            status=LiveStatus(meta["status"]),
            version=int(meta["version"]),
            participants={p.user_id: p for p in ordered},
            hand_queue=tuple(UserId(u) for u in meta["hand_queue"]),
            invitations=frozenset(UserId(u) for u in meta["invitations"]),
            removed=frozenset(UserId(u) for u in meta["removed"]),
            end_reason=meta.get("end_reason"),
            # Absent in rooms that went live before these fields existed.
            accounts_only=bool(meta.get("accounts_only", False)),
            interconnected=bool(meta.get("interconnected", False)),
            invite_epoch=int(meta.get("invite_epoch", 0)),
        )


def new_room(
    room_id: str,
    title: str,
    visibility: Visibility,
    host_id: str,
    now: float,
    limits: Limits | None = None,
) -> RoomState:
    """A live room with nobody in it yet; the host takes the host role when they join."""
    return RoomState(
        room_id=RoomId(room_id),
        title=title,
        visibility=visibility,
        host_id=UserId(host_id),
        created_at=now,
        limits=limits or Limits(),
    )
