"""Social and closed rooms: who gets in, who even learns they exist, and invite links that
can be taken back."""

from __future__ import annotations

from tests.conftest import AccountFactory, RunningServer, connect, create_room, join


async def follow(server: RunningServer, follower_token: str, followee_id: str) -> None:
    async with server.http(follower_token) as http:
        assert (await http.post(f"/api/users/{followee_id}/follow")).status_code == 204


async def lobby_ids(server: RunningServer, token: str | None) -> set[str]:
    async with server.http(token) as http:
        response = await http.get("/api/rooms?status=live")
    assert response.status_code == 200, response.text
    return {room["id"] for room in response.json()["rooms"]}


async def test_one_sided_follow_does_not_open_a_social_room(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, fan, friend = [await make_account(n) for n in ("Host", "Fan", "Friend")]
    room_id = await create_room(server, host, visibility="social")
    await join(server, room_id, host)
    await follow(server, fan.token, host.user_id)  # the fan follows the host: not enough
    refused = await connect(server, room_id, fan)
    assert (await refused.expect("error"))["code"] == "not_allowed_in"
    assert await refused.closed_with() == 4003

    await follow(server, host.token, friend.user_id)  # the host follows the friend: in
    friend_c = await join(server, room_id, friend)
    assert friend_c.welcome["you"]["role"] == "listener"


async def test_a_moderator_following_someone_admits_them(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, mod, friend = [await make_account(n) for n in ("Host", "Mod", "Friend")]
    room_id = await create_room(server, host, visibility="social")
    host_c = await join(server, room_id, host)
    await follow(server, host.token, mod.user_id)
    mod_c = await join(server, room_id, mod)
    await mod_c.send("raise_hand")
    await host_c.send("invite_to_speak", user_id=mod.user_id)
    await mod_c.expect("invited", user_id=mod.user_id)
    await mod_c.send("accept_invitation")
    await host_c.send("make_moderator", user_id=mod.user_id)
    await host_c.expect("role_changed", user_id=mod.user_id, role="moderator")
    await follow(server, mod.token, friend.user_id)
    await join(server, room_id, friend)


async def test_closed_and_social_rooms_are_hidden_from_outsiders(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, friend, outsider = [await make_account(n) for n in ("Host", "Friend", "Outsider")]
    guest = await make_account("Guest", guest=True)
    open_id = await create_room(server, host, title="Open")
    social_id = await create_room(server, host, title="Social", visibility="social")
    closed_id = await create_room(server, host, title="Closed", visibility="closed")
    await follow(server, host.token, friend.user_id)
    await follow(server, outsider.token, host.user_id)  # following the host shows nothing

    assert await lobby_ids(server, host.token) == {open_id, social_id, closed_id}
    assert await lobby_ids(server, friend.token) == {open_id, social_id}
    for viewer in (outsider.token, guest.token, None):
        assert await lobby_ids(server, viewer) == {open_id}

    for room_id in (social_id, closed_id):
        for viewer in (outsider.token, guest.token, None):
            async with server.http(viewer) as http:
                hidden = await http.get(f"/api/rooms/{room_id}")
            assert hidden.status_code == 404
            assert hidden.json()["code"] == "room_not_found"
    async with server.http(friend.token) as http:
        assert (await http.get(f"/api/rooms/{social_id}")).json()["room"]["title"] == "Social"
        assert (await http.get(f"/api/rooms/{closed_id}")).status_code == 404
    async with server.http(host.token) as http:
        link = (await http.post(f"/api/rooms/{closed_id}/invite-link")).json()
    # Holding the invite link is what lets someone see (and then join) a closed room.
    async with server.http(outsider.token) as http:
        shown = await http.get(f"/api/rooms/{closed_id}?invite={link['invite']}")
        assert shown.json()["room"]["title"] == "Closed"
    invited = await join(server, closed_id, outsider, invite=link["invite"])
    assert invited.welcome["room"]["id"] == closed_id
    # Once in, the room is theirs to see.
    assert closed_id in await lobby_ids(server, outsider.token)


async def test_rotated_invite_link_is_refused_and_the_new_one_works(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host, early, late, later = [await make_account(n) for n in ("Host", "Early", "Late", "Later")]
    room_id = await create_room(server, host, visibility="closed")
    host_c = await join(server, room_id, host)
    async with server.http(host.token) as http:
        old = (await http.post(f"/api/rooms/{room_id}/invite-link")).json()["invite"]
        await join(server, room_id, early, invite=old)
        rotated = await http.post(f"/api/rooms/{room_id}/invite-link", json={"rotate": True})
        assert rotated.status_code == 200
        new = rotated.json()["invite"]
        assert new != old
        same = await http.post(f"/api/rooms/{room_id}/invite-link")
        assert same.json()["invite"] == new
    await host_c.expect("invite_rotated", by=host.user_id)

    refused = await connect(server, room_id, late, invite=old)
    assert (await refused.expect("error"))["code"] == "not_allowed_in"
    assert await refused.closed_with() == 4003
    await join(server, room_id, late, invite=new)

    # Over the WebSocket too; listeners neither can nor hear about it.
    late_c = await join(server, room_id, late, invite=new)
    await late_c.send("rotate_invite", ref="r")
    assert (await late_c.expect("error", ref="r"))["code"] == "not_permitted"
    await host_c.send("rotate_invite", ref="again")
    await host_c.expect("ack", ref="again")
    refused = await connect(server, room_id, later, invite=new)
    assert (await refused.expect("error"))["code"] == "not_allowed_in"
    assert not any(m["type"] == "invite_rotated" for m in late_c.seen)
    async with server.http(early.token) as http:  # a listener cannot rotate over REST either
        denied = await http.post(f"/api/rooms/{room_id}/invite-link", json={"rotate": True})
        assert denied.status_code == 403
