"""Every WebSocket message a client may send, as typed schemas; docs/protocol.md lists them all.

``parse()`` turns raw text into a message or raises a typed error (malformed_message,
unknown_message_type, invalid_field) that the connection reports without closing. Decoding
follows signalling/untrusted.py: no lone surrogates, no over-long integers, and an error quotes
no more of the input than a clipped field name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter, ValidationError

from audio_rooms import errors
from audio_rooms.domain import actions as a
from audio_rooms.signalling.untrusted import MAX_REF_CHARS, clip, decode, valid_ref

UserRef = Annotated[str, Field(min_length=1, max_length=300)]
Ref = Annotated[str | None, Field(default=None, max_length=MAX_REF_CHARS)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: Ref = None


class JoinMessage(Message):
    type: Literal["join"]
    token: Annotated[str | None, Field(default=None, max_length=2048)] = None
    invite: Annotated[str | None, Field(default=None, max_length=256)] = None


class PingMessage(Message):
    type: Literal["ping"]


class IceServersMessage(Message):
    """Asks for ICE servers with fresh TURN credentials, before the ones held expire."""

    type: Literal["ice_servers"]


class MediaOfferMessage(Message):
    type: Literal["media_offer"]
    sdp: Annotated[str, Field(min_length=1, max_length=32 * 1024)]


class SimpleAction(Message):
    type: Literal[
        "leave",
        "raise_hand",
        "accept_invitation",
        "decline_invitation",
        "end_room",
        "rotate_invite",
    ]


class InterconnectedMessage(Message):
    type: Literal["set_interconnected"]
    enabled: StrictBool


class AccountsOnlyMessage(Message):
    type: Literal["set_accounts_only"]
    enabled: StrictBool


class LowerHandMessage(Message):
    type: Literal["lower_hand"]
    user_id: UserRef | None = None


class TargetedMessage(Message):
    type: Literal[
        "invite_to_speak",
        "move_to_audience",
        "make_moderator",
        "unmake_moderator",
        "mute",
        "unmute",
        "remove",
        "ban",
    ]
    user_id: UserRef


class ReactionMessage(Message):
    type: Literal["reaction"]
    emoji: Annotated[str, Field(min_length=1, max_length=16)]


class AudiencePageMessage(Message):
    """A page of the audience in join order, after ``cursor`` (the last page's ``next``); or,
    with ``followed``, the listeners the asker follows."""

    type: Literal["audience_page"]
    cursor: Annotated[str | None, Field(default=None, max_length=320)] = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    followed: StrictBool = False


ClientMessage = Annotated[
    JoinMessage
    | PingMessage
    | IceServersMessage
    | MediaOfferMessage
    | SimpleAction
    | AccountsOnlyMessage
    | InterconnectedMessage
    | LowerHandMessage
    | TargetedMessage
    | ReactionMessage
    | AudiencePageMessage,
    Field(discriminator="type"),
]
CLIENT_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)

MESSAGE_TYPES = frozenset(
    {"join", "ping", "ice_servers", "media_offer", "lower_hand", "reaction", "set_accounts_only",
     "set_interconnected",
     "audience_page"}
    | set(SimpleAction.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]
    | set(TargetedMessage.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]
)

_SIMPLE: dict[str, a.Action] = {
    "leave": a.Leave(),
    "raise_hand": a.RaiseHand(),
    "accept_invitation": a.AcceptInvitation(),
    "decline_invitation": a.DeclineInvitation(),
    "end_room": a.EndRoom(),
    "rotate_invite": a.RotateInvite(),
}
_TARGETED: dict[str, type[a.TargetedAction]] = {
    "invite_to_speak": a.InviteToSpeak,
    "move_to_audience": a.MoveToAudience,
    "make_moderator": a.MakeModerator,
    "unmake_moderator": a.UnmakeModerator,
    "mute": a.Mute,
    "unmute": a.Unmute,
    "remove": a.Remove,
    "ban": a.Ban,
}


def parse(raw: str | bytes) -> Message:
    data = decode(raw)
    if not isinstance(data, dict):
        raise errors.MalformedMessage("A message is a JSON object with a \"type\".")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise errors.InvalidField("A message needs a string \"type\".", field="type")
    if kind not in MESSAGE_TYPES:
        raise errors.UnknownMessageType(f"Unknown message type {kind[:40]!r}.", ref=_ref(data))
    try:
        message: Message = CLIENT_MESSAGES.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = clip(".".join(str(part) for part in first["loc"][1:]) or "message")
        raise errors.InvalidField(
            f"Field {field!r}: {clip(first['msg'], 200)}.", field=field, ref=_ref(data)
        ) from None
    return message


def ref_of(raw: str | bytes) -> str | None:
    """The client's ref of a message that failed to parse, if a valid one can be read."""
    try:
        data = decode(raw)
    except errors.AudioRoomsError:
        return None
    return _ref(data) if isinstance(data, dict) else None


def _ref(data: dict[str, Any]) -> str | None:
    return valid_ref(data.get("ref"))


def to_action(message: Message) -> a.Action | None:
    """The domain action a message asks for, or None for messages that are not actions."""
    if isinstance(message, SimpleAction):
        return _SIMPLE[message.type]
    if isinstance(message, TargetedMessage):
        return _TARGETED[message.type](message.user_id)
    if isinstance(message, LowerHandMessage):
        return a.LowerHand(message.user_id)
    if isinstance(message, AccountsOnlyMessage):
        return a.SetAccountsOnly(message.enabled)
    if isinstance(message, InterconnectedMessage):
        return a.SetInterconnected(message.enabled)
    return None

