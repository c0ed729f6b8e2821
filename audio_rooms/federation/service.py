"""``Federation``: this deployment's side of server-to-server requests, both ways.

``request`` signs and sends one to a peer; ``authenticate`` checks one that arrived (policy,
destination, signature, age, nonce) and returns the peer's name and the JSON body. Every
refusal is a typed error with its own code (signing.py), sent back as JSON like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.asyncio as aioredis
from starlette.requests import Request

from audio_rooms import errors
from audio_rooms.federation import signing
from audio_rooms.federation.keys import ServerKeys
from audio_rooms.federation.peers import OVERRIDES_EVERY, KeyDirectory, PeerPolicy
from audio_rooms.federation.signing import FederationDisabled, PeerUnreachable, ReplayedRequest

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
NONCE_TTL = 120  # seconds a nonce is remembered: twice the accepted skew
PREFIX = "/federation/v1"


def _nonce_key(origin: str, nonce: str) -> str:
    return f"ar:fed:nonce:{origin}:{nonce}"


class PeerRefused(errors.AudioRoomsError):
    """The peer answered with a typed refusal; ``code`` and status are the peer's."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]
        self.http_status = status  # type: ignore[misc]


class Federation:
    def __init__(
        self, enabled: bool, keys: ServerKeys, policy: PeerPolicy, redis: aioredis.Redis | None,
        timeout: float = 10.0,
    ) -> None:
        self.enabled = enabled
        self.keys = keys
        self.policy = policy
        self.directory = KeyDirectory(policy)
        self.redis = redis
        self.timeout = timeout

    async def watch_peers(self, read: Callable[[], Awaitable[dict[str, str]]]) -> None:
        """Keep the operator's CLI decisions (``read``: from the database) in the policy."""
        while True:
            try:
                overrides = await read()
            except Exception:
                logger.warning("federation: could not read the peers the operator set")
            else:
                if overrides != self.policy.overrides:
                    self.policy.overrides.clear()
                    self.policy.overrides.update(overrides)
            await asyncio.sleep(OVERRIDES_EVERY)

    @property
    def server_name(self) -> str:
        return self.keys.server_name

    def well_known(self, base_url: str) -> dict[str, Any]:
        return {
            "server_name": self.server_name,
            "federation": self.enabled,
            "endpoint": base_url.rstrip("/") + PREFIX,
            "keys": [k.to_wire() for k in self.keys.published(datetime.now(UTC))],
        }

    async def request(self, peer: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``peer``'s ``/federation/v1{path}``, signed; its JSON answer."""
        if not self.enabled:
            raise FederationDisabled("Federation is off on this server.")
        self.policy.check(peer)
        url = self.policy.url(peer) + PREFIX + path
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = signing.sign(self.keys, "POST", url, data, peer)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, content=data, headers=headers)
            answer = response.json() if response.content else {}
        except (httpx.HTTPError, ValueError):
            raise PeerUnreachable(f"{peer} could not be reached.") from None
        if not isinstance(answer, dict):
            raise PeerUnreachable(f"{peer} sent an unreadable answer.")
        if response.status_code >= 400:
            raise PeerRefused(
                str(answer.get("code", "peer_error")), str(answer.get("message", "")),
                response.status_code,
            )
        return answer

    async def authenticate(self, request: Request) -> tuple[str, dict[str, Any]]:
        """The verified origin of a signed request, and its JSON body."""
        if not self.enabled:
            raise FederationDisabled("Federation is off on this server.")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise errors.MessageTooLarge("The request body is too large.")
        headers = {k.lower(): v for k, v in request.headers.items()}
        origin = signing.signed_origin(headers, self.server_name)
        self.policy.check(origin)
        url = self.policy.url(self.server_name) + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        kid = _keyid(headers.get("signature-input", ""))
        keys = await self.directory.keys(origin, kid)
        nonce = signing.verify(request.method, url, headers, body, origin, keys)
        fresh = self.redis is not None and await self.redis.set(
            _nonce_key(origin, nonce), 1, nx=True, ex=NONCE_TTL
        )
        if not fresh:
            raise ReplayedRequest("This request was already received.")
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            raise errors.MalformedMessage("The body is not JSON.") from None
        if not isinstance(data, dict):
            raise errors.MalformedMessage("The body must be a JSON object.")
        return origin, data


def _keyid(signature_input: str) -> str | None:
    marker = 'keyid="'
    start = signature_input.find(marker)
    if start < 0:
        return None
    end = signature_input.find('"', start + len(marker))
    return signature_input[start + len(marker):end] if end > 0 else None
