"""Beat: one coarse clock for everything in the media plane that may wait a few milliseconds.

Waking the event loop costs far more than most of the work it wakes for: measured on the
benchmark machine (a 2-vCPU VM), an idle asyncio loop pays ~0.1-0.4 ms of CPU per wake-up,
while answering one consent check or reading one receiver report is tens of microseconds.
An SFU with hundreds of listeners was woken ~2-3 times per listener per second for things that
are not urgent: each listener's RTCP reports and consent checks arriving at random moments,
each connection's own consent timer, the sender-report wheel, the active-speaker tick.

So the beat gathers them:

* **Deferred reads.** The sockets of a transport whose participant may not speak are taken
  out of the event loop's selector and watched by the beat's own epoll set instead, which is
  polled (without blocking) once per beat. A listener sends only RTCP, STUN and DTLS, none of
  which needs an answer within ``interval``. A transport that may speak is read at once (its
  microphone's packets are forwarded as they arrive), and so is every transport until it has
  connected (ICE and DTLS set-up is not slowed down).
* **Aligned timers.** :meth:`sleep` ends on the beat's grid, so every connection's consent
  timer, the router's active-speaker tick and the beat's own work share one wake-up.
* **Work on the beat.** Callbacks registered with :meth:`every_beat` (the sender-report wheel)
  run on each beat.

``INTERVAL`` (0.1 s) bounds how long a deferred datagram waits: a consent check is answered
within it (aioice waits 0.5 s for an answer, browsers longer) and a receiver report is read
within it (it only feeds statistics).
"""

from __future__ import annotations

import asyncio
import logging
import math
import select
from collections.abc import Callable

from audio_rooms.sfu import hooks

logger = logging.getLogger(__name__)

INTERVAL = 0.1
# Ready sockets are drained in at most this many polls per beat (a socket that keeps receiving
# is read again on the next beat, so one peer cannot hold the loop).
DRAIN_ROUNDS = 4
# read_now() reads at most this many queued datagrams per socket before handing it back (a
# socket buffer holds a few hundred).
DRAIN_LIMIT = 10_000


class Beat:
    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._work: list[Callable[[], bool]] = []
        self._readers: dict[int, Callable[[], None]] = {}
        self._epoll: select.epoll | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._next_at = 0.0
        self._closed = False
        self.beats = 0

    def __repr__(self) -> str:
        return f"Beat({self.interval}s, {len(self._readers)} deferred sockets)"

    # --- time ----------------------------------------------------------------------------------

    def align(self, when: float) -> float:
        """The first beat at or after event-loop time ``when``."""
        return math.ceil(when / self.interval) * self.interval

    async def sleep(self, delay: float) -> None:
        """Sleep at least ``delay`` seconds, waking on a beat."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        handle = loop.call_at(self.align(loop.time() + delay), _wake, future)
        try:
            await future
        finally:
            handle.cancel()

    # --- work ----------------------------------------------------------------------------------

    def every_beat(self, callback: Callable[[], bool]) -> None:
        """Run ``callback`` on every beat for as long as it returns True."""
        self._work.append(callback)
        self._arm()

    def defer_reads(self, readers: list[tuple[int, Callable[[], None]]]) -> None:
        """Watch these ``(fd, read_ready)`` sockets here instead of in the event loop."""
        if self._closed or not readers:
            return
        if self._epoll is None:
            self._epoll = select.epoll()
        for fd, read_ready in readers:
            if self._readers.pop(fd, None) is not None:
                # A stale entry: that descriptor was closed and its number given out again.
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass
            hooks.loop_remove_reader(fd)
            try:
                self._epoll.register(fd, select.EPOLLIN)
            except OSError:  # closed meanwhile
                continue
            self._readers[fd] = read_ready
        self._arm()

    def read_now(self, readers: list[tuple[int, Callable[[], None]]]) -> None:
        """Read what is queued on these sockets, then give them back to the event loop.

        Everything that arrived while they were deferred is read here, before this returns,
        so the caller can change what such datagrams mean afterwards: a participant allowed
        to speak must not have the packets it sent while muted forwarded once it is not.
        Closed sockets are forgotten.
        """
        for fd, read_ready in readers:
            if self._readers.pop(fd, None) is None:
                continue
            if self._epoll is not None:
                try:
                    self._epoll.unregister(fd)
                except OSError:  # already closed: the kernel dropped it from the set
                    continue
            _drain(fd, read_ready)
            hooks.loop_add_reader(fd, read_ready)

    def forget(self, readers: list[tuple[int, Callable[[], None]]]) -> None:
        """Stop watching these sockets (their transport is closing)."""
        for fd, _ in readers:
            if self._readers.pop(fd, None) is not None and self._epoll is not None:
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._work.clear()
        self._readers.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    # --- the beat ------------------------------------------------------------------------------

    def _arm(self) -> None:
        if self._handle is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._next_at = self.align(loop.time() + self.interval / 2)
            self._handle = loop.call_at(self._next_at, self._run)

    def _run(self) -> None:
        self._handle = None
        self.beats += 1
        try:
            self._read_deferred()
        except Exception:
            logger.exception("%r deferred reads failed", self)
        for callback in list(self._work):
            try:
                keep = callback()
            except Exception:  # one failing job must not stop the others
                logger.exception("%r %r failed", self, callback)
                keep = True
            if not keep:
                self._work.remove(callback)
        if self._closed or not (self._work or self._readers):
            return
        loop = asyncio.get_running_loop()
        # The next beat on the grid after now (a stalled loop does not catch up in a burst).
        self._next_at = self.align(loop.time() + self.interval / 2)
        self._handle = loop.call_at(self._next_at, self._run)

    def _read_deferred(self) -> None:
        epoll = self._epoll
        if epoll is None or not self._readers:
            return
        for _ in range(DRAIN_ROUNDS):
            events = epoll.poll(0)
            if not events:
                return
            for fd, _ in events:
                read_ready = self._readers.get(fd)
                if read_ready is None:
                    try:
                        epoll.unregister(fd)
                    except OSError:
                        pass
                    continue
                read_ready()


def _drain(fd: int, read_ready: Callable[[], None]) -> None:
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    for _ in range(DRAIN_LIMIT):
        if not poll.poll(0):
            return
        read_ready()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
