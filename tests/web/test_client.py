"""The client's own rules in headless Chromium against the real server: the language choice, a
new moderator seeing the hand queue (the server's `snapshot`), what a guest is (not) offered,
batched reactions, and the pure room-state reducer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AccountFactory, RunningServer, create_room, join
from tests.web.browser import Browsers, tid

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parents[2] / "audio_rooms" / "web"
FA = json.loads((WEB / "i18n" / "fa.json").read_text(encoding="utf-8"))


async def signed_in_page(browsers: Browsers, server: RunningServer, token: str, locale: str,
                         path: str) -> Any:
    browser = await browsers.launch()
    ctx = await browsers.context(browser, locale)
    await ctx.add_cookies([{"name": "ar_session", "value": token, "url": server.base_url}])
    page = await ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    await page.goto(path)
    return page


async def test_language_follows_the_browser_and_the_switch_is_remembered(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    host = await make_account("Maryam")
    room_id = await create_room(server, host, title="Evening chat")
    page = await browsers.page(await browsers.launch(), "en-US", "/")
    await page.wait_for_selector(tid(f"room-card-{room_id}"))
    assert await page.evaluate("document.documentElement.dir") == "ltr"
    assert "0 listeners" in await page.text_content(tid(f"room-counts-{room_id}"))

    await page.click(tid("lang-switch"))
    await page.wait_for_function("() => document.documentElement.dir === 'rtl'")
    await page.reload()
    await page.wait_for_selector(tid(f"room-card-{room_id}"))
    assert await page.evaluate("document.documentElement.lang") == "fa"
    assert FA["lobby.live"] in await page.text_content("#main")
    assert page.errors == []


async def test_a_new_moderator_sees_the_hand_queue_in_order(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    """Raised hands are hidden from speakers; made moderator, the server sends a `snapshot` and
    the hand queue appears, in the order the hands went up."""
    host, sara = await make_account("Maryam"), await make_account("Sara")
    ali, reza = await make_account("Ali"), await make_account("Reza")
    room_id = await create_room(server, host)
    host_c = await join(server, room_id, host)
    page = await signed_in_page(browsers, server, sara.token, "en-US", f"/r/{room_id}")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("stage"))

    await host_c.send("invite_to_speak", user_id=sara.user_id)
    await page.click(tid("accept-invitation"))
    await page.wait_for_selector(f"{tid('mic-toggle')}[data-muted='true']")
    for listener in (reza, ali):
        client = await join(server, room_id, listener)
        await client.send("raise_hand")
        await host_c.expect("hand_raised", user_id=listener.user_id)
    await page.wait_for_selector(tid(f"participant-{ali.user_id}"))
    assert await page.locator(tid("hand-queue")).count() == 0
    assert await page.locator(tid(f"hand-raised-{ali.user_id}")).count() == 0

    await host_c.send("make_moderator", user_id=sara.user_id)
    await page.wait_for_selector(tid(f"hand-{ali.user_id}"))
    queue = await page.eval_on_selector_all(
        f"{tid('hand-queue')} li", "items => items.map(li => li.dataset.testid)")
    assert queue == [f"hand-{reza.user_id}", f"hand-{ali.user_id}"]
    assert await page.locator(tid(f"hand-raised-{reza.user_id}")).count() == 1
    assert page.errors == []


async def test_room_state_reducer(browsers: Browsers) -> None:
    page = await browsers.page(await browsers.launch(), "fa-IR", "/")
    await page.wait_for_selector(tid("live-rooms"))
    result = await page.evaluate("""async () => {
      const rs = await import('/sdk/room-state.js');
      const p = (id, role, extra = {}) => ({user_id: id, display_name: id, role, is_guest: false,
        self_muted: true, muted_by_moderator: false, hand_raised: false, ...extra});
      const room = (participants, queue = []) => ({id: 'r', title: 'T', host_id: 'h',
        status: 'live', participants, hand_queue: queue, invited: false});
      let s = rs.fromWelcome({you: {user_id: 'me'}, version: 5, room: room([p('h', 'host'),
        p('me', 'listener'), p('x', 'listener', {hand_raised: true})])});
      const out = {};
      out.dup = rs.applyDelta(s, {type: 'hand_raised', user_id: 'me', version: 5}).state === s;
      out.stale = rs.applyDelta(s, {type: 'hand_raised', user_id: 'me', version: 4}).state === s;
      out.jump = rs.applyDelta(s, {type: 'hand_raised', user_id: 'x', version: 9}).state.version;
      let r = rs.applyDelta(s, {type: 'role_changed', user_id: 'me', role: 'moderator',
        by: 'h', version: 6});
      out.notice = r.notices[0];
      out.stage = rs.stage(r.state).map(q => q.user_id);
      // The server's snapshot replaces the room: its hand queue is the truth, in its order.
      const snap = rs.fromSnapshot(r.state, {type: 'snapshot', version: 6, room: room([
        p('h', 'host'), p('me', 'moderator'), p('x', 'listener', {hand_raised: true}),
        p('y', 'listener', {hand_raised: true})], ['y', 'x'])});
      out.snapshotQueue = snap.handQueue;
      out.snapshotMe = snap.me;
      out.staleSnapshot = rs.fromSnapshot(snap, {type: 'snapshot', version: 3,
        room: room([])}) === snap;
      r = rs.applyDelta(snap, {type: 'participant_removed', user_id: 'x', by: 'me',
        banned: false, version: 7});
      out.queueAfter = r.state.handQueue;
      out.audience = rs.audience(r.state).length;
      return out;
    }""")
    assert result == {
        "dup": False,
        "stale": True,
        "jump": 9,
        "notice": {"key": "notice.you_are_moderator", "urgent": True},
        "stage": ["h", "me"],
        "snapshotQueue": ["y", "x"],
        "snapshotMe": "me",
        "staleSnapshot": True,
        "queueAfter": ["y"],
        "audience": 1,
    }


async def test_guests_are_offered_only_listening_and_reactions_arrive_as_counts(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    """A guest has no hand to raise, a moderator's menu for a guest has no invitation, and a
    crowd's reactions show as the counts of the server's batch."""
    host, guest = await make_account("Maryam"), await make_account("Visitor", guest=True)
    room_id = await create_room(server, host)
    host_page = await signed_in_page(browsers, server, host.token, "en-US", f"/r/{room_id}")
    await host_page.click(tid("join-button"))
    await host_page.wait_for_selector(tid("stage"))
    assert await host_page.locator(tid("accounts-only")).get_attribute("aria-pressed") == "false"

    guest_page = await signed_in_page(browsers, server, guest.token, "en-US", f"/r/{room_id}")
    await guest_page.click(tid("join-button"))
    await guest_page.wait_for_selector(tid("guest-listens"))
    assert await guest_page.locator(tid("raise-hand")).count() == 0

    await host_page.click(tid(f"person-menu-{guest.user_id}"))
    await host_page.wait_for_selector(tid(f"remove-{guest.user_id}"))
    assert await host_page.locator(tid(f"menu-invite-{guest.user_id}")).count() == 0
    await host_page.click(tid(f"menu-close-{guest.user_id}"))

    clappers = [await join(server, room_id, await make_account(f"C{i}", guest=True))
                for i in range(3)]
    for clapper in clappers:
        await clapper.send("reaction", emoji="👏")
    await guest_page.wait_for_function(
        "() => document.querySelector('[data-testid=reaction-counts]').textContent"
        ".includes('👏×3')")

    await host_page.click(tid("accounts-only"))
    await host_page.wait_for_selector(f"{tid('accounts-only')}[aria-pressed='true']")
    assert host_page.errors == [] and guest_page.errors == []
