"""The admin page's API (``/api/admin/...``): live rooms, accounts, server bans; end a room, ban
and unban an account. Every route is for server administrators only (``users.is_admin``,
granted by the CLI), checked here on each request against the database, so a role taken away
takes effect at once. The actions are :class:`audio_rooms.admin.Admin`'s, the CLI's own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audio_rooms import errors
from audio_rooms.admin import Admin, existing_user_id
from audio_rooms.services import Services
from audio_rooms.signalling.api import Body, _body  # one body reader: limits, JSON, errors


class BanBody(Body):
    reason: Annotated[str, Field(max_length=500)] = "banned by an administrator"


async def _admin(request: Request) -> tuple[Admin, str]:
    """The actions, if the request comes from a server administrator; else 401 or 403."""
    services: Services = request.app.state.services
    identity = await services.auth.identify(request)
    user = None if identity.is_guest else await services.db.get_user(identity.user_id)
    if user is None or not user.is_admin:
        raise errors.NotPermitted("Only server administrators may do this.")
    return Admin(services.settings, services.db, services.store), identity.user_id


async def whoami(request: Request) -> Response:
    _, user_id = await _admin(request)
    return JSONResponse({"user_id": user_id, "is_admin": True})


async def rooms(request: Request) -> Response:
    admin, _ = await _admin(request)
    return JSONResponse({"rooms": await admin.list_rooms()})


async def users(request: Request) -> Response:
    admin, _ = await _admin(request)
    listed = [{**row, "banned": row["banned"] == "yes", "admin": row["admin"] == "yes"}
              for row in await admin.list_users()]
    return JSONResponse({"users": listed})


async def end_room(request: Request) -> Response:
    admin, user_id = await _admin(request)
    await admin.end_room(request.path_params["room_id"], via=f"admin page: {user_id}")
    return JSONResponse({"ended": request.path_params["room_id"]})


async def ban(request: Request) -> Response:
    admin, user_id = await _admin(request)
    body = await _body(request, BanBody)
    handle = request.path_params["handle"]
    if await existing_user_id(admin.db, admin.settings, handle) == user_id:
        # It would sign them out everywhere, with nobody left to lift it but the CLI.
        raise errors.NotPermitted("Administrators cannot ban themselves.")
    banned, removed_from = await admin.ban_user(
        handle, body.reason, via=f"admin page: {user_id}")
    return JSONResponse({"banned": banned, "removed_from": removed_from})


async def unban(request: Request) -> Response:
    admin, _ = await _admin(request)
    user_id, lifted = await admin.unban_user(request.path_params["handle"])
    return JSONResponse({"unbanned": user_id, "was_banned": lifted})


REQUEST_BODIES: dict[Callable[[Request], Awaitable[Response]], type[Body]] = {ban: BanBody}

routes = [
    Route("/api/admin/me", whoami, methods=["GET"]),
    Route("/api/admin/rooms", rooms, methods=["GET"]),
    Route("/api/admin/users", users, methods=["GET"]),
    Route("/api/admin/rooms/{room_id}/end", end_room, methods=["POST"]),
    Route("/api/admin/users/{handle}/ban", ban, methods=["POST"]),
    Route("/api/admin/users/{handle}/unban", unban, methods=["POST"]),
]
