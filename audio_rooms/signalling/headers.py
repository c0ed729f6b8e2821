"""Security headers on every HTTP response.

The web client loads nothing from elsewhere and has no inline scripts or styles, so the policy
can be strict. ``'wasm-unsafe-eval'`` lets the page compile WebAssembly (the vendored Opus decoder
of the listen fallback, where the browser has no WebCodecs); it allows no JavaScript eval.
``Referrer-Policy: same-origin`` keeps invite tokens in room links from leaking
to other sites through the Referer header. (Not ``no-referrer``: under it browsers send
``Origin: null`` on the client's own POSTs, which the same-origin check must refuse.)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
        b"img-src 'self' data:; "
        b"media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
