"""Password hashing with argon2id, and the password policy.

These functions are CPU-bound on purpose (tens of milliseconds, tens of MiB): callers on the
event loop run them in a worker thread, as :mod:`audio_rooms.accounts.service` does.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from audio_rooms.errors import InvalidField

PASSWORD_MIN = 8
PASSWORD_MAX = 128

# argon2-cffi's defaults are RFC 9106's second recommended option for argon2id (t=3, 64 MiB,
# p=4): memory-hard enough for a server, light enough for a laptop that hosts a community.
_hasher = PasswordHasher()


def check_password_policy(password: str) -> None:
    """Raise InvalidField unless the password is 8-128 characters long."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidField(
            f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters", field="password"
        )


def hash_password(password: str) -> str:
    check_password_policy(password)
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


@functools.cache
def dummy_hash() -> str:
    """A real hash of nothing anyone knows, verified against on unknown handles so that a
    sign-in takes as long whether or not the handle exists."""
    return _hasher.hash("no account has this password: it only costs the time a real one does")
