"""Accounts run against a real database, as in tests/db (same fixture, same variable), and
settings with a fixed secret so tests can also sign with a wrong one.

Set ``AUDIO_ROOMS_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`` to run every
database test against PostgreSQL as well. Each PostgreSQL test gets a schema of its own (through
the connection's search_path), dropped afterwards, so tests never see each other's rows and a
shared test database is left as it was found.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from audio_rooms.db import Database
from audio_rooms.settings import Settings

PG_URL_VARIABLE = "AUDIO_ROOMS_TEST_DATABASE_URL"
SERVER = "test.example"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = await Database.open(f"sqlite:///{tmp_path / 'test.db'}")
        try:
            yield database
        finally:
            database.close()
        return
    base_url = os.environ.get(PG_URL_VARIABLE)
    if not base_url:
        pytest.skip(f"{PG_URL_VARIABLE} is not set")
    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base_url else "?"
    url = f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        database = await Database.open(url)
        try:
            yield database
        finally:
            database.close()
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
