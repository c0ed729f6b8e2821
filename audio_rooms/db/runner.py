"""The Runner: the one place where synchronous SQLModel work leaves the event loop.

Each unit of work runs in a worker thread with a session of its own, so a slow disk or a far
PostgreSQL never stalls the loop that carries signalling and media. The aggregates
(:mod:`~audio_rooms.db.users`, :mod:`~audio_rooms.db.rooms`, :mod:`~audio_rooms.db.moderation`,
:mod:`~audio_rooms.db.follows`) write each operation once, as a sync method taking a session,
and :func:`in_session` makes it the coroutine callers await.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import CursorResult, Engine, Result
from sqlmodel import Session

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A", bound="Aggregate")


class Runner:
    """Runs sync work against one engine in worker threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        # Records are built before the session closes; not expiring on commit saves a re-select.
        return Session(self.engine, expire_on_commit=False)

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs))


class Aggregate:
    """Base of the per-aggregate classes: every one of them shares the database's runner."""

    runner: Runner


def in_session(
    operation: Callable[Concatenate[A, Session, P], T],
) -> Callable[Concatenate[A, P], Coroutine[Any, Any, T]]:
    """Turn ``operation(self, session, ...)`` into ``await operation(self, ...)``, run by the
    aggregate's runner with a fresh session that is closed when the operation returns."""

    async def run(self: A, /, *args: P.args, **kwargs: P.kwargs) -> T:
        def unit() -> T:
            with self.runner.session() as session:
                return operation(self, session, *args, **kwargs)

        return await self.runner.run(unit)

    functools.update_wrapper(run, operation)  # its name and docstring
    return run


def rowcount(result: Result[Any]) -> int:
    # Session.execute returns a CursorResult for DML; its annotations promise only Result.
    assert isinstance(result, CursorResult)
    return result.rowcount
