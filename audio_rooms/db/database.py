"""The Database: every durable read and write, as coroutines over a sync SQLAlchemy engine.

It is the aggregates (:mod:`~audio_rooms.db.users`, :mod:`~audio_rooms.db.rooms`,
:mod:`~audio_rooms.db.moderation`, :mod:`~audio_rooms.db.follows`) sharing one
:class:`~audio_rooms.db.runner.Runner`, plus the engine's lifecycle. Callers that need only a part
say so with a narrow ``Protocol`` (see :mod:`audio_rooms.rooms`). Nothing returned is a live ORM
object: callers get the frozen records of :mod:`audio_rooms.db.records`.

``get_*`` methods return ``None`` for a missing row, because what "missing" means depends on the
caller (an unknown user at sign-in is bad credentials, not a 404). Methods that change a row that
must exist raise :class:`~audio_rooms.errors.UserNotFound` or
:class:`~audio_rooms.errors.RoomNotFound`.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from audio_rooms.db import schema
from audio_rooms.db.consents import Consents
from audio_rooms.db.engine import make_engine, normalise_url
from audio_rooms.db.follows import Follows
from audio_rooms.db.moderation import Bans, ModerationHistory
from audio_rooms.db.rooms import Rooms
from audio_rooms.db.runner import Runner, in_session
from audio_rooms.db.users import SignInSessions, Users


class Database(Users, SignInSessions, Rooms, Bans, ModerationHistory, Follows, Consents):
    """Durable state behind one URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.runner = Runner(make_engine(self.url))

    @classmethod
    async def open(cls, url: str) -> Database:
        """Connect and bring the schema up to date: what the server does on start."""
        database = cls(url)
        try:
            await database.start()
        except BaseException:
            database.close()
            raise
        return database

    async def start(self) -> None:
        await self.runner.run(self.upgrade_schema)

    def upgrade_schema(self) -> str:
        """Run the pending alembic migrations (sync, for the CLI); return the revision reached."""
        return schema.upgrade(self.runner.engine)

    def close(self) -> None:
        self.runner.engine.dispose()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.runner.engine.dialect.name

    @in_session
    def ping(self, session: Session) -> None:
        """Raise if the database cannot answer a trivial query (for health checks)."""
        session.execute(text("SELECT 1"))
