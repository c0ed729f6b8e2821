"""Placement: which node carries a room's media, and which takes one more listener (pure).

A room's *origin* terminates its speakers: this node (the one holding the first speaker's
WebSocket: no hop, and a load balancer already spreads WebSockets) while it uses less than
:data:`ORIGIN_BUSY` of a core; else the least loaded node by CPU, then by media transports,
never one above :data:`CPU_LIMIT` unless all are. A listener goes to an *edge*: this node
while it holds fewer than its capacity of transports, else the least loaded node under its
own capacity, else the least loaded node that takes listeners at all (a node with capacity 0
never does: a pure origin).
Loads are what the node registry says (state/nodes.py), a heartbeat old; they are bucketed so
that two nodes a few percent apart count as equal and this node, with no hop, wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CPU_LIMIT = 0.9  # cores: a node busier than this takes no new origin while another is not
ORIGIN_BUSY = 0.7  # cores: below this a node keeps the origin of the rooms it is asked for
CPU_BUCKET = 0.1
TRANSPORT_BUCKET = 50


@dataclass(frozen=True)
class Candidate:
    node_id: str
    cpu: float  # cores, over the last heartbeat interval
    transports: int  # media transports it holds
    capacity: int = 800  # transports it takes as an edge (AUDIO_ROOMS_EDGE_CAPACITY)


def _load(c: Candidate) -> tuple[int, int]:
    return int(c.cpu / CPU_BUCKET), c.transports // TRANSPORT_BUCKET


def choose_origin(candidates: Sequence[Candidate], self_id: str) -> str:
    """The node to make a room's origin (``self_id`` when there is no other candidate)."""
    if not candidates:
        return self_id
    own = next((c for c in candidates if c.node_id == self_id), None)
    if own is not None and own.cpu < ORIGIN_BUSY:
        return self_id
    usable = [c for c in candidates if c.cpu < CPU_LIMIT] or list(candidates)
    return min(usable, key=lambda c: (_load(c), c.node_id != self_id, c.node_id)).node_id


def choose_edge(
    candidates: Sequence[Candidate], self_id: str, capacity: int, own_transports: int,
    exclude: Iterable[str] = (),
) -> str:
    """The node to carry one more listener of a room (``capacity`` and ``own_transports``:
    this node's, current; the others' come from the registry)."""
    excluded = set(exclude)
    if self_id not in excluded and own_transports < capacity and any(
        c.node_id == self_id for c in candidates
    ):
        return self_id
    usable = [
        c for c in candidates
        if c.node_id not in excluded and (c.capacity > 0 if c.node_id != self_id else capacity > 0)
    ]
    if not usable:
        return self_id
    roomy = [c for c in usable if c.transports < c.capacity] or usable
    return min(roomy, key=lambda c: (_load(c), c.node_id != self_id, c.node_id)).node_id
