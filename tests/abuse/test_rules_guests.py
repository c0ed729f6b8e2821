"""Guests only listen, and a guest kept out stays out however many guest tokens they mint."""

from __future__ import annotations

import httpx
import websockets

from tests.conftest import (
    Account,
    AccountFactory,
    Client,
    RunningServer,
    connect,
    create_room,
    join,
)


async def guest_from(server: RunningServer, address: str, name: str) -> Account:
    """A fresh guest token, asked for from ``address`` (a loopback alias)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=server.base_url, transport=transport) as http:
        response = await http.post("/api/auth/guest", json={"display_name": name})
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(body["user"]["id"], body["token"], name)


async def test_guests_cannot_be_invited_promoted_or_raise_a_hand(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    guest = await make_account("Guest", guest=True)
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    guest_c = await join(server, room_id, guest)
    await host_c.expect("audience", count=1)

    for kind, ref in (("invite_to_speak", "inv"), ("make_moderator", "mod")):
        await host_c.send(kind, user_id=guest.user_id, ref=ref)
        refused = await host_c.expect("error", ref=ref)
        assert refused["code"] == "guests_only_listen"
    await guest_c.send("raise_hand", ref="hand")
    assert (await guest_c.expect("error", ref="hand"))["code"] == "guests_only_listen"
    # Nothing changed for anyone: the guest is still a listener with no hand up.
    await host_c.send("ping", ref="p")
    await host_c.expect("pong", ref="p")
    assert not any(m["type"] in ("invited", "role_changed", "hand_raised") for m in host_c.seen)


async def test_banned_guest_with_a_fresh_token_stays_out(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    troll = await guest_from(server, "127.0.0.2", "Troll")
    troll_c = await connect(server, room_id, troll, source="127.0.0.2")
    await troll_c.expect("welcome")
    await host_c.send("ban", user_id=troll.user_id)
    assert await troll_c.closed_with() == 4011

    again = await guest_from(server, "127.0.0.2", "Totally new")
    assert again.user_id != troll.user_id
    retry = await connect(server, room_id, again, source="127.0.0.2")
    assert (await retry.expect("error"))["code"] == "banned"
    assert await retry.closed_with() == 4003

    # Someone on another address is not caught by it.
    neighbour = await guest_from(server, "127.0.0.3", "Neighbour")
    neighbour_c = await connect(server, room_id, neighbour, source="127.0.0.3")
    await neighbour_c.expect("welcome")


async def test_removed_guest_with_a_fresh_token_stays_out(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    pest = await guest_from(server, "127.0.0.2", "Pest")
    pest_c = await connect(server, room_id, pest, source="127.0.0.2")
    await pest_c.expect("welcome")
    await host_c.send("remove", user_id=pest.user_id)
    assert await pest_c.closed_with() == 4011
    again = await guest_from(server, "127.0.0.2", "Pest again")
    retry = await connect(server, room_id, again, source="127.0.0.2")
    assert (await retry.expect("error"))["code"] == "removed"


async def test_guest_ban_ends_with_the_room(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    first = await create_room(server, host)
    host_c = await join(server, first, host)
    troll = await guest_from(server, "127.0.0.2", "Troll")
    troll_c = await connect(server, first, troll, source="127.0.0.2")
    await troll_c.expect("welcome")
    await host_c.send("ban", user_id=troll.user_id)
    assert await troll_c.closed_with() == 4011
    # The address ban is for that live room only: the same guest may listen elsewhere.
    second = await create_room(server, host)
    elsewhere = await connect(server, second, troll, source="127.0.0.2")
    await elsewhere.expect("welcome")


async def test_accounts_only_switch(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, member = await make_account("Host"), await make_account("Member")
    early_guest = await make_account("Early", guest=True)
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    early_c = await join(server, room_id, early_guest)
    member_c = await join(server, room_id, member)

    await member_c.send("set_accounts_only", enabled=True, ref="no")
    assert (await member_c.expect("error", ref="no"))["code"] == "not_permitted"
    await host_c.send("set_accounts_only", enabled=True, ref="door")
    changed = await early_c.expect("accounts_only_changed")
    assert changed["enabled"] is True and changed["by"] == host.user_id

    late_guest = await make_account("Late", guest=True)
    refused = await join_refused(server, room_id, late_guest)
    assert refused == ("account_required", 4003)
    late_member = await make_account("Late member")
    late_member_c = await join(server, room_id, late_member)
    assert late_member_c.welcome["room"]["accounts_only"] is True
    # The guest already listening stays (moderators remove whoever they want gone).
    await early_c.send("ping", ref="still")
    await early_c.expect("pong", ref="still")

    await host_c.send("set_accounts_only", enabled=False)
    await early_c.expect("accounts_only_changed", enabled=False)
    await join(server, room_id, late_guest)


async def join_refused(server: RunningServer, room_id: str, account: Account) -> tuple[str, int]:
    ws = await websockets.connect(server.ws_url(room_id))
    client = Client(ws, account.user_id)
    await client.send("join", token=account.token)
    error = await client.expect("error")
    return error["code"], await client.closed_with() or 0
