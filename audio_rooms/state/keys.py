"""Every Redis key and channel name, defined once, each with its shape.

All keys start with ``ar:`` so that audio-rooms can share a Redis with other software.

Every key of one room carries the room id as a Redis Cluster hash tag (``ar:room:{ID}:...``):
a room's keys live on one shard, so its transitions, scripts and pipelines never span shards.
Global keys (the live set, the lobby ranking, nodes, rate limits) are never written in the same
transaction as a room's keys (docs/operations.md, "Redis deployments").
"""

from __future__ import annotations

PREFIX = "ar:"

# set: room ids of live rooms.
LIVE_ROOMS = PREFIX + "rooms:live"

# sorted set: room ids of live rooms -> participant count, the lobby's ranking by activity.
# Written in the same MULTI as the room's state, so the lobby never ranks a room that ended.
LIVE_ACTIVITY = PREFIX + "rooms:activity"

# Seconds an ended room's meta stays, so late joiners learn that it ended.
ENDED_ROOM_TTL = 24 * 3600


def room_meta(room_id: str) -> str:
    """string: JSON of ``RoomState.meta_record()`` (all but the people, with "version").

    Every transition rewrites it and WATCHes it, so it is the room's optimistic lock.
    """
    return f"{PREFIX}room:{{{room_id}}}:meta"


def room_people(room_id: str) -> str:
    """hash: user_id -> JSON of ``Participant.to_record()``."""
    return f"{PREFIX}room:{{{room_id}}}:people"


def room_presence(room_id: str) -> str:
    """zset: user_id -> deadline (ms since epoch) after which the participant is dropped.

    A connected participant's node pushes the deadline forward on every heartbeat; a lost
    connection leaves it at now + grace period, within which the participant may resume.
    """
    return f"{PREFIX}room:{{{room_id}}}:presence"


def room_addresses(room_id: str) -> str:
    """hash: guest user_id -> address tag (HMAC of the guest's client address), written when
    the guest joins; a ban or removal of the guest copies the tag into :func:`room_door`."""
    return f"{PREFIX}room:{{{room_id}}}:addresses"


def room_door(room_id: str) -> str:
    """hash: address tag -> "banned" | "removed": guests kept out of this live room by where
    they connect from, whatever guest token they hold. Deleted when the room ends."""
    return f"{PREFIX}room:{{{room_id}}}:door"


def room_events(room_id: str) -> str:
    """pub/sub channel: JSON ``{"v": version, "c": changed, "e": [event records],
    "p": [user_ids who may speak]}``, published in the same MULTI as the state it describes;
    and, once per reaction tick from each node with reactions, ``{"r": {emoji: count}}``."""
    return f"{PREFIX}room:{{{room_id}}}:events"


def room_replicated(room_id: str) -> str:
    """string: when this room's last write was confirmed by replicas (seconds since epoch),
    with a short TTL. Written only by state/replication.py, as the write that WAIT then waits
    on (WAIT counts the replicas that caught up with the connection's own last write)."""
    return f"{PREFIX}room:{{{room_id}}}:replicated"


def room_id_from_events_channel(channel: str) -> str:
    return channel[len(PREFIX + "room:{") : -len("}:events")]


def rate_limit(scope: str, subject: str) -> str:
    """string: integer count of attempts in the current fixed window; expires with it."""
    return f"{PREFIX}ratelimit:{scope}:{subject}"


def guest_revoked(guest_id: str) -> str:
    """string: "1" while a signed-out guest's token would still be valid; expires with it."""
    return f"{PREFIX}guest:{guest_id}:revoked"


# pub/sub channel: the user id of an account an operator just banned from the whole server.
# Every node closes that user's sockets when it hears it.
ACCOUNT_BANS = PREFIX + "accounts:banned"


# sorted set: node id -> the time (ms since epoch) its registration expires. Listing reads the
# members not yet expired; a node that stopped beating drops out by itself.
NODES = PREFIX + "nodes"


def node(node_id: str) -> str:
    """string: JSON of ``nodes.NodeInfo`` for one server process, with a TTL its heartbeat
    renews (three heartbeat intervals)."""
    return f"{PREFIX}node:{node_id}"


def room_audience(room_id: str) -> str:
    """sorted set: listener user_id -> the time they joined (ms since epoch). The audience
    tier: its size is the listener count, its order the order of the audience's pages. Stage
    members (speakers, moderators, the host) are in :func:`room_people` instead, never here."""
    return f"{PREFIX}room:{{{room_id}}}:audience"


def room_listener(room_id: str, user_id: str) -> str:
    """string: JSON of ``Participant.to_record()`` for one listener in :func:`room_audience`.
    One key per listener, so that a transition about that listener (a raised hand, an
    invitation, a removal) WATCHes just them, not the whole audience."""
    return f"{PREFIX}room:{{{room_id}}}:listener:{user_id}"


def room_origin(room_id: str) -> str:
    """string: ``"node_id|epoch"``, the node that is the room's media origin (docs/cascade.md),
    with a TTL its holder renews (the origin lease). Gone: no origin, the next stage offer
    claims one."""
    return f"{PREFIX}room:{{{room_id}}}:origin"


def room_epoch(room_id: str) -> str:
    """integer: the fencing epoch of the room's origin lease, incremented by every claim. A
    node acts as origin only while the lease holds its own id *and* the epoch it claimed."""
    return f"{PREFIX}room:{{{room_id}}}:epoch"


def node_inbox(node_id: str) -> str:
    """channel: requests and replies between nodes addressed to one node (state/bus.py)."""
    return f"{PREFIX}node:{node_id}:inbox"


# Webhooks (webhooks.py). Both carry the hash tag {webhooks}: the script that moves due retries
# back into the queue touches both, so they must share a Redis Cluster shard.

# stream: one entry per delivery due now, fields ``url``, ``body`` (the signed JSON), ``attempt``;
# read by the consumer group WEBHOOK_GROUP, so each entry goes to one server process.
WEBHOOK_QUEUE = PREFIX + "{webhooks}:queue"

# sorted set: JSON ``{"url", "body", "attempt"}`` -> when (seconds since epoch) to try it again.
WEBHOOK_RETRIES = PREFIX + "{webhooks}:retries"

WEBHOOK_GROUP = "deliverers"
