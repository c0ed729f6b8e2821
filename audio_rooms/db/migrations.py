"""Schema creation and forward-only migrations, run on every start.

The scheme (also in docs/database.md): ``schema_version`` holds one number, the count of
:data:`MIGRATIONS` applied. A fresh database gets every table in its current shape from
``create_all`` and is stamped with ``len(MIGRATIONS)``. An existing database runs the migrations
it has not seen, in order, then ``create_all`` adds tables that are new in this release. All of it
runs in one transaction, so on PostgreSQL a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, inspect, select, text, update
from sqlmodel import SQLModel

from audio_rooms.db import tables

log = logging.getLogger(__name__)

Migration = Callable[[Connection], None]

MIGRATIONS: Sequence[Migration] = ()
"""Append only. Entry ``i`` takes a database from version ``i`` to ``i + 1``."""

# Arbitrary constant naming this application's schema lock in pg_advisory_xact_lock, so that
# nodes starting together against one PostgreSQL migrate one at a time.
_PG_SCHEMA_LOCK = 0x6175_6469_6F72


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


def upgrade(connection: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the schema up to date inside the caller's transaction; return the version reached."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
    version_table = SQLModel.metadata.tables[tables.SCHEMA_VERSION_TABLE]
    target = len(migrations)
    if not inspect(connection).has_table(tables.SCHEMA_VERSION_TABLE):
        SQLModel.metadata.create_all(connection)
        connection.execute(version_table.insert().values(id=1, version=target))
        log.info("created database schema at version %d", target)
        return target
    current = connection.execute(select(version_table.c.version)).scalar_one()
    if current > target:
        raise SchemaTooNew(
            f"database schema is at version {current}, this release knows only {target}: "
            "run the newer release or restore a backup"
        )
    for number in range(current, target):
        log.info("migrating database schema from version %d to %d", number, number + 1)
        migrations[number](connection)
        connection.execute(update(version_table).values(version=number + 1))
    SQLModel.metadata.create_all(connection)
    return target
