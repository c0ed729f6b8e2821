"""Everything a participant can ask of a room, as values.

``Join`` carries facts the domain cannot look up itself (it does no I/O): whether the host or
one of the room's moderators follows the joiner, whether they hold a current invite link, and
whether they are banned (in durable storage, or, for a guest, by address for this live room). The
signalling layer gathers them; the rules that use them live in :mod:`transitions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# Reactions are a closed set: free text here would be a side channel around moderation. Each
# has a stable name, in the order clients show them: the web client's translations and test ids
# key on the name (it gets this table from /api/config).
REACTION_NAMES = {
    "clap": "👏", "heart": "❤️", "laugh": "😂", "fire": "🔥",
    "thumbs": "👍", "pray": "🙏", "wow": "😮", "party": "🎉",
}
REACTIONS = frozenset(REACTION_NAMES.values())


@dataclass(frozen=True, slots=True)
class Action:
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class TargetedAction(Action):
    target: str


@dataclass(frozen=True, slots=True)
class Join(Action):
    name: ClassVar[str] = "join"
    display_name: str
    is_guest: bool
    followed_by_moderator: bool = False
    has_invite: bool = False
    banned: bool = False


@dataclass(frozen=True, slots=True)
class Leave(Action):
    name: ClassVar[str] = "leave"
    reason: str = "left"  # "left" | "timeout"


@dataclass(frozen=True, slots=True)
class RaiseHand(Action):
    name: ClassVar[str] = "raise_hand"


@dataclass(frozen=True, slots=True)
class LowerHand(Action):
    """Lower your own hand (no target) or, as a moderator, someone else's."""

    name: ClassVar[str] = "lower_hand"
    target: str | None = None


@dataclass(frozen=True, slots=True)
class InviteToSpeak(TargetedAction):
    name: ClassVar[str] = "invite_to_speak"


@dataclass(frozen=True, slots=True)
class AcceptInvitation(Action):
    name: ClassVar[str] = "accept_invitation"


@dataclass(frozen=True, slots=True)
class DeclineInvitation(Action):
    name: ClassVar[str] = "decline_invitation"


@dataclass(frozen=True, slots=True)
class MoveToAudience(TargetedAction):
    name: ClassVar[str] = "move_to_audience"


@dataclass(frozen=True, slots=True)
class MakeModerator(TargetedAction):
    name: ClassVar[str] = "make_moderator"


@dataclass(frozen=True, slots=True)
class UnmakeModerator(TargetedAction):
    name: ClassVar[str] = "unmake_moderator"


@dataclass(frozen=True, slots=True)
class Mute(TargetedAction):
    name: ClassVar[str] = "mute"


@dataclass(frozen=True, slots=True)
class Unmute(TargetedAction):
    name: ClassVar[str] = "unmute"


@dataclass(frozen=True, slots=True)
class Remove(TargetedAction):
    name: ClassVar[str] = "remove"


@dataclass(frozen=True, slots=True)
class Ban(TargetedAction):
    name: ClassVar[str] = "ban"


@dataclass(frozen=True, slots=True)
class EndRoom(Action):
    name: ClassVar[str] = "end_room"


@dataclass(frozen=True, slots=True)
class SetInterconnected(Action):
    """Open this room to listeners from other deployments (docs/federation.md), or close it."""

    name: ClassVar[str] = "set_interconnected"
    enabled: bool


@dataclass(frozen=True, slots=True)
class SetAccountsOnly(Action):
    """Keep guests out of this live room from now on (or let them in again)."""

    name: ClassVar[str] = "set_accounts_only"
    enabled: bool


@dataclass(frozen=True, slots=True)
class RotateInvite(Action):
    """Invalidate every invite link handed out so far; a new one must be fetched."""

    name: ClassVar[str] = "rotate_invite"
