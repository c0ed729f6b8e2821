"""The REST API under ``/api/``: accounts, rooms, follows and client configuration.

Every error is JSON ``{"code", "message"}`` with its HTTP status (see ``errors.py``); bodies
are size-limited and validated against the schemas below before anything else happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audio_rooms import errors
from audio_rooms.accounts import service as accounts
from audio_rooms.accounts.service import GUEST_TTL
from audio_rooms.accounts.tokens import Identity
from audio_rooms.addresses import client_key
from audio_rooms.signalling import untrusted
from audio_rooms.signalling.client_config import client_config

if TYPE_CHECKING:
    from audio_rooms.services import Services

MAX_BODY = 16 * 1024

Model = TypeVar("Model", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignUp(Body):
    handle: Annotated[str, Field(max_length=64)]
    display_name: Annotated[str, Field(max_length=128)]
    password: Annotated[str, Field(max_length=256)]
    locale: Annotated[str, Field(max_length=8)] = "fa"


class SignIn(Body):
    handle: Annotated[str, Field(max_length=64)]
    password: Annotated[str, Field(max_length=256)]


class Guest(Body):
    display_name: Annotated[str, Field(max_length=128)]
    locale: Annotated[str, Field(max_length=8)] = "fa"


class InviteLink(Body):
    rotate: bool = False


class NewRoom(Body):
    title: Annotated[str, Field(max_length=200)]
    description: Annotated[str, Field(max_length=2000)] = ""
    visibility: Annotated[str, Field(max_length=16)] = "open"
    scheduled_start: AwareDatetime | None = None

    @field_validator("scheduled_start")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # An offset can carry 0001-01-01 or 9999-12-31 past the range datetime can hold.
        try:
            return value.astimezone(UTC) if value is not None else None
        except OverflowError:
            raise ValueError("out of range") from None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _body(request: Request, model: type[Model]) -> Model:
    raw = b""
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise errors.MessageTooLarge(f"Request bodies are limited to {MAX_BODY} bytes.")
    except ClientDisconnect:
        # The client went, or was cut off for sending its body too slowly: nobody to answer.
        raise errors.BadRequest("The request body did not arrive.") from None
    # Only JSON: a page of another site can send text/plain or form bodies without asking (no
    # CORS preflight), never application/json. An empty body (every field optional, as in
    # `invite-link`) carries nothing to forge and needs no type.
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if raw and media_type != "application/json":
        raise errors.UnsupportedMediaType("Send the body as application/json.")
    data = untrusted.decode(raw or b"{}")
    if not isinstance(data, dict):
        raise errors.MalformedMessage("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = untrusted.clip(".".join(str(p) for p in first["loc"]) or "body")
        message = untrusted.clip(first["msg"], 200)
        raise errors.InvalidField(f"Field {field!r}: {message}.", field=field) from None


def _user(identity: Identity, handle: str | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": identity.user_id,
        "display_name": identity.display_name,
        "is_guest": identity.is_guest,
        "locale": identity.locale.value,
    }
    if not identity.is_guest:
        user["handle"] = handle or identity.user_id.split("@", 1)[0]
    return user


# --- accounts ----------------------------------------------------------------------------------


async def sign_up(request: Request) -> Response:
    services = _services(request)
    body = await _body(request, SignUp)
    address = _client_address(request)
    await services.signup_limit.hit(address)
    identity, token = await accounts.sign_up(
        services.db, services.settings, services.hashes, address,
        body.handle, body.display_name, body.password, body.locale,
    )
    return _signed_in(services, identity, token, 201)


async def sign_in(request: Request) -> Response:
    services = _services(request)
    body = await _body(request, SignIn)
    address = _client_address(request)
    # Across handles first: one address trying many handles is the flood; per handle second,
    # so that guessing one account's password stays slow even from many addresses' worth.
    await services.login_address_limit.hit(address)
    await services.login_limit.hit(f"{address}:{body.handle.strip().lower()[:64]}")
    identity, token = await accounts.sign_in(
        services.db, services.settings, services.hashes, address, body.handle, body.password
    )
    return _signed_in(services, identity, token, 200)


async def guest(request: Request) -> Response:
    services = _services(request)
    body = await _body(request, Guest)
    await services.guest_limit.hit(_client_address(request))
    identity, token = accounts.enter_as_guest(services.settings, body.display_name, body.locale)
    response = JSONResponse({"user": _user(identity), "token": token})
    services.auth.set_cookie(response, token, GUEST_TTL)
    return response


def _signed_in(services: Services, identity: Identity, token: str, status: int) -> Response:
    response = JSONResponse({"user": _user(identity), "token": token}, status_code=status)
    services.auth.set_cookie(response, token, services.settings.session_ttl)
    return response


async def sign_out(request: Request) -> Response:
    services = _services(request)
    token = services.auth.token_of(request)
    if token:
        try:
            claims = await accounts.sign_out(services.db, services.settings, token)
        except errors.NotAuthenticated:
            claims = None  # an expired or forged token is as good as signed out
        if claims is not None and claims.is_guest:
            await services.revocations.revoke(claims.subject, claims.expires_at)
    response = Response(status_code=204)
    services.auth.clear_cookie(response)
    return response


async def me(request: Request) -> Response:
    identity = await _services(request).auth.identify(request)
    return JSONResponse({"user": _user(identity)})


async def session(request: Request) -> Response:
    """Who this browser is, if anyone: a signed-out visit is an answer (``user: null``), not a
    401, so that a page checking on load logs no error in the browser's console."""
    identity = await _services(request).auth.identify_optional(request)
    return JSONResponse({"user": _user(identity) if identity else None})


