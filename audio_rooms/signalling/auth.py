"""Who is on the other end of a request: a session token from the body of a WebSocket join,
an ``Authorization: Bearer`` header (API clients), or the HttpOnly session cookie (browsers)."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from audio_rooms import errors
from audio_rooms.accounts.tokens import Identity, TokenSigner, authenticate
from audio_rooms.db.database import Database
from audio_rooms.state.revocations import GuestRevocations

COOKIE = "ar_session"
MAX_TOKEN_LENGTH = 2048


class Authenticator:
    def __init__(
        self,
        db: Database,
        signer: TokenSigner,
        cookie_secure: bool,
        revocations: GuestRevocations,
    ) -> None:
        self.db = db
        self.signer = signer
        self.cookie_secure = cookie_secure
        self.revocations = revocations

    def token_of(self, connection: HTTPConnection, token: str | None = None) -> str | None:
        if token:
            return token
        header = connection.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip() or None
        return connection.cookies.get(COOKIE) or None

    async def identify(self, connection: HTTPConnection, token: str | None = None) -> Identity:
        found = self.token_of(connection, token)
        if not found:
            raise errors.NotAuthenticated("Sign in, or enter as a guest.")
        if len(found) > MAX_TOKEN_LENGTH:
            raise errors.NotAuthenticated("That session token is not valid.")
        identity = await authenticate(found, self.db, self.signer)
        if identity.is_guest and await self.revocations.is_revoked(identity.user_id):
            raise errors.NotAuthenticated("you have been signed out")
        return identity

    async def identify_optional(self, connection: HTTPConnection) -> Identity | None:
        try:
            return await self.identify(connection)
        except errors.NotAuthenticated:
            return None

    def set_cookie(self, response: Response, token: str, max_age: int) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=max_age,
            httponly=True,
            secure=self.cookie_secure,
            samesite="lax",
            path="/",
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
