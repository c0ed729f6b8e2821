"""Federation's HTTP routes.

* ``/.well-known/audio-rooms``: who this server is and its public keys.
* ``/federation/v1/...``: signed server-to-server requests (service.py authenticates them).
* ``/api/federation/...``: this server's own users, joining rooms on other servers through it,
  and their consents (home.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audio_rooms.federation.home import RoomRef
from audio_rooms.federation.service import PREFIX, Federation
from audio_rooms.services import Services
from audio_rooms.signalling.api import _body, _client_address

MAX_SDP = 20_000


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _federation(request: Request) -> Federation:
    return _services(request).federation


async def well_known(request: Request) -> Response:
    """``/.well-known/audio-rooms``: who this server is and its public keys (no secrets)."""
    federation = _federation(request)
    base = federation.policy.url(federation.server_name)
    return JSONResponse(federation.well_known(base),
                        headers={"Cache-Control": "public, max-age=300"})


async def ping(request: Request) -> Response:
    """A signed no-op: proves both servers can reach and verify each other."""
    origin, _ = await _federation(request).authenticate(request)
    return JSONResponse({"server_name": _federation(request).server_name, "you": origin})


# --- signed: another server asks about a room here (origin.py) or tells about one (home.py) ---

Handler = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def _signed(pick: Callable[[Services], Handler]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        services = _services(request)
        origin, body = await services.federation.authenticate(request)
        room_id = request.path_params["room_id"]
        return JSONResponse(await pick(services)(origin, room_id, body))

    return endpoint


# --- this server's users -----------------------------------------------------------------------


class OfferBody(BaseModel):
    sdp: str = Field(min_length=1, max_length=MAX_SDP)


class ActBody(BaseModel):
    action: Literal["raise_hand", "lower_hand", "accept_invitation", "decline_invitation",
                    "mute", "unmute"]


async def consents(request: Request) -> Response:
    services = _services(request)
    who = await services.auth.identify(request)
    home = services.federated_home
    if request.method == "GET":
        return JSONResponse({"servers": await home.consents(who)})
    server = request.path_params.get("server", "")
    if request.method == "PUT":
        await home.give_consent(who, server)
    else:
        await home.withdraw_consent(who, server)
    return JSONResponse({"servers": await home.consents(who)})


async def remote_join(request: Request) -> Response:
    services = _services(request)
    who = await services.auth.identify(request)
    ref = RoomRef.parse(request.path_params["ref"])
    return JSONResponse(await services.federated_home.join(who, ref))


async def remote_room(request: Request) -> Response:
    services = _services(request)
    who = await services.auth.identify(request)
    ref = RoomRef.parse(request.path_params["ref"])
    return JSONResponse(await services.federated_home.state(who, ref))


async def remote_media(request: Request) -> Response:
    services = _services(request)
    who = await services.auth.identify(request)
    ref = RoomRef.parse(request.path_params["ref"])
    body = await _body(request, OfferBody)
    answer = await services.federated_home.offer(who, ref, body.sdp, _client_address(request))
    return JSONResponse({"sdp": answer})


async def remote_act(request: Request) -> Response:
    services = _services(request)
    who = await services.auth.identify(request)
    ref = RoomRef.parse(request.path_params["ref"])
    body = await _body(request, ActBody)
    return JSONResponse(await services.federated_home.act(who, ref, body.action))


async def remote_leave(request: Request) -> Response:
    services = _services(request)
    who = await services.auth.identify(request)
    await services.federated_home.leave(who, RoomRef.parse(request.path_params["ref"]))
    return JSONResponse({})


routes = [
    Route("/.well-known/audio-rooms", well_known),
    Route(PREFIX + "/ping", ping, methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/join",
          _signed(lambda s: s.federated_origin.join), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/leave",
          _signed(lambda s: s.federated_origin.leave), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/pipe",
          _signed(lambda s: s.federated_origin.pipe), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/refresh",
          _signed(lambda s: s.federated_origin.refresh), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/act",
          _signed(lambda s: s.federated_origin.act), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/uplink",
          _signed(lambda s: s.federated_origin.uplink), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/uplink-keys",
          _signed(lambda s: s.federated_origin.uplink_keys), methods=["POST"]),
    Route(PREFIX + "/rooms/{room_id}/dropped",
          _signed(lambda s: s.federated_home.dropped), methods=["POST"]),
    Route("/api/federation/consents", consents, methods=["GET"]),
    Route("/api/federation/consents/{server}", consents, methods=["PUT", "DELETE"]),
    Route("/api/federation/rooms/{ref}", remote_room, methods=["GET"]),
    Route("/api/federation/rooms/{ref}/join", remote_join, methods=["POST"]),
    Route("/api/federation/rooms/{ref}/media", remote_media, methods=["POST"]),
    Route("/api/federation/rooms/{ref}/act", remote_act, methods=["POST"]),
    Route("/api/federation/rooms/{ref}/leave", remote_leave, methods=["POST"]),
]
