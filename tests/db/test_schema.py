from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from audio_rooms.db import Database, migrations
from audio_rooms.db.engine import normalise_url


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        Database("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        Database("mysql://u@h/db")


async def test_sqlite_file_and_directory_are_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "rooms.db"

    db = await Database.open(f"sqlite:///{path}")
    try:
        assert path.exists()
        with db._engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar_one()
        assert mode == "wal"
        assert foreign_keys == 1
    finally:
        db.close()


async def test_restart_keeps_data_and_schema_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rooms.db'}"
    first = await Database.open(url)
    user = await first.create_user("sara", "Sara", "hash", "fa", "test.example")
    first.close()

    second = await Database.open(url)
    try:
        assert await second.get_user(user.id) == user
        assert second.create_schema() == len(migrations.MIGRATIONS)
    finally:
        second.close()


def _add_column(connection: Connection) -> None:
    connection.execute(text("ALTER TABLE users ADD COLUMN bio VARCHAR(200)"))


def test_pending_migrations_run_once_in_order(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rooms.db'}")
    try:
        with engine.begin() as connection:
            assert migrations.upgrade(connection, ()) == 0
        with engine.begin() as connection:
            assert migrations.upgrade(connection, (_add_column,)) == 1
        with engine.begin() as connection:
            # Already at version 1: running again must not add the column twice.
            assert migrations.upgrade(connection, (_add_column,)) == 1
            columns = {row[1] for row in connection.execute(text("PRAGMA table_info(users)"))}
        assert "bio" in columns
    finally:
        engine.dispose()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rooms.db'}")
    try:
        with engine.begin() as connection:
            migrations.upgrade(connection, (_add_column,))
        with engine.begin() as connection, pytest.raises(migrations.SchemaTooNew):
            migrations.upgrade(connection, ())
    finally:
        engine.dispose()
