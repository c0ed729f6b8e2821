"""ICE servers handed to clients, with time-limited TURN credentials.

The TURN credentials follow coturn's REST-API scheme (``use-auth-secret``): the username is
``<expiry unix time>:<user id>`` and the password is base64(HMAC-SHA1(shared secret, username)).
coturn checks them with the same secret, so the server never stores TURN passwords and a leaked
credential stops working when it expires.
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


def client_ice_servers(
    stun_urls: tuple[str, ...],
    turn_urls: tuple[str, ...],
    turn_secret: str | None,
    turn_ttl: int,
    user: str | None,
) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username, credential = turn_credentials(turn_secret, user or "anonymous", turn_ttl)
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers
