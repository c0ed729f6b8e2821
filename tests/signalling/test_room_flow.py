"""Multi-client room flows over the real WebSocket, against a real Redis."""

from __future__ import annotations

import asyncio

from audio_rooms.state import keys
from tests.conftest import AccountFactory, LiveRoom, RunningServer, connect, create_room, join


async def test_hand_invite_accept_reaches_everyone_in_the_same_order(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    assert host_c.welcome["you"]["role"] == "host"
    guests = [await make_account(f"L{i}") for i in range(3)]
    listeners = [await join(server, room_id, g) for g in guests]
    raiser, raiser_c = guests[0], listeners[0]

    await raiser_c.send("raise_hand", ref="h1")
    hand = await host_c.expect("hand_raised", user_id=raiser.user_id)
    await host_c.send("invite_to_speak", user_id=raiser.user_id)
    await raiser_c.expect("invited", user_id=raiser.user_id)
    await raiser_c.send("accept_invitation")

    sequences = []
    for client in [host_c, *listeners]:
        change = await client.expect("role_changed", user_id=raiser.user_id)
        assert change["role"] == "speaker"
        sequences.append(change["version"])
    assert len(set(sequences)) == 1 and sequences[0] > hand["version"]
    # Other listeners never saw the hand or the invitation: that is between moderators and them.
    for client in listeners[1:]:
        assert not any(m["type"] in ("hand_raised", "invited") for m in client.seen)


async def test_snapshot_then_ordered_deltas(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    host, room_id, host_c = live_room.host, live_room.room_id, live_room.host_c
    late = await make_account("Late")
    for _ in range(5):
        await host_c.send("reaction", emoji="👏")
    late_c = await join(server, room_id, late)
    snapshot = late_c.welcome["room"]
    # The stage and yourself; the audience by count and pages.
    assert {p["user_id"] for p in snapshot["participants"]} == {host.user_id, late.user_id}
    assert snapshot["audience"]["count"] == 1
    assert [p["user_id"] for p in snapshot["audience"]["page"]["listeners"]] == [late.user_id]
    await host_c.send("mute", user_id=host.user_id)
    muted = await late_c.expect("mute_changed", user_id=host.user_id)
    assert muted["version"] == late_c.welcome["version"] + 1
    assert muted["self_muted"] is True


async def test_moderation_actions_hold(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    bob = await make_account("Bob")
    bob_c = await join(server, room_id, bob)
    await bob_c.send("raise_hand")
    await host_c.send("invite_to_speak", user_id=bob.user_id)
    await bob_c.send("accept_invitation")
    await host_c.expect("role_changed", user_id=bob.user_id)
    await bob_c.send("unmute", user_id=bob.user_id)
    await host_c.expect("mute_changed", user_id=bob.user_id, self_muted=False)
    await host_c.send("mute", user_id=bob.user_id)
    await bob_c.expect("mute_changed", user_id=bob.user_id, muted_by_moderator=True)
    await bob_c.send("unmute", user_id=bob.user_id, ref="u1")
    error = await bob_c.expect("error", ref="u1")
    assert error["code"] == "muted_by_moderator"
    await host_c.send("make_moderator", user_id=bob.user_id)
    await bob_c.expect("role_changed", user_id=bob.user_id, role="moderator")
    await host_c.send("move_to_audience", user_id=bob.user_id)
    await bob_c.expect("role_changed", user_id=bob.user_id, role="listener")
    await host_c.send("remove", user_id=bob.user_id)
    removed = await host_c.expect("participant_removed", user_id=bob.user_id)
    assert removed["banned"] is False
    assert await bob_c.closed_with() == 4011
    again = await connect(server, room_id, bob)
    error = await again.expect("error")
    assert error["code"] == "removed"
    assert await again.closed_with() == 4011


async def test_ban_holds_across_new_sessions(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    eve = await make_account("Eve")
    eve_c = await join(server, room_id, eve)
    await host_c.send("ban", user_id=eve.user_id)
    assert await eve_c.closed_with() == 4011
    handle = eve.user_id.split("@")[0]
    async with server.http() as http:
        response = await http.post(
            "/api/auth/signin", json={"handle": handle, "password": "correct horse battery"}
        )
    fresh_token = response.json()["token"]
    assert fresh_token != eve.token
    again = await connect(server, room_id, None, token=fresh_token)
    assert (await again.expect("error"))["code"] == "banned"
    assert await again.closed_with() == 4003


async def test_end_room_closes_everyone(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    ann = await make_account("Ann")
    ann_c = await join(server, room_id, ann)
    await ann_c.send("end_room", ref="e")
    assert (await ann_c.expect("error", ref="e"))["code"] == "not_permitted"
    await host_c.send("end_room")
    ended = await ann_c.expect("room_ended")
    assert ended["reason"] == "ended_by_moderator"
    assert await ann_c.closed_with() == 4010
    async with server.http() as http:
        room = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
    assert room["status"] == "ended"
    late = await connect(server, room_id, ann)
    assert (await late.expect("error"))["code"] == "room_ended"


async def test_guest_listens_to_open_room_but_cannot_host(
    server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Host")
    guest = await make_account("Guest", guest=True)
    room_id = await create_room(server, host)
    guest_c = await join(server, room_id, guest)
    assert guest_c.welcome["you"]["is_guest"] is True
    assert guest_c.welcome["you"]["role"] == "listener"
    async with server.http(guest.token) as http:
        response = await http.post("/api/rooms", json={"title": "Mine"})
    assert response.status_code == 403 and response.json()["code"] == "account_required"
    closed_room = await create_room(server, host, visibility="closed")
    refused = await connect(server, closed_room, guest)
    assert (await refused.expect("error"))["code"] == "account_required"


async def test_concurrent_moderators_cannot_corrupt_the_room(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    host, room_id, host_c = live_room.host, live_room.room_id, live_room.host_c
    mod = await make_account("Mod")
    mod_c = await join(server, room_id, mod)
    await mod_c.send("raise_hand")
    await host_c.send("invite_to_speak", user_id=mod.user_id)
    await mod_c.send("accept_invitation")
    await host_c.send("make_moderator", user_id=mod.user_id)
    await mod_c.expect("role_changed", role="moderator")
    people = [await make_account(f"P{i}") for i in range(6)]
    clients = [await join(server, room_id, p) for p in people]
    for c in clients:
        await c.send("raise_hand")
    for p in people:
        await host_c.expect("hand_raised", user_id=p.user_id)
    # Both moderators invite and remove at once, through the store directly and over sockets.
    store = server.services.store
    from audio_rooms.domain import actions as a

    results = await asyncio.gather(
        *[store.transition(room_id, host.user_id, a.InviteToSpeak(p.user_id)) for p in people],
        *[store.transition(room_id, mod.user_id, a.Remove(p.user_id)) for p in people[:3]],
        return_exceptions=True,
    )
    assert not [r for r in results if isinstance(r, Exception) and
                getattr(r, "code", "") not in ("invalid_target",)]
    state = await store.load(room_id)
    assert state is not None
    versions_seen = [m["version"] for m in host_c.seen if "version" in m]
    assert versions_seen == sorted(versions_seen)
    for p in people[:3]:
        assert p.user_id not in state.participants and p.user_id in state.removed
        assert p.user_id not in state.invitations and p.user_id not in state.hand_queue
    # The stage holds the two moderators; the three left in the audience are counted exactly.
    stage_in_redis = await server.services.redis.hlen(keys.room_people(room_id))
    assert stage_in_redis == len(state.participants) == 2
    assert await store.audience.count(room_id) == 3
    page = await store.audience.page(room_id, None, 50)
    assert {p.user_id for p in page.listeners} == {p.user_id for p in people[3:]}


async def test_new_moderator_gets_the_hand_queue(
    server: RunningServer, make_account: AccountFactory, live_room: LiveRoom
) -> None:
    room_id, host_c = live_room.room_id, live_room.host_c
    mia, leo = [await make_account(n) for n in ("Mia", "Leo")]
    mia_c = await join(server, room_id, mia)
    leo_c = await join(server, room_id, leo)
    await leo_c.send("raise_hand")
    await host_c.expect("hand_raised", user_id=leo.user_id)
    await mia_c.send("raise_hand")
    await host_c.send("invite_to_speak", user_id=mia.user_id)
    await mia_c.send("accept_invitation")
    await host_c.send("make_moderator", user_id=mia.user_id)
    snapshot = await mia_c.expect("snapshot")
    assert snapshot["room"]["hand_queue"] == [leo.user_id]
    await leo_c.send("lower_hand")
    lowered = await mia_c.expect("hand_lowered", user_id=leo.user_id)
    assert lowered["version"] > snapshot["version"]


async def test_pages_carry_security_headers(server: RunningServer) -> None:
    async with server.http() as http:
        response = await http.get("/r/some-room?invite=secret-token")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "same-origin"
