"""Sign up, sign in, sign out, and guest entry: the account flows the HTTP API exposes.

Login rate limiting is not here: it lives in Redis with the rest of the live state, in front of
these functions. Every hash and verification runs on the bounded password-hash pool, never on
the event loop nor on the database's threads; ``address`` is the client's, for the pool's
per-address share.
"""

from __future__ import annotations

import logging

from audio_rooms.accounts import passwords
from audio_rooms.accounts.handles import (
    clean_display_name,
    normalise_handle,
    validate_handle,
    validate_locale,
)
from audio_rooms.accounts.hashpool import HashPool
from audio_rooms.accounts.tokens import Identity, TokenClaims, signer_for
from audio_rooms.db import Database, Locale, UserRecord
from audio_rooms.errors import InvalidCredentials
from audio_rooms.settings import Settings

log = logging.getLogger(__name__)

GUEST_TTL = 12 * 3600
"""Long enough for a long evening in one room; a guest just picks a name again afterwards."""

_WRONG = "wrong handle or password"


async def sign_up(
    db: Database,
    settings: Settings,
    hashes: HashPool,
    address: str,
    handle: str,
    display_name: str,
    password: str,
    locale: str,
) -> tuple[Identity, str]:
    """Create an account and sign it in; InvalidField, WeakPassword or HandleTaken on bad
    input."""
    handle = validate_handle(handle)
    display_name = clean_display_name(display_name)
    chosen_locale = validate_locale(locale)
    passwords.check_password_policy(password)
    password_hash = await hashes.run(
        address, passwords.hash_new_password, password, (handle, display_name)
    )
    user = await db.create_user(
        handle, display_name, password_hash, chosen_locale, settings.server_name
    )
    log.info("account %s created", user.id)
    return await _start_session(db, settings, user)


async def sign_in(
    db: Database, settings: Settings, hashes: HashPool, address: str, handle: str, password: str
) -> tuple[Identity, str]:
    """Sign in; InvalidCredentials, with one message, for an unknown handle or a wrong password."""
    if len(password) > passwords.PASSWORD_MAX:
        # No account can have it; refusing before hashing keeps huge inputs cheap.
        raise InvalidCredentials(_WRONG)
    user = await db.get_user_by_handle(normalise_handle(handle), settings.server_name)
    if user is None:
        # Take the time a real verification takes, so response time does not reveal whether
        # the handle exists, but without hashing: a flood of made-up handles then costs no
        # CPU or hashing memory and leaves the pool to real accounts. (Handles are public
        # anyway: profiles show them and sign-up answers `handle_taken`.)
        await hashes.imitate()
        raise InvalidCredentials(_WRONG)
    if not await hashes.run(address, passwords.verify_password, user.password_hash, password):
        log.info("sign-in to %s failed: wrong password", user.id)
        raise InvalidCredentials(_WRONG)
    if passwords.needs_rehash(user.password_hash):
        # The only moment we hold the plain password: upgrade old hashing parameters now.
        new_hash = await hashes.run(address, passwords.hash_password, password)
        await db.update_password_hash(user.id, new_hash)
    return await _start_session(db, settings, user)


async def sign_out(db: Database, settings: Settings, token: str) -> TokenClaims:
    """End the token's session; NotAuthenticated if the token is not genuine or has expired.

    A guest token has no session row: the claims returned let the caller deny-list it in the
    live state until it expires (:class:`~audio_rooms.state.revocations.GuestRevocations`).
    """
    claims = signer_for(settings).verify(token)
    if claims.session_id is not None:
        await db.revoke_session(claims.session_id)
    return claims


def enter_as_guest(settings: Settings, display_name: str, locale: str) -> tuple[Identity, str]:
    """A guest identity and token for listening to open rooms without an account."""
    signer = signer_for(settings)
    chosen_locale = validate_locale(locale)
    name = clean_display_name(display_name)
    guest_id = signer.new_guest_id()
    token = signer.issue_guest_token(guest_id, name, GUEST_TTL, chosen_locale)
    return Identity(guest_id, name, is_guest=True, locale=chosen_locale), token


async def _start_session(
    db: Database, settings: Settings, user: UserRecord
) -> tuple[Identity, str]:
    session = await db.create_session(user.id, settings.session_ttl)
    token = signer_for(settings).issue_user_token(session)
    return Identity(user.id, user.display_name, is_guest=False, locale=Locale(user.locale)), token
