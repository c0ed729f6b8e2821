"""The media server's beat: deferred reads wait for it, aligned sleeps end on it."""

from __future__ import annotations

import asyncio
import socket

from audio_rooms.sfu.beat import Beat
from tests.conftest import eventually


def _off_grid(t: float, interval: float) -> float:
    return abs(t - round(t / interval) * interval)


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[float, bytes]] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.got.append((asyncio.get_running_loop().time(), data))


async def test_deferred_sockets_are_read_on_the_beat_and_at_once_again_after() -> None:
    loop = asyncio.get_running_loop()
    beat = Beat(interval=0.2)
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        addr = transport.get_extra_info("sockname")
        readers = [(transport._sock_fd, transport._read_ready)]  # type: ignore[attr-defined]
        beat.defer_reads(readers)
        await beat.sleep(0)  # start right after a beat
        sent_at = loop.time()
        for i in range(3):
            sender.sendto(b"deferred %d" % i, addr)
        # A negative check: a quarter of the way to the next beat, nothing may have been read.
        await asyncio.sleep(0.05)
        assert inbox.got == []  # not read while the loop is between beats
        await eventually(lambda: len(inbox.got) >= 3, within=1)
        assert [d for _, d in inbox.got] == [b"deferred 0", b"deferred 1", b"deferred 2"]
        assert all(_off_grid(at, 0.2) < 0.01 for at, _ in inbox.got)
        assert inbox.got[0][0] - sent_at <= 0.2 + 0.02

        # Queued while deferred: read_now() reads them before it returns.
        for i in range(20):
            sender.sendto(b"queued %d" % i, addr)
        # Let the datagrams reach the socket's queue (nothing to observe: reading them is what
        # read_now() must do), well before the next beat would read them instead.
        await asyncio.sleep(0.01)
        before = len(inbox.got)
        beat.read_now(readers)
        assert [d for _, d in inbox.got[before:]] == [b"queued %d" % i for i in range(20)]
        sender.sendto(b"at once", addr)
        # Read at once: well before the next beat, which is more than 0.1 s away.
        await eventually(lambda: inbox.got[-1][1] == b"at once", within=0.1, every=0.005)
    finally:
        beat.close()
        transport.close()
        sender.close()


async def test_a_closed_deferred_socket_is_forgotten() -> None:
    loop = asyncio.get_running_loop()
    beat = Beat(interval=0.05)
    transport, _ = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0))
    readers = [(transport._sock_fd, transport._read_ready)]  # type: ignore[attr-defined]
    beat.defer_reads(readers)
    transport.close()
    await eventually(lambda: beat.beats >= 2)  # beats run with the closed socket deferred
    beat.forget(readers)
    beat.read_now(readers)  # nothing to give back: no error, nothing registered
    # The beat already armed runs, finds nothing left to do and stops waking the loop.
    armed = beat.beats
    await eventually(lambda: beat.beats > armed)
    beats = beat.beats
    # A negative check: four intervals pass without a beat.
    await asyncio.sleep(0.2)
    assert beat.beats == beats
    beat.close()


async def test_sleeps_end_on_the_grid() -> None:
    loop = asyncio.get_running_loop()
    beat = Beat(interval=0.05)
    woke: list[float] = []

    async def sleeper(delay: float) -> None:
        await beat.sleep(delay)
        woke.append(loop.time())

    await asyncio.gather(*(sleeper(0.01 * i) for i in range(1, 6)))
    # Five timers, at most two distinct wake-ups, each on the beat's grid.
    assert len({round(t / 0.05) for t in woke}) <= 2
    assert all(_off_grid(t, 0.05) < 0.01 for t in woke)
