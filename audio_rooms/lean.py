"""Lean stand-ins for ``asyncio.Queue`` and ``asyncio.Event``, for state every WebSocket holds.

uvicorn gives each WebSocket connection an ``asyncio.Queue`` for what the client sends and an
``asyncio.Event`` for write flow control. Each of those allocates empty deques up front (three
for the queue, one for the event), about 760 bytes apiece: over 3 KiB per idle connection, a
tenth of the memory budget per listener (docs/benchmarks.md, "memory per connection"). These
two keep a plain list, made only when something waits. They offer only what uvicorn's protocol
calls (``put_nowait``, ``get``, ``empty``; ``set``, ``clear``, ``wait``, ``is_set``), in the
event loop's thread, with the same behaviour under cancellation: an item is never lost when a
``get`` is cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Any


class ReceiveQueue:
    """An unbounded FIFO queue with the part of ``asyncio.Queue``'s interface uvicorn uses."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)
                    break

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
        item = self._items.pop(0)  # a handful of items at most: the app reads as they come
        if self._items and self._waiters:
            # Another getter may take the next one (asyncio.Queue wakes the next getter too).
            self._wake_one()
        return item

    def _wake_one(self) -> None:
        assert self._waiters is not None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return


class WriteGate:
    """A flag tasks can wait for, with the part of ``asyncio.Event``'s interface uvicorn uses."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        if self._open:
            return
        self._open = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            self._waiters.remove(waiter)
            if not self._waiters:
                self._waiters = None
