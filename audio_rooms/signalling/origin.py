"""Same-origin: pages of other sites cannot act with a visitor's session.

The session cookie is ``SameSite=Lax``, which keeps it off cross-site POSTs but not off requests
from *same-site* pages (a sibling subdomain, a page on another port of the host) nor off every
WebSocket handshake. So the server checks the ``Origin`` header itself:

- on the WebSocket upgrade (browsers always send ``Origin`` there), and
- on every state-changing request (POST, PUT, PATCH, DELETE) that is not authenticated with an
  ``Authorization`` header: those are the ones a browser can be made to send with its cookie.
  A bearer token is never attached by a browser on its own, so such a request cannot be forged.

An allowed origin is the server's own (the ``Origin`` names the host the request was sent to,
its ``Host`` header) or one listed in ``AUDIO_ROOMS_ALLOWED_ORIGINS``. Requests with no
``Origin`` come from programs, not from pages (browsers send it on every cross-origin POST and
WebSocket), and pass, unless ``Sec-Fetch-Site`` says a browser sent them from another site.
A refusal is ``403 cross_origin``; for a WebSocket, the handshake is refused with that response.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from audio_rooms import errors

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_allowed(headers: Headers, allowed: tuple[str, ...]) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return headers.get("sec-fetch-site") not in ("cross-site", "same-site")
    origin = origin.strip().lower()
    if origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    host = headers.get("host", "").strip().lower()
    # "null" (sandboxed frames, opaque origins) has no scheme and never matches.
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


class SameOrigin:
    """ASGI middleware enforcing the rules in the module's docstring."""

    def __init__(self, app: ASGIApp, allowed_origins: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if not origin_allowed(Headers(scope=scope), self.allowed):
                await self._refuse_websocket(scope, receive, send)
                return
        elif scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = Headers(scope=scope)
            if "authorization" not in headers and not origin_allowed(headers, self.allowed):
                await _refusal()(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _refuse_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect: the handshake request, answered below
        if "websocket.http.response" in scope.get("extensions", {}):
            response = _refusal()
            await send({
                "type": "websocket.http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            })
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send({"type": "websocket.close", "code": 1008})


def _refusal() -> JSONResponse:
    error = errors.CrossOrigin("Requests from other sites are refused.")
    return JSONResponse(error.to_wire(), status_code=error.http_status)
