"""A flood of bad requests cannot flood the log: each message is written a bounded number of
times per window, and what was held back is reported as a count."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator

import pytest

from audio_rooms.logs import RepeatFilter
from tests.conftest import RunningServer

LIMIT = 5
WINDOW = 1.0


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """The root logger writing to a buffer through the filter, as configure_logging sets up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(LIMIT, WINDOW))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


async def garbage_request(server: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x00\x01 not http at all\r\n\r\n")
    await reader.read()
    writer.close()


async def test_repeated_messages_are_counted_not_written(
    server: RunningServer, log: io.StringIO
) -> None:
    for _ in range(10):
        await asyncio.gather(*(garbage_request(server) for _ in range(30)))
    written = log.getvalue().count("Invalid HTTP request received")
    assert written == LIMIT

    await asyncio.sleep(WINDOW + 0.1)  # the window closes: the next record brings the summary
    logging.getLogger("audio_rooms.test").warning("something else happened")
    summary = re.search(r"(\d+) more log records like 'Invalid HTTP request received.'",
                        log.getvalue())
    assert summary and int(summary.group(1)) == 300 - LIMIT
    assert "something else happened" in log.getvalue()