# --- configuration -----------------------------------------------------------------------------


async def config(request: Request) -> Response:
    return JSONResponse(client_config(_services(request).settings))


# --- rooms -------------------------------------------------------------------------------------


async def list_rooms(request: Request) -> Response:
    services = _services(request)
    status = request.query_params.get("status", "live")
    if status not in ("live", "scheduled"):
        raise errors.InvalidField("status is live or scheduled.", field="status")
    limit = _bounded_int(request, "limit", 20, 1, services.settings.lobby_max_page_size)
    offset = _bounded_int(request, "cursor", 0, 0, 1_000_000)
    viewer = await services.auth.identify_optional(request)
    if status == "live":
        page = await services.rooms.live_page(viewer, offset, limit)
    else:
        page = await services.rooms.scheduled_page(viewer, offset, limit)
    return JSONResponse({"rooms": page.rooms, "next_cursor": page.next_cursor})


def _bounded_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise errors.InvalidField(f"{name} is a whole number from {low} to {high}.", field=name)
    return int(raw)


async def create_room(request: Request) -> Response:
    services = _services(request)
    identity = await services.auth.identify(request)
    body = await _body(request, NewRoom)
    await services.room_create_limit.hit(identity.user_id)
    await services.room_address_limit.hit(_client_address(request))
    record = await services.rooms.create(
        identity, body.title, body.description, body.visibility, body.scheduled_start
    )
    return JSONResponse({"room": await services.rooms.summary(record)}, status_code=201)


async def get_room(request: Request) -> Response:
    services = _services(request)
    viewer = await services.auth.identify_optional(request)
    invite = request.query_params.get("invite")
    room = await services.rooms.visible_summary(
        viewer, request.path_params["room_id"][:64], invite[:64] if invite else None
    )
    return JSONResponse({"room": room})


async def room_audience(request: Request) -> Response:
    """The audience a page at a time, in join order (docs/protocol.md, "The audience"), to
    whoever may see the room; ``followed=true`` lists the listeners the viewer follows."""
    services = _services(request)
    viewer = await services.auth.identify_optional(request)
    room_id = request.path_params["room_id"][:64]
    invite = request.query_params.get("invite")
    room = await services.rooms.visible_summary(viewer, room_id, invite[:64] if invite else None)
    limit = _bounded_int(request, "limit", 50, 1, 100)
    cursor = request.query_params.get("cursor") or None
    followed = request.query_params.get("followed", "false")
    if followed not in ("true", "false"):
        raise errors.InvalidField("followed is true or false.", field="followed")
    audience = services.rooms.audience
    if room["status"] != "live":
        return JSONResponse({"count": 0, "listeners": [], "next": None})
    if followed == "true":
        if viewer is None or viewer.is_guest:
            return JSONResponse({"count": await audience.store.audience.count(room_id),
                                 "listeners": [], "next": None})
        page = await audience.followed(room_id, viewer.user_id, limit)
    else:
        if cursor is not None and len(cursor) > 320:
            raise errors.InvalidField("That cursor is not one this server gave.", field="cursor")
        try:
            page = await audience.page(room_id, cursor, limit)
        except ValueError:
            raise errors.InvalidField("That cursor is not one this server gave.",
                                      field="cursor") from None
    return JSONResponse(page.to_wire())


