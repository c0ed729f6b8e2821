"""Federation's HTTP routes: the well-known document and the server-to-server endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from audio_rooms.federation.service import PREFIX, Federation


def _federation(request: Request) -> Federation:
    federation: Federation = request.app.state.services.federation
    return federation


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


routes = [
    Route("/.well-known/audio-rooms", well_known),
    Route(PREFIX + "/ping", ping, methods=["POST"]),
]
