"""Every WebSocket message the server sends, as typed models; docs/protocol.md lists them all.

messages.py holds the other direction. Each model declares its fields in wire order, and
``wire()`` gives the plain dict that goes out, so the encoded text is the same as the
hand-written dicts it replaced. Messages are validated as they are built, except three whose
``of()`` takes plain values the server made itself: a welcome or snapshot carries a room of up
to thousands of participants, built by the domain from typed state, and validating it again
for every join would cost more than encoding it; ICE servers come from the settings. The tests
check what a real room sends against the schema instead.

Room deltas are not built here: the domain encodes each event once per published message
(domain/events.py, which must not import signalling). Their models below describe that
encoding for the schema, and the tests check every event the domain makes against them.

Also here: the error catalogue (every code a client may see, with its HTTP status, derived from
the error classes) and the JSON Schema of the whole WebSocket protocol, served at
``/api/schema/ws.json``.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema

from audio_rooms import errors
from audio_rooms.sfu import errors as sfu_errors  # noqa: F401  (its classes join the catalogue)
from audio_rooms.signalling import messages
from audio_rooms.signalling.untrusted import MAX_REF_CHARS

RoleName = Literal["host", "moderator", "speaker", "listener"]
Ref = Annotated[str | None, Field(max_length=MAX_REF_CHARS)]


# --- shapes carried inside messages ------------------------------------------------------------


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class You(Shape):
    user_id: str
    display_name: str
    role: RoleName
    is_guest: bool


class Participant(Shape):
    user_id: str
    display_name: str
    role: RoleName
    is_guest: bool
    self_muted: bool
    muted_by_moderator: bool
    hand_raised: bool


class RoomLimits(Shape):
    max_speakers: int
    max_listeners: int


class AudienceListPage(Shape):
    listeners: list[Participant]
    next: str | None  # pass back as ``cursor`` to read on; null at the end


class AudienceView(Shape):
    count: int  # listeners in the room now
    sample: list[Participant]  # a few faces: the moderators' follows first, then the newest
    page: AudienceListPage  # the first page, in join order


class RoomSnapshot(Shape):
    id: str
    title: str
    visibility: Literal["open", "social", "closed"]
    host_id: str
    status: Literal["live", "ended"]
    version: int
    participants: list[Participant]
    hand_queue: list[str]
    invited: bool
    accounts_only: bool
    interconnected: bool
    limits: RoomLimits
    audience: AudienceView


class IceServer(Shape):
    urls: list[str] | str
    # TURN only; a STUN server's entry leaves both out.
    username: str | SkipJsonSchema[None] = None
    credential: str | SkipJsonSchema[None] = None


class ActiveSpeaker(Shape):
    user_id: str
    level: Annotated[float, Field(ge=0, le=1)]


# --- replies and notices -----------------------------------------------------------------------


class ServerMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The message as it is encoded: its fields in declaration order."""
        return self.model_dump()


class _Trusted(ServerMessage):
    """Built by ``of()`` from plain values that go out as they are, without validation: the
    server made them (the room snapshot, the ICE servers of its own settings)."""

    def wire(self) -> dict[str, Any]:
        return dict(self)


class Welcome(_Trusted):
    type: Literal["welcome"] = "welcome"
    you: You
    room: RoomSnapshot
    version: int
    resumed: bool
    ice_servers: list[IceServer]
    ice_servers_ttl: int
    slots: int

    @classmethod
    def of(
        cls,
        you: You,
        room: dict[str, Any],
        version: int,
        resumed: bool,
        ice_servers: list[dict[str, Any]],
        ice_servers_ttl: int,
        slots: int,
    ) -> Self:
        return cls.model_construct(
            you=you.model_dump(), room=room, version=version, resumed=resumed,
            ice_servers=ice_servers, ice_servers_ttl=ice_servers_ttl, slots=slots,
        )


