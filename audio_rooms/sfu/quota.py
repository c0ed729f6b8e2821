"""TransportQuota: how many media transports each client address holds, and how many it may.

A transport holds a UDP port (from a range an operator sized) and a share of the event loop, so
one address opening many of them (one per guest token, one per room) could take every port of
the node. Signalling knows the client's address; the router asks the quota before it makes a
transport, and the transport gives its place back when it closes.
"""

from __future__ import annotations

from collections import Counter

from audio_rooms.sfu.errors import TooManyTransports


class TransportQuota:
    def __init__(self, per_address: int | None) -> None:
        self._per_address = per_address
        self._held: Counter[str] = Counter()

    def acquire(self, address: str | None) -> None:
        """Count one more transport for ``address``; raise if it already holds its share.

        ``None`` (a transport made without signalling: tests, benchmarks) is not counted.
        """
        if address is None:
            return
        if self._per_address is not None and self._held[address] >= self._per_address:
            raise TooManyTransports(
                "Too many media connections from your network; close one and try again.",
                limit=self._per_address,
            )
        self._held[address] += 1

    def release(self, address: str | None) -> None:
        if address is None:
            return
        self._held[address] -= 1
        if self._held[address] <= 0:
            del self._held[address]
