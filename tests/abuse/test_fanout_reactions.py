"""A crowd clapping: reactions reach each listener as a few frames of counts, not one frame per
reaction, on this node and on another node sharing the Redis."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.conftest import (
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    create_room,
    join,
)

EMOJIS = ("👏", "🔥", "❤️", "🎉")


async def totals_until(
    client: Client, expected: int, timeout: float = 5.0
) -> tuple[Counter[str], int]:
    """Sum the ``reactions`` frames until ``expected`` reactions are counted."""
    totals: Counter[str] = Counter()
    frames = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while sum(totals.values()) < expected:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"only {sum(totals.values())} of {expected} reactions arrived"
        message = await client.recv(left)
        assert message["type"] != "reaction", "a reaction went out on its own"
        if message["type"] == "reactions":
            frames += 1
            totals.update(message["counts"])
    return totals, frames


async def test_a_hundred_reactions_arrive_as_a_few_frames_of_counts(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    listener = await make_account("Listener")
    listener_c = await join(server, room_id, listener)
    guests = [await make_account(f"Guest {i}", guest=True) for i in range(20)]
    clients = [await join(server, room_id, g) for g in guests]
    await listener_c.quiet(0.3)  # the joins

    sent: Counter[str] = Counter()
    sends = []
    for i, client in enumerate(clients):
        for j in range(5):
            emoji = EMOJIS[(i + j) % len(EMOJIS)]
            sent[emoji] += 1
            sends.append(client.send("reaction", emoji=emoji))
    await asyncio.gather(*sends)

    totals, frames = await totals_until(listener_c, 100)
    assert totals == sent
    assert frames <= 10, f"{frames} frames for 100 reactions"
    host_totals, _ = await totals_until(host_c, 100)
    assert host_totals == sent


async def test_reactions_are_counted_across_nodes(
    server: RunningServer, make_server: ServerFactory, make_account: AccountFactory
) -> None:
    other = await make_server()
    host, far = await make_account("Host"), await make_account("Far")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    far_c = await join(other, room_id, far)
    for _ in range(6):
        await host_c.send("reaction", emoji="👏")
        await far_c.send("reaction", emoji="🔥")
    totals, frames = await totals_until(far_c, 12)
    assert totals == {"👏": 6, "🔥": 6}
    assert frames <= 6  # at most one per node per tick, and the sends took under a tick or two


async def test_a_reaction_that_is_not_offered_is_refused(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    await host_c.send("reaction", emoji="<b>", ref="bad")
    refused = await host_c.expect("error", ref="bad")
    assert refused["code"] == "invalid_field"
    await host_c.send("reaction", emoji="🙏", ref="good")
    await host_c.expect("ack", ref="good")
    assert (await host_c.expect("reactions"))["counts"] == {"🙏": 1}
