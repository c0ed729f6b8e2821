"""Alembic's entry point: run the migrations on the server's connection, or, from the alembic
command line (writing a new revision), on the configured database."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from audio_rooms.db import tables  # noqa: F401  (puts the tables on the metadata autogenerate reads)
from audio_rooms.db.engine import UTCDateTime, make_engine
from audio_rooms.settings import load_settings


def render_type(kind: str, item: Any, _context: Any) -> str | Literal[False]:
    """Write plain SQLAlchemy types into a new revision: a revision must stay valid whatever
    the column types of tables.py later become."""
    if kind != "type":
        return False
    if isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


def run(connection: Connection) -> None:
    # Batch mode: SQLite alters a table by copying it, and autogenerate should write it so.
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        render_item=render_type,
    )
    with context.begin_transaction():
        context.run_migrations()


given: Connection | None = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = make_engine(load_settings().resolved_database_url)
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        engine.dispose()
