"""The password-hash pool: argon2 work on its own threads, with bounded admission.

Each argon2 hash or verification takes ~64 MiB and tens of milliseconds of CPU. Run in the
default thread pool (which the database shares) a sign-in flood grew the process by gigabytes
and made every SQL read wait behind it. Here at most ``concurrency`` hashes run at once, on
threads of their own, and at most ``queue`` more wait; anything beyond that is refused at once
(:class:`~audio_rooms.errors.Busy`, 503 with Retry-After) rather than queued without bound. One
address may hold at most ``per_address`` of those places, so a single flooding address is
refused (429) before it can crowd out everyone else.

Memory for hashing is therefore bounded by ``concurrency`` times 64 MiB, whatever the load.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from audio_rooms import errors

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_AFTER = 1
"""Seconds a refused client waits: a hash takes well under one, so places free up quickly."""

WARN_EVERY = 10.0
"""Seconds between two warnings that hashing is saturated."""

HASH_NICENESS = 10
"""How much lower than the rest of the process hashing threads are scheduled (Linux nice)."""

FIRST_GUESS = 0.15
"""Seconds a hash is taken to last before one has been timed here."""


class HashPool:
    def __init__(self, concurrency: int, queue: int, per_address: int) -> None:
        self.capacity = concurrency + queue
        self.per_address = per_address
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="password-hash",
            initializer=_yield_to_the_event_loop,
        )
        self._admitted = 0
        self._by_address: dict[str, int] = {}
        self.refused = {"address": 0, "busy": 0}
        """Work refused so far, by reason (for /metrics)."""
        self._warned_at = -WARN_EVERY
        self.typical = FIRST_GUESS
        """Seconds the recent hashes took, waiting included (a moving average)."""

    @property
    def in_use(self) -> int:
        """Hashes running or waiting now."""
        return self._admitted

    async def run(self, address: str, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` on a hashing thread for a client at ``address``.

        Raises RateLimited when that address already holds its share of places, and Busy when
        every place is taken. A place is released when the work ends, not when the caller stops
        waiting: a client that hangs up cannot make room for more work than the threads do.
        """
        if self._by_address.get(address, 0) >= self.per_address:
            self.refused["address"] += 1
            raise errors.RateLimited(
                "Too many sign-in attempts at once; wait a moment and try again.",
                retry_after=RETRY_AFTER,
            )
        if self._admitted >= self.capacity:
            self.refused["busy"] += 1
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:
                # Once per interval, not once per refusal: a flood must not flood the log too.
                self._warned_at = now
                log.warning("password hashing is saturated (%d in use); refusing, %d so far",
                            self._admitted, self.refused["busy"])
            raise errors.Busy(
                "The server is busy; try again in a moment.", retry_after=RETRY_AFTER
            )
        self._admitted += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release(address)
            raise

        def finished(_: concurrent.futures.Future[T]) -> None:
            # After shutdown the loop may be closed: then there is nobody left to count for.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release, address)

        future.add_done_callback(finished)
        result = await asyncio.wrap_future(future)
        self.typical += (loop.time() - started - self.typical) / 8
        return result

    async def imitate(self) -> None:
        """Take as long as a hash does now, without hashing (an unknown handle's sign-in)."""
        await asyncio.sleep(self.typical)

    def close(self) -> None:
        """Cancel work not started yet and let the threads end after the hashes running now."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _release(self, address: str) -> None:
        self._admitted -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]


def _yield_to_the_event_loop() -> None:
    """Lower this hashing thread's scheduling priority.

    argon2 runs its four lanes on threads of its own, so two hashes keep eight threads busy: on
    a two-core machine the event loop would get a ninth of the CPU and every request would wait
    behind the flood. Niced, the hashes take the CPU the event loop leaves. On Linux niceness
    is per thread and inherited by the lane threads argon2 starts; raising it needs no
    privilege. Elsewhere PRIO_PROCESS would mean the whole process, so nothing is done.
    """
    if sys.platform != "linux":
        return
    try:
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASH_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness, 19))
    except OSError:
        log.warning("could not lower the priority of password hashing", exc_info=True)