class Snapshot(_Trusted):
    """A fresh room state that replaces the client's (after a role change shows it more)."""

    type: Literal["snapshot"] = "snapshot"
    room: RoomSnapshot
    version: int

    @classmethod
    def of(cls, room: dict[str, Any], version: int) -> Self:
        return cls.model_construct(room=room, version=version)


class Pong(ServerMessage):
    type: Literal["pong"] = "pong"
    ref: Ref


class Ack(ServerMessage):
    type: Literal["ack"] = "ack"
    ref: Ref
    version: int


class IceServers(_Trusted):
    type: Literal["ice_servers"] = "ice_servers"
    ice_servers: list[IceServer]
    ice_servers_ttl: int
    ref: Ref

    @classmethod
    def of(cls, ice_servers: list[dict[str, Any]], ice_servers_ttl: int, ref: str | None) -> Self:
        return cls.model_construct(
            ice_servers=ice_servers, ice_servers_ttl=ice_servers_ttl, ref=ref
        )


class MediaAnswer(ServerMessage):
    type: Literal["media_answer"] = "media_answer"
    sdp: str
    ref: Ref


class MediaFailed(ServerMessage):
    """The participant's media transport ended: by itself (sfu.transport.Loss), or because it
    must move to another node (docs/cascade.md). The client offers again in every case."""

    type: Literal["media_failed"] = "media_failed"
    reason: Literal[
        "connect_timeout", "connection_failed", "connection_closed",
        "origin_moved", "media_moved", "media_node_lost",
    ]

    @classmethod
    def of(cls, reason: str) -> Self:
        return cls.model_validate({"reason": reason})


class Reactions(ServerMessage):
    type: Literal["reactions"] = "reactions"
    counts: dict[str, Annotated[int, Field(gt=0)]]


class ActiveSpeakers(ServerMessage):
    type: Literal["active_speakers"] = "active_speakers"
    speakers: list[ActiveSpeaker]


class Audience(_Trusted):
    """The room's listener count and sample: at most once a tick per node, when they change."""

    type: Literal["audience"] = "audience"
    count: int
    sample: list[Participant]

    @classmethod
    def of(cls, glance: dict[str, Any]) -> Self:
        return cls.model_construct(count=glance["count"], sample=glance["sample"])


class AudiencePage(_Trusted):
    type: Literal["audience_page"] = "audience_page"
    ref: Ref
    count: int
    listeners: list[Participant]
    next: str | None

    @classmethod
    def of(cls, page: dict[str, Any], ref: str | None) -> Self:
        return cls.model_construct(ref=ref, count=page["count"], listeners=page["listeners"],
                                   next=page["next"])


class Reconnect(ServerMessage):
    type: Literal["reconnect"] = "reconnect"
    after_ms: int


class Error(ServerMessage):
    type: Literal["error"] = "error"
    code: str
    message: str
    details: dict[str, Any] | None = None  # left out of the wire when there are none
    ref: Ref

    @classmethod
    def of(cls, error: errors.AudioRoomsError, ref: str | None) -> Self:
        # The ref is the message's own field; a copy in details would only repeat it.
        details = {k: v for k, v in error.details.items() if k != "ref"} or None
        return cls(code=error.code, message=error.message, details=details, ref=ref)

    def wire(self) -> dict[str, Any]:
        body = self.model_dump()
        if self.details is None:
            del body["details"]
        return body


# --- room deltas (encoded by domain/events.py) -------------------------------------------------


class Delta(ServerMessage):
    version: int


class AboutSomeone(Delta):
    user_id: str


class ParticipantJoined(AboutSomeone):
    type: Literal["participant_joined"]
    participant: Participant


class ParticipantLeft(AboutSomeone):
    type: Literal["participant_left"]
    reason: Literal["left", "timeout"]


class RoleChanged(AboutSomeone):
    type: Literal["role_changed"]
    role: RoleName
    by: str | None  # None: the automatic hand-over when the last moderator left
    # Who came up from the audience (clients hold no listeners' details but their pages).
    participant: Participant | SkipJsonSchema[None] = None


