"""Typed errors, each carrying the wire code and HTTP status it maps to.

Every error a client can see is one of these. The ``code`` is stable: clients (the web client's
translation catalogue among them) key on it, so renaming one is a protocol change.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AudioRoomsError(Exception):
    """Base of every error that is reported to a client."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message()
        self.details = details
        super().__init__(self.message)

    @classmethod
    def default_message(cls) -> str:
        return cls.code.replace("_", " ").capitalize() + "."

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


# --- input -------------------------------------------------------------------------------------


class BadRequest(AudioRoomsError):
    code = "bad_request"
    http_status = 400


class MalformedMessage(BadRequest):
    code = "malformed_message"


class UnknownMessageType(BadRequest):
    code = "unknown_message_type"


class InvalidField(BadRequest):
    code = "invalid_field"


class MessageTooLarge(BadRequest):
    code = "message_too_large"
    http_status = 413


class RateLimited(AudioRoomsError):
    code = "rate_limited"
    http_status = 429


# --- accounts ----------------------------------------------------------------------------------


class NotAuthenticated(AudioRoomsError):
    code = "not_authenticated"
    http_status = 401


class InvalidCredentials(AudioRoomsError):
    code = "invalid_credentials"
    http_status = 401


class HandleTaken(AudioRoomsError):
    code = "handle_taken"
    http_status = 409


class WeakPassword(InvalidField):
    """The password is long enough but among the most guessable ones."""

    code = "weak_password"


class AccountBanned(AudioRoomsError):
    """An operator banned this account from the whole server (``audio-rooms users ban``)."""

    code = "account_banned"
    http_status = 403


class AccountRequired(AudioRoomsError):
    """Guests may listen to open rooms; anything more needs an account."""

    code = "account_required"
    http_status = 403


class NotFound(AudioRoomsError):
    code = "not_found"
    http_status = 404


class UserNotFound(NotFound):
    code = "user_not_found"


class RoomNotFound(NotFound):
    code = "room_not_found"


# --- room domain -------------------------------------------------------------------------------


class RoomError(AudioRoomsError):
    http_status = 409


class NotPermitted(RoomError):
    """The actor's role does not allow the action."""

    code = "not_permitted"
    http_status = 403


class RoomEnded(RoomError):
    code = "room_ended"
    http_status = 410


class RoomNotLive(RoomError):
    code = "room_not_live"


class RoomFull(RoomError):
    code = "room_full"


class StageFull(RoomError):
    code = "stage_full"


class NotInRoom(RoomError):
    code = "not_in_room"
    http_status = 404


class AlreadyInRoom(RoomError):
    code = "already_in_room"


class Banned(RoomError):
    code = "banned"
    http_status = 403


class RemovedFromRoom(RoomError):
    """A moderator removed this user; they may not come back while the room is live."""

    code = "removed"
    http_status = 403


class NotAllowedIn(RoomError):
    """Visibility keeps this user out: a social room not followed, a closed room uninvited."""

    code = "not_allowed_in"
    http_status = 403


class GuestsOnlyListen(RoomError):
    """Guests have no account to answer for what they say: they listen, never go on stage."""

    code = "guests_only_listen"
    http_status = 403


class TooManyRooms(RoomError):
    """The host already has as many live and scheduled rooms as one account may hold."""

    code = "too_many_rooms"


class InvalidTarget(RoomError):
    """The action does not apply to that participant in their current state."""

    code = "invalid_target"


class NoInvitation(RoomError):
    code = "no_invitation"


class MutedByModerator(RoomError):
    code = "muted_by_moderator"
    http_status = 403


class VersionConflict(RoomError):
    """An atomic transition lost its race too many times in a row."""

    code = "version_conflict"
    http_status = 503


# --- media -------------------------------------------------------------------------------------


class MediaError(AudioRoomsError):
    code = "media_error"
    http_status = 400


class ServiceUnavailable(AudioRoomsError):
    code = "service_unavailable"
    http_status = 503


class Draining(ServiceUnavailable):
    code = "draining"


# --- the edge: connections and origins ---------------------------------------------------------


class CrossOrigin(AudioRoomsError):
    """A browser request from a page of another origin: refused so no other site (same-site
    sibling pages included) can act with a visitor's session cookie."""

    code = "cross_origin"
    http_status = 403


class UnsupportedMediaType(AudioRoomsError):
    code = "unsupported_media_type"
    http_status = 415


class TooManyConnections(AudioRoomsError):
    """The node's or the client address's share of connections or WebSockets is used up."""

    code = "too_many_connections"
    http_status = 429


class Busy(ServiceUnavailable):
    """Too much CPU- or memory-heavy work (password hashing) is queued; retry after a moment."""

    code = "busy"


class MediaNodeUnreachable(ServiceUnavailable):
    """The node chosen to carry a participant's media did not answer (docs/cascade.md)."""

    code = "media_node_unreachable"


def error_class(code: str) -> type[AudioRoomsError]:
    """The error class with wire code ``code`` (a refusal another node sent back over the bus),
    or :class:`AudioRoomsError` itself for a code this version does not know."""

    def walk(cls: type[AudioRoomsError]) -> type[AudioRoomsError] | None:
        for sub in cls.__subclasses__():
            if sub.code == code:
                return sub
            found = walk(sub)
            if found is not None:
                return found
        return None

    # The media plane's errors are defined in their own module; make sure they are known.
    import audio_rooms.sfu.errors  # noqa: F401

    return walk(AudioRoomsError) or AudioRoomsError
