"""The site's own name, colour and logo, and the web app manifest that makes it installable.

Operators brand a deployment with three settings (``brand_name``, ``brand_colour``,
``brand_logo``; docs/operations.md, "Branding"). The web client reads them from ``/api/config``
(``branding``); the manifest is built from them here, so that an installed app carries the
same name and colour as the page.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from audio_rooms.settings import LOGO_TYPES, Settings

LOGO_PATH = "/brand/logo"
FAVICON_PATH = "/favicon.svg"  # a file of the web client (web/favicon.svg)
BACKGROUND = "#f7f6f2"  # the page's --bg (web/style.css), shown while an installed app starts


PRODUCT_NAME = "Audio rooms"  # the manifest's name without brand_name (the page translates it)


def site_name(settings: Settings) -> str:
    return settings.brand_name or PRODUCT_NAME


def branding(settings: Settings) -> dict[str, Any]:
    """What ``/api/config`` tells the client in ``branding``."""
    return {
        # null without brand_name: the client shows the product's name in the reader's language.
        "name": settings.brand_name,
        "colour": settings.brand_colour,
        "logo": LOGO_PATH if settings.brand_logo else None,
    }


def manifest(settings: Settings) -> dict[str, Any]:
    """A web app manifest with what Chromium asks of an installable app: a name, an icon of
    any size (SVG), a start URL and a standalone display."""
    icons: list[dict[str, str]] = [
        {"src": FAVICON_PATH, "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
        # PNGs too: some launchers (and iOS) take no SVG. web/icon-*.png, drawn from the SVG.
        {"src": "/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
        {"src": "/icon-512.png", "sizes": "512x512", "type": "image/png", "purpose": "any"},
    ]
    if settings.brand_logo:
        kind = LOGO_TYPES[settings.brand_logo.suffix.lower()]
        icons.insert(0, {"src": LOGO_PATH, "sizes": "any", "type": kind, "purpose": "any"})
    name = site_name(settings)
    return {
        "name": name,
        "short_name": name[:12],
        "id": "/",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": settings.brand_colour,
        "background_color": BACKGROUND,
        "icons": icons,
    }


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


async def manifest_document(request: Request) -> Response:
    return JSONResponse(manifest(_settings(request)), media_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache"})


async def logo(request: Request) -> Response:
    path = _settings(request).brand_logo
    if path is None or not path.is_file():
        return JSONResponse({"code": "not_found", "message": "This site has no logo."}, 404)
    return FileResponse(path, media_type=LOGO_TYPES[path.suffix.lower()],
                        headers={"Cache-Control": "no-cache"})


routes = [
    Route("/manifest.webmanifest", manifest_document, methods=["GET"]),
    Route(LOGO_PATH, logo, methods=["GET"]),
]
