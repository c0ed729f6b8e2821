"""Password hashing with argon2id, and the password policy.

These functions are CPU-bound on purpose (tens of milliseconds, tens of MiB): callers on the
event loop run them on the password-hash pool (:mod:`audio_rooms.accounts.hashpool`), as
:mod:`audio_rooms.accounts.service` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from audio_rooms.errors import InvalidField, WeakPassword

PASSWORD_MIN = 8
PASSWORD_MAX = 128

MIN_STRENGTH = 2
"""zxcvbn's score (0-4) a new password needs. Scores 0 and 1 mean under a million guesses: the
leaked-password lists zxcvbn ships (and their l33t, reversed and keyboard-walk variants), names
and dates, or the person's own handle with a few digits. An online attacker who is rate limited
tries exactly those first."""

STRENGTH_CHECK_MAX = 72
"""zxcvbn refuses longer input (and its cost grows with length); a longer password is judged by
its first 72 characters, which is only stricter."""

# argon2-cffi's defaults are RFC 9106's second recommended option for argon2id (t=3, 64 MiB,
# p=4): memory-hard enough for a server, light enough for a laptop that hosts a community.
_hasher = PasswordHasher()


def check_password_policy(password: str) -> None:
    """Raise InvalidField unless the password is 8-128 characters long."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidField(
            f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters", field="password"
        )


def check_password_strength(password: str, user_inputs: Sequence[str] = ()) -> None:
    """Raise WeakPassword for one of the most common passwords, or an easy variant of one.

    ``user_inputs`` (handle, display name) count as known words: "sara1234" is weak for sara.
    Costs up to ~30 ms of CPU, so it runs where hashing runs, not on the event loop.
    """
    result = zxcvbn(password[:STRENGTH_CHECK_MAX], user_inputs=list(user_inputs))
    if int(result["score"]) < MIN_STRENGTH:
        raise WeakPassword(
            "This password is too common or too easy to guess; choose a longer, less "
            "predictable one.",
            field="password",
        )


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


def hash_new_password(password: str, user_inputs: Sequence[str] = ()) -> str:
    """The hash for a password someone is choosing now: length and strength both checked."""
    check_password_policy(password)
    check_password_strength(password, user_inputs)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True only for the right password; a corrupt or foreign hash is a mismatch, not a crash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's (or cannot be read)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
