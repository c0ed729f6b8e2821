"""Two servers sharing one Redis: a room's deltas reach clients on both, in the same order."""

from __future__ import annotations

from tests.conftest import AccountFactory, RunningServer, ServerFactory, create_room, join


async def test_events_reach_clients_on_every_node(
    server: RunningServer, make_server: ServerFactory, make_account: AccountFactory
) -> None:
    other = await make_server()
    host = await make_account("Host")
    ana = await make_account("Ana")
    ben = await make_account("Ben")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    ana_c = await join(other, room_id, ana)  # same room, the other node
    ben_c = await join(other, room_id, ben)
    await ana_c.send("raise_hand")
    await host_c.expect("hand_raised", user_id=ana.user_id)
    await host_c.send("invite_to_speak", user_id=ana.user_id)
    await ana_c.expect("invited", user_id=ana.user_id)
    await ana_c.send("accept_invitation")
    role_at_host = await host_c.expect("role_changed", user_id=ana.user_id)
    await host_c.send("mute", user_id=ana.user_id)
    mute_at_host = await host_c.expect("mute_changed", user_id=ana.user_id)
    orders = [(role_at_host["version"], mute_at_host["version"])]
    role = await ben_c.expect("role_changed", user_id=ana.user_id)
    mute = await ben_c.expect("mute_changed", user_id=ana.user_id)
    orders.append((role["version"], mute["version"]))
    assert orders[0] == orders[1] and orders[0][0] < orders[0][1]
    await host_c.send("remove", user_id=ben.user_id)
    assert await ben_c.closed_with() == 4011
