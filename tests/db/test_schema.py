from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlmodel import SQLModel

from audio_rooms.db import Database, schema
from audio_rooms.db.engine import make_engine, normalise_url, utcnow


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
        with db.runner.engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar_one()
        assert mode == "wal"
        assert foreign_keys == 1
    finally:
        db.close()


async def test_restart_keeps_data_at_the_newest_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rooms.db'}"
    first = await Database.open(url)
    user = await first.create_user("sara", "Sara", "hash", "fa", "test.example")
    first.close()

    second = await Database.open(url)
    try:
        assert await second.get_user(user.id) == user
        assert second.upgrade_schema() == schema.newest_revision()
    finally:
        second.close()


async def test_migrations_build_exactly_the_tables_the_code_uses(db: Database) -> None:
    # On both backends: a database built by the migrations is the one tables.py describes, so
    # a table change without its migration fails here.
    with db.runner.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def _make_pre_alembic_database(engine: Engine, version: int = 0) -> None:
    """What every release before alembic left behind: the tables of the initial revision (not
    those added since) and ``schema_version``."""
    initial = {"users", "rooms", "bans", "moderation_log", "follows", "auth_sessions"}
    SQLModel.metadata.create_all(
        engine, tables=[t for t in SQLModel.metadata.sorted_tables if t.name in initial]
    )
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)")
        )
        connection.execute(
            text("INSERT INTO schema_version (id, version) VALUES (1, :v)"), {"v": version}
        )
        connection.execute(
            text(
                "INSERT INTO users (id, handle, display_name, password_hash, locale, created_at)"
                " VALUES ('old@test.example', 'old', 'Old Timer', 'hash', 'en', :at)"
            ),
            {"at": utcnow().replace(tzinfo=None)},
        )


async def test_a_database_from_before_alembic_is_adopted_with_its_data(database_url: str) -> None:
    url = database_url
    engine = make_engine(url)
    _make_pre_alembic_database(engine)
    engine.dispose()

    db = await Database.open(url)
    try:
        user = await db.get_user("old@test.example")
        assert user is not None and user.display_name == "Old Timer"
        # And it keeps working as a database of this release.
        room = await db.create_room("Still here", "", "open", user.id, None, start_now=True)
        assert (await db.get_room(room.id)) == room
        with db.runner.engine.connect() as connection:
            assert not inspect(connection).has_table("schema_version")
            revision = MigrationContext.configure(connection).get_current_revision()
        assert revision == schema.newest_revision()
    finally:
        db.close()
    # A second start finds nothing left to adopt.
    again = await Database.open(url)
    again.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'rooms.db'}")
    try:
        schema.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(schema.SchemaTooNew):
            schema.upgrade(engine)
    finally:
        engine.dispose()


def test_a_pre_alembic_database_at_an_unknown_version_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rooms.db'}")
    try:
        _make_pre_alembic_database(engine, version=3)
        with pytest.raises(schema.SchemaTooNew):
            schema.upgrade(engine)
    finally:
        engine.dispose()


async def test_nodes_starting_together_on_a_fresh_database_all_come_up(database_url: str) -> None:
    first, second = await asyncio.gather(Database.open(database_url), Database.open(database_url))
    try:
        user = await first.create_user("sara", "Sara", "hash", "fa", "test.example")
        assert await second.get_user(user.id) == user
    finally:
        first.close()
        second.close()