async def start_room(request: Request) -> Response:
    services = _services(request)
    identity = await services.auth.identify(request)
    record = await services.rooms.start(identity, request.path_params["room_id"][:64])
    return JSONResponse({"room": await services.rooms.summary(record)})


async def invite_link(request: Request) -> Response:
    services = _services(request)
    identity = await services.auth.identify(request)
    room_id = request.path_params["room_id"][:64]
    state = await services.rooms.live_state(room_id)
    body = await _body(request, InviteLink)
    me_in_room = state.get(identity.user_id)
    if identity.user_id != state.host_id and not (me_in_room and me_in_room.role.moderates):
        raise errors.NotPermitted("Only the host and moderators share invite links.")
    if body.rotate:
        token = await services.rooms.rotate_invite(identity, room_id)
    else:
        token = services.rooms.invite_token(room_id, state.invite_epoch)
    return JSONResponse({"url": f"/r/{room_id}?invite={token}", "invite": token})


# --- people ------------------------------------------------------------------------------------


async def get_user(request: Request) -> Response:
    services = _services(request)
    user_id = request.path_params["user_id"][:300]
    record = await services.db.get_user(user_id)
    if record is None:
        raise errors.UserNotFound("No such user.")
    return JSONResponse(
        {
            "user": {
                "id": record.id,
                "handle": record.handle,
                "display_name": record.display_name,
                "followers": await services.db.followers_count(record.id),
            }
        }
    )


async def follow(request: Request) -> Response:
    services = _services(request)
    identity = await services.auth.identify(request)
    if identity.is_guest:
        raise errors.AccountRequired("Sign in to follow people.")
    user_id = request.path_params["user_id"][:300]
    if await services.db.get_user(user_id) is None:
        raise errors.UserNotFound("No such user.")
    if request.method == "DELETE":
        await services.db.unfollow(identity.user_id, user_id)
    else:
        await services.db.follow(identity.user_id, user_id)
    return Response(status_code=204)


def _client_address(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


# What the OpenAPI document (signalling/schema.py) says each endpoint takes besides its path.
REQUEST_BODIES: dict[Callable[[Request], Awaitable[Response]], type[Body]] = {
    sign_up: SignUp,
    sign_in: SignIn,
    guest: Guest,
    create_room: NewRoom,
    invite_link: InviteLink,
}
QUERY_PARAMETERS: dict[Callable[[Request], Awaitable[Response]], tuple[str, ...]] = {
    list_rooms: ("status", "limit", "cursor"),
    get_room: ("invite",),
}

routes = [
    Route("/api/auth/signup", sign_up, methods=["POST"]),
    Route("/api/auth/signin", sign_in, methods=["POST"]),
    Route("/api/auth/signout", sign_out, methods=["POST"]),
    Route("/api/auth/me", me, methods=["GET"]),
    Route("/api/auth/session", session, methods=["GET"]),
    Route("/api/auth/guest", guest, methods=["POST"]),
    Route("/api/config", config, methods=["GET"]),
    Route("/api/rooms", list_rooms, methods=["GET"]),
    Route("/api/rooms", create_room, methods=["POST"]),
    Route("/api/rooms/{room_id}", get_room, methods=["GET"]),
    Route("/api/rooms/{room_id}/audience", room_audience, methods=["GET"]),
    Route("/api/rooms/{room_id}/start", start_room, methods=["POST"]),
    Route("/api/rooms/{room_id}/invite-link", invite_link, methods=["POST"]),
    Route("/api/users/{user_id}", get_user, methods=["GET"]),
    Route("/api/users/{user_id}/follow", follow, methods=["POST", "DELETE"]),
]
