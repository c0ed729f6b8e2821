"""Accounts for database tests; the ``db`` fixture itself is in tests/conftest.py.

Set ``AUDIO_ROOMS_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`` to run every
database test against PostgreSQL as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from audio_rooms.db import Database, UserRecord

SERVER = "test.example"


@pytest.fixture
def make_user(db: Database) -> Callable[..., Awaitable[UserRecord]]:
    """Create accounts on server ``test.example`` with distinct handles; they go away with the
    test's database."""
    made = 0

    async def make(handle: str | None = None, display_name: str = "Someone") -> UserRecord:
        nonlocal made
        made += 1
        return await db.create_user(
            handle or f"user{made}", display_name, "not-a-real-hash", "en", SERVER
        )

    return make
