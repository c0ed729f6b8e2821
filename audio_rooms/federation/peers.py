"""Which servers this deployment talks to, where they are, and their published keys.

An operator allowlists peers by server name (``AUDIO_ROOMS_FEDERATION_ALLOW``; ``*`` allows any
server not denied) and may deny some (``AUDIO_ROOMS_FEDERATION_DENY``, which always wins). The
same lists can be changed on a running deployment with ``audio-rooms federation allow|deny|forget
SERVER``: those entries live in the database (``federation_peers``) and every node reads them
again every :data:`OVERRIDES_EVERY` seconds (``overrides``); a denial from either place wins. A
peer is found at ``https://<name>`` unless ``AUDIO_ROOMS_FEDERATION_PEER_URLS`` says otherwise
(``name=url``, for private networks and tests). Its keys come from its
``/.well-known/audio-rooms``, cached for :data:`KEY_TTL` and fetched again at most every
:data:`REFETCH_AFTER` when a request names a key not in the cache (a rotation).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from audio_rooms.federation.keys import PublicKey
from audio_rooms.federation.signing import PeerUnreachable, ServerNotAllowed

OVERRIDES_EVERY = 5.0
KEY_TTL = 300.0
REFETCH_AFTER = 10.0
MAX_DOCUMENT = 64 * 1024
WELL_KNOWN = "/.well-known/audio-rooms"


@dataclass(frozen=True)
class PeerPolicy:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    urls: dict[str, str] = field(default_factory=dict)
    # server -> "allow" | "deny", from the database (the CLI), refreshed in place.
    overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls, allow: Sequence[str], deny: Sequence[str], urls: Sequence[str]
    ) -> PeerPolicy:
        mapping = {}
        for entry in urls:
            name, _, url = entry.partition("=")
            if name and url:
                mapping[name.strip().lower()] = url.strip().rstrip("/")
        return cls(tuple(a.lower() for a in allow), tuple(d.lower() for d in deny), mapping)

    def allows(self, server: str) -> bool:
        server = server.lower()
        override = self.overrides.get(server)
        if server in self.deny or override == "deny":
            return False
        return "*" in self.allow or server in self.allow or override == "allow"

    def check(self, server: str) -> None:
        if not self.allows(server):
            raise ServerNotAllowed(f"This server does not federate with {server}.")

    def url(self, server: str) -> str:
        return self.urls.get(server.lower(), f"https://{server}")


class KeyDirectory:
    """Peers' published keys, fetched from their well-known documents."""

    def __init__(self, policy: PeerPolicy, timeout: float = 5.0) -> None:
        self.policy = policy
        self._timeout = timeout
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def keys(self, server: str, kid: str | None = None) -> dict[str, Any]:
        """``server``'s keys by kid (fetched again if ``kid`` is not among them)."""
        now = time.monotonic()
        cached = self._cache.get(server)
        if cached is not None:
            fetched_at, keys = cached
            fresh = now - fetched_at < KEY_TTL
            if fresh and (kid is None or kid in keys or now - fetched_at < REFETCH_AFTER):
                return keys
        keys = await self._fetch(server)
        self._cache[server] = (now, keys)
        return keys

    async def _fetch(self, server: str) -> dict[str, Any]:
        url = self.policy.url(server) + WELL_KNOWN
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(url)
            if response.status_code != 200 or len(response.content) > MAX_DOCUMENT:
                raise PeerUnreachable(f"{server} did not publish its keys.")
            document = response.json()
        except (httpx.HTTPError, ValueError):
            raise PeerUnreachable(f"{server} could not be reached.") from None
        if not isinstance(document, dict) or document.get("server_name") != server:
            raise PeerUnreachable(f"{server} published keys under another name.")
        keys: dict[str, Any] = {}
        for entry in document.get("keys", [])[:8]:
            try:
                key = PublicKey.from_wire(entry)
            except ValueError:
                continue
            if key.kid.startswith(server + "#"):
                keys[key.kid] = key.key
        return keys
