"""The web client's split: the room session runs without a DOM (in a worker, which has none),
and the rules the client mirrors from the server (reactions, handle and name limits) are the
ones /api/config gives, not copies."""

from __future__ import annotations

import re

import pytest

from audio_rooms.accounts.handles import DISPLAY_NAME_MAX, HANDLE_RE
from audio_rooms.domain.actions import REACTION_NAMES
from tests.conftest import AccountFactory, RunningServer, create_room, join
from tests.web.browser import Browsers, tid
from tests.web.test_client import signed_in_page

pytestmark = pytest.mark.browser

# A module worker: no document, no window. Importing the session and driving it through a
# closing room there fails if it touches the page.
WORKER = """
const { RoomSession, Phase } = await import(self.origin + "/room-session.js");
const seen = [];
const session = new RoomSession("r1", null, {
  config: { slots: 2 }, audioPool: { detachAll() { seen.push("detached"); } },
  events: { changed: () => seen.push("changed"), notice: (key) => seen.push(key),
            invitation: (open) => seen.push(`invitation:${open}`) },
});
session.closed("room_ended");
postMessage({ phase: session.phase, closed: Phase.CLOSED, slots: session.slots, seen });
"""


async def test_the_room_session_runs_without_a_dom(browsers: Browsers) -> None:
    # The page's CSP allows no blob: worker (rightly); the test lifts it to start one.
    browser = await browsers.launch()
    ctx = await browser.new_context(base_url=browsers.base_url, bypass_csp=True)
    page = await ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    await page.goto("/")
    await page.wait_for_selector(tid("live-rooms"))
    result = await page.evaluate(
        """async (source) => {
          const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
          const worker = new Worker(url, { type: "module" });
          return await new Promise((resolve, reject) => {
            worker.onmessage = (e) => resolve(e.data);
            worker.onerror = (e) => reject(new Error(e.message || "worker failed"));
          });
        }""",
        WORKER,
    )
    assert result["phase"] == result["closed"] == "closed"
    assert result["slots"] == 2
    assert "closed.room_ended" in result["seen"] and "changed" in result["seen"]
    assert "detached" in result["seen"]  # the media went with the room
    assert page.errors == []


async def test_reactions_and_account_rules_come_from_the_server(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    host, sara = await make_account("Maryam"), await make_account("Sara")
    room_id = await create_room(server, host)
    await join(server, room_id, host)
    page = await signed_in_page(browsers, server, sara.token, "en-US", f"/r/{room_id}")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("stage"))
    shown = await page.eval_on_selector_all(
        "button.reaction", "bs => bs.map(b => [b.dataset.testid, b.textContent])")
    assert shown == [[f"reaction-{name}", emoji] for name, emoji in REACTION_NAMES.items()]

    signup = await browsers.page(await browsers.launch(), "en-US", "/")
    await signup.wait_for_selector(tid("live-rooms"))
    await signup.click(tid("signup-open"))
    handle = signup.locator(tid("auth-handle"))
    pattern = await handle.get_attribute("pattern")
    # The server's rule, with upper case let through (the server lower-cases first).
    for typed in ("sara_01", "Sara_01"):
        assert re.fullmatch(pattern, typed) and HANDLE_RE.fullmatch(typed.lower())
    for typed in ("sa", "sara.k", "sara-k", "x" * 33):
        assert not re.fullmatch(pattern, typed) and not HANDLE_RE.fullmatch(typed.lower())
    name_max = await signup.locator(tid("auth-display-name")).get_attribute("maxlength")
    assert name_max == str(DISPLAY_NAME_MAX)
    assert page.errors == [] and signup.errors == []
