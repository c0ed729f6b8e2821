"""Security headers on every HTTP response.

The web client loads nothing from elsewhere and has no inline scripts or styles, so the policy
can be strict. ``'wasm-unsafe-eval'`` lets the page compile WebAssembly (the vendored Opus decoder
of the listen fallback, where the browser has no WebCodecs); it allows no JavaScript eval.
``Referrer-Policy: same-origin`` keeps invite tokens in room links from leaking
to other sites through the Referer header. (Not ``no-referrer``: under it browsers send
``Origin: null`` on the client's own POSTs, which the same-origin check must refuse.)

Framing: no page may be framed (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``) except the
embed page (``/embed/r/{id}``), which the origins in ``AUDIO_ROOMS_EMBED_ORIGINS`` may frame
(docs/embedding.md). Its microphone is never asked for: the embed page listens only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    b"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
    b"img-src 'self' data:; "
    b"media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors "
)
COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
HEADERS = [
    (b"content-security-policy", POLICY + b"'none'"),
    *COMMON,
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
]
EMBED_PREFIX = "/embed/"


def embed_headers(origins: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """The embed page's: framed by ``origins`` (and the server itself), never the mic."""
    ancestors = " ".join(("'self'", *origins)).encode()
    return [
        (b"content-security-policy", POLICY + ancestors),
        *COMMON,
        (b"permissions-policy", b"microphone=(), camera=(), geolocation=()"),
    ]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, embed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.embed = embed_headers(embed_origins) if embed_origins else HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = self.embed if scope["path"].startswith(EMBED_PREFIX) else HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