class HandRaised(AboutSomeone):
    type: Literal["hand_raised"]
    participant: Participant


class HandLowered(AboutSomeone):
    type: Literal["hand_lowered"]
    by: str | None


class Invited(AboutSomeone):
    type: Literal["invited"]
    by: str
    participant: Participant


class InvitationDeclined(AboutSomeone):
    type: Literal["invitation_declined"]


class MuteChanged(AboutSomeone):
    type: Literal["mute_changed"]
    self_muted: bool
    muted_by_moderator: bool
    by: str


class ParticipantRemoved(AboutSomeone):
    type: Literal["participant_removed"]
    by: str
    banned: bool


class InterconnectedChanged(Delta):
    type: Literal["interconnected_changed"]
    enabled: bool
    by: str


class AccountsOnlyChanged(Delta):
    type: Literal["accounts_only_changed"]
    enabled: bool
    by: str


class InviteRotated(Delta):
    type: Literal["invite_rotated"]
    by: str


class RoomEnded(Delta):
    type: Literal["room_ended"]
    reason: Literal["ended_by_moderator", "no_moderator", "ended_by_admin", "abandoned"]
    by: str | None


AnyServerMessage = Annotated[
    Welcome
    | Snapshot
    | Pong
    | Ack
    | IceServers
    | MediaAnswer
    | MediaFailed
    | Reactions
    | Audience
    | AudiencePage
    | ActiveSpeakers
    | Reconnect
    | Error
    | ParticipantJoined
    | ParticipantLeft
    | RoleChanged
    | HandRaised
    | HandLowered
    | Invited
    | InvitationDeclined
    | MuteChanged
    | ParticipantRemoved
    | AccountsOnlyChanged
    | InterconnectedChanged
    | InviteRotated
    | RoomEnded,
    Field(discriminator="type"),
]
SERVER_MESSAGES: TypeAdapter[AnyServerMessage] = TypeAdapter(AnyServerMessage)


# --- the error catalogue -----------------------------------------------------------------------


def error_catalogue() -> dict[str, int]:
    """Every error code a client may see, with its HTTP status, from the error classes.

    A class that names no code of its own (a family such as ``RoomError``) adds none.
    """
    found: dict[str, int] = {}
    pending: list[type[errors.AudioRoomsError]] = [errors.AudioRoomsError]
    while pending:
        cls = pending.pop(0)
        if "code" in vars(cls):
            found.setdefault(cls.code, cls.http_status)
        pending.extend(cls.__subclasses__())
    return found


# --- the protocol as a JSON Schema -------------------------------------------------------------

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF_TEMPLATE = "#/$defs/{model}"


@functools.cache
def websocket_schema() -> dict[str, Any]:
    """The WebSocket protocol, both directions: a message is one of ``client_to_server`` (see
    messages.py) or ``server_to_client`` (this module). Built once: it is fixed by the code."""
    defs: dict[str, Any] = {}
    directions: dict[str, Any] = {}
    for name, adapter in (("client_to_server", messages.CLIENT_MESSAGES),
                          ("server_to_client", SERVER_MESSAGES)):
        schema = adapter.json_schema(ref_template=_REF_TEMPLATE)
        defs.update(schema.pop("$defs", {}))
        directions[name] = schema
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "/api/schema/ws.json",
        "title": "audio-rooms room WebSocket (/ws/rooms/{room_id})",
        "description": "Text frames, each one JSON object with a `type`. docs/protocol.md "
                       "says what each message means and who may send it.",
        "$defs": {**defs, **directions},
        "oneOf": [{"$ref": _REF_TEMPLATE.format(model=name)} for name in directions],
    }


def message_types(direction: Literal["client_to_server", "server_to_client"]) -> set[str]:
    """The ``type`` values one direction of the schema allows."""
    return set(websocket_schema()["$defs"][direction]["discriminator"]["mapping"])
