"""Engine construction from one URL: SQLite by default, PostgreSQL through psycopg 3.

Also home of :class:`UTCDateTime`, the one column type every timestamp uses, because the two
backends disagree about time zones and the rest of the code should never have to care.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.types import TypeDecorator

SQLITE_BUSY_TIMEOUT_MS = 5000


def normalise_url(url: str) -> str:
    """Point ``postgresql://`` (and the ``postgres://`` alias) URLs at the psycopg 3 driver.

    SQLAlchemy's bare ``postgresql://`` means psycopg2, which is not a dependency; operators write
    the URL their PostgreSQL documentation shows them, so we accept it as it is.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """Build an engine for ``url``; a SQLite file's directory is created if missing."""
    parsed = make_url(normalise_url(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed.render_as_string(hide_password=False), parsed.database)
    if backend == "postgresql":
        # Pre-ping because a PostgreSQL restart or an idle-timeout proxy silently kills pooled
        # connections; one cheap round trip beats a failed request.
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite or postgresql"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if not database or database == ":memory:":
        # Each pooled connection would get its own empty in-memory database.
        raise ValueError("an in-memory SQLite database is not supported: give a file path")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Work runs in a thread pool, so connections move between threads; the pool hands each one to
    # a single thread at a time, which is what sqlite3's same-thread check was guarding.
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL lets readers proceed while one writer commits; busy_timeout makes a second writer
            # wait instead of failing at once; SQLite enforces foreign keys only when asked.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in Python, whatever the backend stores.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are stored there as
    naive UTC. Either way, values read back are aware and in UTC, and naive values are refused on
    the way in, so a local-time datetime can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the database: use an aware UTC datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
