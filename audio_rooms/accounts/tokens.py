"""Signed, expiring session tokens, and turning one back into an Identity.

A token is ``v1.<payload>.<mac>``: the payload is URL-safe base64 of compact JSON, the MAC is
HMAC-SHA256 over ``v1.<payload>`` with a key derived from the server's secret. Tokens are not
encrypted, so they carry nothing private: a session id and user id, or a guest's id, display name
and locale, plus the expiry.

A user token is only as good as its session row: :func:`authenticate` checks the sessions table,
so signing out (revoking the row) ends the token before it expires. Guests have no row: a
signed-out guest token is deny-listed in Redis instead (``state/revocations.py``, checked by
``signalling/auth.py``). Each guest token has its own guest id, so the id names the token.

Tokens are credentials: nothing here logs one, and callers must not either.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audio_rooms.accounts.handles import clean_display_name
from audio_rooms.db import Database, Locale, SessionRecord
from audio_rooms.errors import NotAuthenticated
from audio_rooms.settings import Settings

log = logging.getLogger(__name__)

VERSION = "v1"
MAX_TOKEN_LENGTH = 2048
"""Longer input is refused before any decoding: nothing we issue comes close."""

# Derive the MAC key with a purpose label so the same configured secret can sign other things
# (cookies, server-to-server requests) without a token of one kind verifying as another.
_KEY_LABEL = b"audio-rooms/session-token/v1"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    """User id, or guest id (``guest-...@server``)."""
    expires_at: int
    """Unix seconds."""
    is_guest: bool
    session_id: str | None
    """Set for users, None for guests."""
    display_name: str | None
    """Set for guests (they have no row to read it from), None for users."""
    locale: Locale | None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end of a request or WebSocket."""

    user_id: str
    display_name: str
    is_guest: bool
    locale: Locale


class TokenSigner:
    """Issues and verifies tokens for one server with one secret."""

    def __init__(
        self, secret_key: str, server_name: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self.server_name = server_name
        self.clock = clock

    def issue_user_token(self, session: SessionRecord) -> str:
        """A token for a signed-in session; it expires with the session."""
        return self._sign(
            {"sub": session.user_id, "sid": session.id, "exp": int(session.expires_at.timestamp())}
        )

    def new_guest_id(self) -> str:
        return f"guest-{secrets.token_urlsafe(9)}@{self.server_name}"

    def issue_guest_token(
        self, guest_id: str, display_name: str, ttl: int, locale: Locale = Locale.EN
    ) -> str:
        """A token for a guest listener; raises InvalidField for a bad display name."""
        return self._sign(
            {
                "sub": guest_id,
                "guest": True,
                "name": clean_display_name(display_name),
                "loc": Locale(locale).value,
                "exp": int(self.clock()) + ttl,
            }
        )

    def verify(self, token: str) -> TokenClaims:
        """Return the claims of a genuine, unexpired token; raise NotAuthenticated otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise NotAuthenticated()
        version, _, rest = token.partition(".")
        payload, _, mac = rest.partition(".")
        if version != VERSION or not payload or not mac:
            raise NotAuthenticated()
        expected = self._mac(payload)
        try:
            given = _unb64(mac)
        except ValueError:
            raise NotAuthenticated() from None
        if not hmac.compare_digest(expected, given):
            raise NotAuthenticated()
        try:
            claims = _claims(json.loads(_unb64(payload)))
        except (ValueError, TypeError, KeyError):
            # A valid MAC over a bad payload means our own bug or a leaked key: worth a warning.
            log.warning("a correctly signed token had an unreadable payload")
            raise NotAuthenticated() from None
        if claims.expires_at <= self.clock():
            raise NotAuthenticated("your session has expired")
        return claims

    def _sign(self, body: dict[str, Any]) -> str:
        payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{VERSION}.{payload}.{_b64(self._mac(payload))}"

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, f"{VERSION}.{payload}".encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=8)
def signer_for(settings: Settings) -> TokenSigner:
    """The server's signer; cached because resolving the secret may read a file."""
    return TokenSigner(settings.resolved_secret_key(), settings.server_name)


async def authenticate(token: str, db: Database, signer: TokenSigner) -> Identity:
    """Who holds this token; NotAuthenticated if it is forged, expired, or signed out."""
    claims = signer.verify(token)
    if claims.is_guest:
        assert claims.display_name is not None and claims.locale is not None
        return Identity(claims.subject, claims.display_name, is_guest=True, locale=claims.locale)
    assert claims.session_id is not None
    session = await db.get_session(claims.session_id)
    now = datetime.fromtimestamp(signer.clock(), UTC)
    if session is None or session.user_id != claims.subject or not session.is_active(now):
        raise NotAuthenticated("you have been signed out")
    user = await db.get_user(session.user_id)
    if user is None:
        raise NotAuthenticated("you have been signed out")
    return Identity(user.id, user.display_name, is_guest=False, locale=user.locale)


def _claims(body: Any) -> TokenClaims:
    if not isinstance(body, dict):
        raise TypeError("token payload is not an object")
    subject, expires_at = body["sub"], body["exp"]
    if not isinstance(subject, str) or not isinstance(expires_at, int):
        raise TypeError("token subject or expiry has the wrong type")
    if body.get("guest") is True:
        name = body["name"]
        if not isinstance(name, str):
            raise TypeError("guest name is not a string")
        return TokenClaims(subject, expires_at, True, None, name, Locale(body["loc"]))
    session_id = body["sid"]
    if not isinstance(session_id, str):
        raise TypeError("session id is not a string")
    return TokenClaims(subject, expires_at, False, session_id, None, None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("not URL-safe base64") from exc
