"""What a client needs to know of this server before it joins anything (``GET /api/config``).

Everything the browser would otherwise copy by hand from the server (media slots, the message
size cap, the reaction set, the rules for handles, names, passwords and room titles) comes from
here, so that a change on the server cannot leave the client checking an old rule.
"""

from __future__ import annotations

from typing import Any

from audio_rooms.accounts.handles import DISPLAY_NAME_MAX, HANDLE_MAX, HANDLE_MIN, HANDLE_RE
from audio_rooms.accounts.passwords import PASSWORD_MAX, PASSWORD_MIN
from audio_rooms.db.tables import DESCRIPTION_MAX, TITLE_MAX
from audio_rooms.domain.actions import REACTION_NAMES
from audio_rooms.settings import Settings
from audio_rooms.signalling.branding import branding
from audio_rooms.signalling.connection import TERMINAL_CLOSE_CODES
from audio_rooms.turn import stun_servers

LOCALES = ("fa", "en")


def client_config(settings: Settings) -> dict[str, Any]:
    return {
        "server_name": settings.server_name,
        # The site's name, accent colour and logo path (signalling/branding.py).
        "branding": branding(settings),
        "slots": settings.media_slots,
        # Whether rooms here may be opened to other deployments (docs/federation.md).
        "federation": settings.federation_enabled,
        # STUN only: TURN credentials go to participants of a live room, in `welcome`.
        "ice_servers": stun_servers(settings.stun_urls),
        "max_message_bytes": settings.ws_max_message_bytes,
        "locales": list(LOCALES),
        # WebSocket close codes after which reconnecting is pointless, with their names.
        "terminal_close_codes": {str(int(c)): name for c, name in TERMINAL_CLOSE_CODES.items()},
        "reactions": [{"name": name, "emoji": emoji} for name, emoji in REACTION_NAMES.items()],
        "limits": {
            # Applies to the handle after lower-casing (handles are case-insensitive).
            "handle_pattern": HANDLE_RE.pattern,
            "handle_min": HANDLE_MIN,
            "handle_max": HANDLE_MAX,
            "display_name_max": DISPLAY_NAME_MAX,
            "password_min": PASSWORD_MIN,
            "password_max": PASSWORD_MAX,
            "title_max": TITLE_MAX,
            "description_max": DESCRIPTION_MAX,
        },
    }
