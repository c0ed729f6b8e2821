"""Accounts run against a real database, as in tests/db (same fixture, same variable), and
settings with a fixed secret so tests can also sign with a wrong one.

Set ``AUDIO_ROOMS_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`` to run every
database test against PostgreSQL as well. Each PostgreSQL test gets a schema of its own (through
the connection's search_path), dropped afterwards, so tests never see each other's rows and a
shared test database is left as it was found.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audio_rooms.accounts.hashpool import HashPool
from audio_rooms.settings import Settings

SERVER = "test.example"


SECRET = "s" * 48


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        server_name=SERVER,
        secret_key=SECRET,
        session_ttl=3600,
    )


@pytest.fixture
def hashes() -> Iterator[HashPool]:
    pool = HashPool(concurrency=2, queue=4, per_address=2)
    yield pool
    pool.close()
