"""Stopping the server's long-lived background tasks for certain.

``task.cancel(); await task`` is not enough on Python 3.11: a cancellation that lands while a
task is inside a library's own timeout or condition wait (redis-py's blocking pool uses both) can
be absorbed there, and a ``while True`` loop then runs on and the stop waits for ever. This
happened in CI: the hub's sweeper survived its cancel and a server never finished shutting down.
``cancel_and_wait`` cancels again until the task has really ended."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)

RECANCEL_INTERVAL = 0.5  # seconds between cancels of a task that has not ended yet


async def cancel_and_wait(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel every task and return once all of them have ended, whatever they swallow."""
    pending = {t for t in tasks if t is not None and not t.done()}
    attempts = 0
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)
        attempts += 1
        if pending and attempts == 2:
            logger.warning("tasks still running after a cancel: %s",
                           ", ".join(t.get_name() for t in pending))
    for ended in tasks:
        if ended is not None and not ended.cancelled() and ended.exception() is not None:
            logger.error("task %s had failed", ended.get_name(), exc_info=ended.exception())
