"""What happened in a room, as values that go out to every participant's connection.

Each event knows its audience: most go to everyone in the room, but the hand queue and
invitations are shown only to moderators and the person concerned (a listener's raised hand is
nobody else's business).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Audience(StrEnum):
    ALL = "all"
    MODERATORS = "moderators"  # moderators, plus the event's subject


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    subject: str | None = None  # the participant the event is about
    data: dict[str, Any] = field(default_factory=dict)
    audience: Audience = Audience.ALL

    def to_wire(self, version: int) -> dict[str, Any]:
        message: dict[str, Any] = {"type": self.type, "version": version}
        if self.subject is not None:
            message["user_id"] = self.subject
        message.update(self.data)
        return message

    def to_record(self) -> dict[str, Any]:
        return {"t": self.type, "s": self.subject, "d": self.data, "a": self.audience.value}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        return cls(record["t"], record["s"], record["d"], Audience(record["a"]))


def participant_joined(participant_wire: dict[str, Any], user_id: str) -> Event:
    return Event("participant_joined", user_id, {"participant": participant_wire})


def participant_left(user_id: str, reason: str, listener: bool = False) -> Event:
    """A listener's departure is the audience tier's business (counted, not announced); it
    is an event only for the moderators who had their raised hand or invitation in view."""
    audience = Audience.MODERATORS if listener else Audience.ALL
    return Event("participant_left", user_id, {"reason": reason}, audience)


def role_changed(
    user_id: str, role: str, by: str | None, participant_wire: dict[str, Any] | None = None
) -> Event:
    """``participant`` rides along when someone comes up from the audience: clients hold no
    listener details but their own and the first pages."""
    data: dict[str, Any] = {"role": role, "by": by}
    if participant_wire is not None:
        data["participant"] = participant_wire
    return Event("role_changed", user_id, data)


def hand_raised(user_id: str, participant_wire: dict[str, Any]) -> Event:
    return Event("hand_raised", user_id, {"participant": participant_wire},
                 Audience.MODERATORS)


def hand_lowered(user_id: str, by: str | None) -> Event:
    return Event("hand_lowered", user_id, {"by": by}, Audience.MODERATORS)


def invited(user_id: str, by: str, participant_wire: dict[str, Any]) -> Event:
    return Event("invited", user_id, {"by": by, "participant": participant_wire},
                 Audience.MODERATORS)


def invitation_declined(user_id: str) -> Event:
    return Event("invitation_declined", user_id, audience=Audience.MODERATORS)


def mute_changed(user_id: str, self_muted: bool, muted_by_moderator: bool, by: str) -> Event:
    return Event(
        "mute_changed",
        user_id,
        {"self_muted": self_muted, "muted_by_moderator": muted_by_moderator, "by": by},
    )


def participant_removed(user_id: str, by: str, banned: bool) -> Event:
    return Event("participant_removed", user_id, {"by": by, "banned": banned})


def interconnected_changed(enabled: bool, by: str) -> Event:
    return Event("interconnected_changed", None, {"enabled": enabled, "by": by})


def accounts_only_changed(enabled: bool, by: str) -> Event:
    return Event("accounts_only_changed", None, {"enabled": enabled, "by": by})


def invite_rotated(by: str) -> Event:
    return Event("invite_rotated", None, {"by": by}, Audience.MODERATORS)


def room_ended(reason: str, by: str | None) -> Event:
    return Event("room_ended", None, {"reason": reason, "by": by})
