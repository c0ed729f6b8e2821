"""ICE servers handed to clients, with time-limited TURN credentials.

The TURN credentials follow coturn's REST-API scheme (``use-auth-secret``): the username is
``<expiry unix time>:<user id>`` and the password is base64(HMAC-SHA1(shared secret, username)).
coturn checks them with the same secret, so the server never stores TURN passwords and a leaked
credential stops working when it expires.

Credentials go only to participants of a live room (``welcome`` and the ``ice_servers`` reply on
the room WebSocket), never to anonymous callers: anyone holding one can relay through coturn
until it expires, so they are short-lived (``AUDIO_ROOMS_TURN_TTL``, 10 minutes by default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any


def turn_credentials(secret: str, user: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    expiry = int((now if now is not None else time.time()) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def stun_servers(stun_urls: tuple[str, ...]) -> list[dict[str, Any]]:
    """ICE servers anyone may be told about: STUN needs no credential."""
    return [{"urls": list(stun_urls)}] if stun_urls else []


def client_ice_servers(
    stun_urls: tuple[str, ...],
    turn_urls: tuple[str, ...],
    turn_secret: str | None,
    turn_ttl: int,
    user: str,
) -> list[dict[str, Any]]:
    """STUN, plus TURN with credentials for ``user``: for participants of a live room only."""
    servers = stun_servers(stun_urls)
    if turn_urls and turn_secret:
        username, credential = turn_credentials(turn_secret, user, turn_ttl)
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers
