"""asyncio's selector loop: taking a transport's sockets out of it and giving them back."""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import asyncio.trsock
from collections.abc import Callable

from aiortc import RTCPeerConnection

from audio_rooms.sfu.hooks.ice import ice_connections


def deferrable_readers(pc: RTCPeerConnection) -> list[tuple[int, Callable[[], None]]]:
    """``(fd, read_ready)`` of each UDP socket of ``pc`` that asyncio reads (not TURN ones).

    ``read_ready`` is the asyncio datagram transport's own reader callback: whoever calls it
    when the socket is readable reads one datagram into aioice, as the event loop would.
    """
    readers = []
    for conn in ice_connections(pc):
        for protocol in conn._protocols:
            transport = protocol.transport
            fd = getattr(transport, "_sock_fd", None)
            read_ready = getattr(transport, "_read_ready", None)
            if isinstance(fd, int) and fd >= 0 and callable(read_ready):
                readers.append((fd, read_ready))
    return readers


def loop_remove_reader(fd: int) -> None:
    """Stop the running event loop's selector watching ``fd`` (a transport's socket)."""
    asyncio.get_running_loop()._remove_reader(fd)  # type: ignore[attr-defined]


def loop_add_reader(fd: int, callback: Callable[[], None]) -> None:
    """Watch ``fd`` in the running event loop's selector again, with ``callback``."""
    asyncio.get_running_loop()._add_reader(fd, callback)  # type: ignore[attr-defined]
