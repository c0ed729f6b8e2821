"""The schema on start: alembic migrations to the newest revision, run by every node.

All of it runs in one transaction; on PostgreSQL under an advisory lock as well, so nodes that
start together migrate one at a time and a failed migration leaves the schema as it was.
Databases made before alembic carry a ``schema_version`` table instead of ``alembic_version``;
their tables are exactly the initial revision, so they are stamped with it and migrate on.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
INITIAL_REVISION = "0001"
"""The schema of every database made before alembic (their ``schema_version`` was 0)."""
LEGACY_VERSION_TABLE = "schema_version"

# alembic's ``context`` and ``op`` are module globals: one migration at a time in a process.
_MIGRATING = threading.Lock()

# Arbitrary constant naming this application's schema lock in pg_advisory_xact_lock.
_PG_SCHEMA_LOCK = 0x6175_6469_6F72


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer release than this one."""


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, pointed at our migrations (and at ``connection`` if given)."""
    settings = Config()
    settings.set_main_option("script_location", str(MIGRATIONS))
    settings.attributes["connection"] = connection
    return settings


def newest_revision(scripts: ScriptDirectory | None = None) -> str:
    head = (scripts or ScriptDirectory.from_config(config())).get_current_head()
    assert head is not None  # the migrations directory ships with the package
    return head


def upgrade(engine: Engine) -> str:
    """Bring the schema up to date in one transaction; return the revision reached."""
    with _MIGRATING, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SCHEMA_LOCK}
            )
        settings = config(connection)
        scripts = ScriptDirectory.from_config(settings)
        if inspect(connection).has_table(LEGACY_VERSION_TABLE):
            _adopt_legacy(connection, settings)
        current = MigrationContext.configure(connection).get_current_revision()
        known = {script.revision for script in scripts.walk_revisions()}
        if current is not None and current not in known:
            raise SchemaTooNew(
                f"database schema is at revision {current!r}, which this release does not know: "
                "run the newer release or restore a backup"
            )
        head = newest_revision(scripts)
        if current != head:
            log.info("migrating database schema from %s to %s", current or "nothing", head)
            command.upgrade(settings, "head")
        return head


def _adopt_legacy(connection: Connection, settings: Config) -> None:
    version = connection.execute(text(f"SELECT version FROM {LEGACY_VERSION_TABLE}")).scalar()
    if version:
        raise SchemaTooNew(
            f"database schema is at version {version} of the pre-alembic scheme, which never "
            "had migrations: it was not made by a release of audio-rooms"
        )
    command.stamp(settings, INITIAL_REVISION)
    connection.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    log.info("database made before alembic: stamped with revision %s", INITIAL_REVISION)
