"""The client SDK (web/sdk/) in headless Chromium against the real server: its example page,
which uses nothing but the SDK, joins a room as a guest and hears an aiortc host's tone; and a
program using the SDK raises a hand, comes on stage, speaks and moderates, each action settling
on the server's answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AccountFactory, Client, RunningServer, eventually, join
from tests.web.browser import Browsers, tid
from tests.web.test_listening import heard_within, speaking_host  # noqa: F401  (a fixture)
from tests.web.test_relay import udp_blocked_page

pytestmark = pytest.mark.browser


async def listeners(server: RunningServer, room_id: str) -> int:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return int((await http.get(f"/api/rooms/{room_id}")).json()["room"]["listener_count"])


async def test_the_example_page_joins_as_a_guest_and_hears_the_host(
    browsers: Browsers, server: RunningServer, speaking_host: tuple[str, Client]  # noqa: F811
) -> None:
    room_id, host = speaking_host
    page = await browsers.page(await browsers.launch(), "en-US",
                               f"/sdk/example.html?room={room_id}")
    await page.wait_for_function(
        "(id) => document.querySelector(\"[data-testid='room-id']\").value === id", arg=room_id)
    await page.fill(tid("guest-name"), "Nima")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("room"))
    elapsed = await heard_within(page, 440, 6, 10)
    print(f"the SDK example heard 440 Hz {elapsed:.0f} ms after the join click")
    await page.wait_for_selector(f"{tid('media')}[data-state='webrtc']")
    assert await page.text_content(tid("room-title")) == "گپ شبانه"
    assert "Joined as Nima" in (await page.text_content(tid("status")) or "")

    # Who speaks, from the server's active_speakers; a mute shows and silences.
    host_row = tid(f"speaker-{host.user_id}")
    await page.wait_for_selector(f"{host_row}[data-speaking='true']")
    assert await listeners(server, room_id) == 1
    await host.send("mute", user_id=host.user_id)
    await page.wait_for_selector(f"{host_row}[data-speaking='false']")
    assert "muted" in (await page.text_content(host_row) or "")

    # Leaving tells the server at once: the room counts one listener fewer.
    await page.click(tid("leave-button"))
    await eventually(lambda: _zero(server, room_id), 5)
    assert page.errors == []


async def _zero(server: RunningServer, room_id: str) -> bool:
    return await listeners(server, room_id) == 0


async def test_without_udp_the_example_page_hears_the_host_over_the_relay(
    browsers: Browsers, speaking_host: tuple[str, Client], tmp_path: Path  # noqa: F811
) -> None:
    """The SDK served from /sdk/ finds its relay worklet and the decoder by itself."""
    room_id, _ = speaking_host
    page = await udp_blocked_page(browsers, tmp_path / "profile",
                                  f"/sdk/example.html?room={room_id}")
    await page.wait_for_function(
        "(id) => document.querySelector(\"[data-testid='room-id']\").value === id", arg=room_id)
    await page.fill(tid("guest-name"), "Sara")
    await page.click(tid("join-button"))
    await page.wait_for_selector(f"{tid('media')}[data-state='relay']", timeout=15_000)
    await heard_within(page, 440, 6, 15)
    assert page.errors == []


# A program on the server's origin, with nothing but the SDK: `token` is a session token its
# own back end got (no cookie). Each step returns what the program saw.
PROGRAM = """
async ([roomId, token]) => {
  const sdk = await import("/sdk/index.js");
  const client = await sdk.connect({ token });
  const room = await client.join(roomId);
  const seen = [];
  room.on("message", (msg) => seen.push(msg.type));
  const invited = new Promise((resolve) => room.on("invitation", (open) => open && resolve()));
  const closed = new Promise((resolve) => room.on("closed", resolve));
  const errors = [];
  room.on("error", (msg) => errors.push([msg.code, msg.ref]));
  room.on("failure", ({ code }) => errors.push(code));
  // Refused: the promise rejects with the server's code, and its message is an event too.
  const refused = await room.endRoom().then(() => null, (err) => [err.name, err.code]);
  const raised = await room.raiseHand();
  window.sdkTest = { room, seen, invited, closed, refused, raised, user: client.user };
  return { user: client.user.id, role: room.role, refused, raised: typeof raised.version,
           errors };
}
"""


async def test_a_program_listens_raises_a_hand_speaks_and_moderates_with_the_sdk(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    host, sara, reza = (await make_account("Maryam"), await make_account("Sara"),
                        await make_account("Reza"))
    async with server.http(host.token) as http:
        created = await http.post("/api/rooms", json={"title": "SDK", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    host_c = await join(server, room_id, host)
    reza_c = await join(server, room_id, reza)
    page = await browsers.page(await browsers.launch(), "en-US", "/sdk/example.html")
    try:
        first: dict[str, Any] = await page.evaluate(PROGRAM, [room_id, sara.token])
        assert first == {"user": sara.user_id, "role": "listener",
                         "refused": ["RoomError", "not_permitted"], "raised": "number",
                         "errors": [["not_permitted", "c1"]]}
        await host_c.expect("hand_raised", user_id=sara.user_id)

        # Invited, she accepts: on stage, muted, then unmutes herself.
        await host_c.send("invite_to_speak", user_id=sara.user_id)
        await page.evaluate("() => sdkTest.invited")
        role = await page.evaluate(
            "async () => { await sdkTest.room.acceptInvitation(); return sdkTest.room.role; }")
        assert role == "speaker"
        await host_c.expect("role_changed", user_id=sara.user_id, role="speaker")
        await page.evaluate("() => sdkTest.room.setMicrophone(true)")
        await host_c.expect("mute_changed", user_id=sara.user_id, self_muted=False)

        # Made a moderator, she moderates Reza: invite, mute, move to the audience, ban.
        await host_c.send("make_moderator", user_id=sara.user_id)
        await page.wait_for_function("() => sdkTest.room.role === 'moderator'")
        await reza_c.send("raise_hand")
        await page.wait_for_function(
            "(id) => sdkTest.room.state.handQueue.includes(id)", arg=reza.user_id)
        await page.evaluate("(id) => sdkTest.room.inviteToSpeak(id)", reza.user_id)
        await reza_c.expect("invited", user_id=reza.user_id)
        await reza_c.send("accept_invitation")
        await page.wait_for_function(
            "(id) => sdkTest.room.state.participants.get(id)?.role === 'speaker'",
            arg=reza.user_id)
        await page.evaluate("(id) => sdkTest.room.mute(id)", reza.user_id)
        await reza_c.expect("mute_changed", user_id=reza.user_id, muted_by_moderator=True)
        await page.evaluate("(id) => sdkTest.room.moveToAudience(id)", reza.user_id)
        await reza_c.expect("role_changed", user_id=reza.user_id, role="listener")
        # Invited again, Reza declines: the moderator sees the invitation go.
        await page.evaluate("(id) => sdkTest.room.inviteToSpeak(id)", reza.user_id)
        await reza_c.expect("invited", user_id=reza.user_id)
        await reza_c.send("decline_invitation")
        await page.wait_for_function(
            "() => sdkTest.seen.includes('invitation_declined')")
        await page.evaluate("(id) => sdkTest.room.ban(id)", reza.user_id)
        assert await reza_c.closed_with() == 4011

        # She ends the room: her promise settles on the server's ack, and she is told why
        # the room closed, as the host is.
        ended = await page.evaluate(
            "() => sdkTest.room.endRoom().then((ack) => ack.type, (err) => err.code)")
        assert ended == "ack"
        await host_c.expect("room_ended", reason="ended_by_moderator", by=sara.user_id)
        closed = await page.evaluate("() => sdkTest.closed")
        assert closed == {"reason": "room_ended"}
        seen = set(await page.evaluate("() => sdkTest.seen"))
        assert {"invited", "role_changed", "mute_changed", "hand_raised", "participant_removed",
                "room_ended", "ack", "error"} <= seen
        assert page.errors == []
    finally:
        await host_c.close()
        await reza_c.close()
