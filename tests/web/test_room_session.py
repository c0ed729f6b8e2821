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
const { RoomSession, Phase } = await import(self.origin + "/sdk/room-session.js");
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


# The audience state without a DOM (docs/protocol.md, "The audience"): the welcome's count,
# sample and first page; `audience` messages; pages read on demand with the cursor, one at a
# time, appended without duplicates, a fresh reading superseding a page on its way; removals
# and role changes moving people between the stage and the audience; moderators learning
# hand-raisers from `hand_raised.participant`.
AUDIENCE_WORKER = """
const rs = await import(self.origin + "/sdk/room-state.js");
const { RoomSession, AUDIENCE_PAGE_SIZE } = await import(self.origin + "/sdk/room-session.js");
const p = (id, role = "listener", extra = {}) => ({ user_id: id, display_name: `N ${id}`, role,
  is_guest: false, self_muted: true, muted_by_moderator: false, hand_raised: false, ...extra });
const ids = (list) => list.map((q) => q.user_id);
const welcome = (me, myRole, extra = []) => ({ you: { user_id: me }, version: 3, room: {
  id: "r", title: "T", host_id: "h", status: "live", hand_queue: [], invited: false,
  participants: [p("h", "host"), p(me, myRole), ...extra],
  audience: { count: 1234, sample: [p("s1"), p(me)], page: {
    listeners: [p("a"), p("b"), p(me)], next: "cur1" } } } });
const out = {};

// A listener's session, paging through a fake connection (no socket, no DOM).
const sent = [];
const session = new RoomSession("r", null, { config: {}, audioPool: {}, events: {} });
session.conn = { send(type, fields) { sent.push({ type, ...fields }); return `c${sent.length}`; } };
session.state = rs.fromWelcome(welcome("me", "listener"));
session.audiencePacingMs = 0; // pacing is checked at the end
let s = session.state;
out.welcome = { count: s.audience.count, sample: ids(s.audience.sample),
  listeners: ids(rs.audience(s)), more: rs.audienceHasMore(s), length: rs.audienceLength(s),
  faces: ids(rs.audienceFaces(s)), stage: ids(rs.stage(s)) };

session.delta({ type: "audience", count: 1240, sample: [p("s2"), p("s1")] });
out.tick = { count: session.state.audience.count, sample: ids(session.state.audience.sample),
  version: session.state.version };

session.loadMoreAudience();
session.loadMoreAudience(); // one page at a time: nothing more is sent while one is on its way
out.sent = sent.slice();
out.pageSize = AUDIENCE_PAGE_SIZE;
session.delta({ type: "audience_page", ref: "c999", count: 1, listeners: [p("zz")], next: null });
out.strayIgnored = ids(rs.audience(session.state));
session.delta({ type: "audience_page", ref: "c1", count: 1241,
  listeners: [p("b"), p("c"), p("d")], next: "cur2" });
out.appended = { listeners: ids(rs.audience(session.state)), count: session.state.audience.count,
  loading: session.audienceLoading };

// A fresh reading (the list reopened) supersedes the page on its way and replaces the list.
session.loadMoreAudience();
session.refreshAudience();
out.refreshSent = sent.slice(1);
session.delta({ type: "audience_page", ref: "c2", count: 9, listeners: [p("old")], next: "x" });
session.delta({ type: "audience_page", ref: "c3", count: 1239,
  listeners: [p("a"), p("c")], next: null });
s = session.state;
out.fresh = { listeners: ids(rs.audience(s)), more: rs.audienceHasMore(s),
  length: rs.audienceLength(s), count: s.audience.count };
session.loadMoreAudience();
out.sentAtEnd = sent.length;

// Removed: dropped from the pages and the faces at once; the count stays the server's.
session.delta({ type: "participant_removed", user_id: "a", by: "h", banned: false, version: 4 });
session.delta({ type: "audience", count: 1239, sample: [p("s2"), p("c")] });
session.delta({ type: "participant_removed", user_id: "c", by: "h", banned: false, version: 5 });
s = session.state;
out.removed = { listeners: ids(rs.audience(s)), sample: ids(s.audience.sample),
  count: s.audience.count };

// On stage from the audience (with the participant), and back.
session.state = rs.applyAudiencePage(session.state, { count: 1239,
  listeners: [p("e"), p("f")], next: null });
session.delta({ type: "role_changed", user_id: "e", role: "speaker", by: "h", version: 6,
  participant: p("e", "speaker") });
s = session.state;
out.onStage = { stage: ids(rs.stage(s)), listeners: ids(rs.audience(s)),
  role: s.participants.get("e")?.role };
// A page read just before the change still lists them as a listener: not taken back.
out.stalePage = ids(rs.audience(rs.applyAudiencePage(s, { count: 1239,
  listeners: [p("e"), p("g")], next: null })));
session.delta({ type: "role_changed", user_id: "e", role: "listener", by: "h", version: 7 });
s = session.state;
out.offStage = { stage: ids(rs.stage(s)), held: s.participants.has("e"),
  listeners: ids(rs.audience(s)) };
// Myself moved to the audience: still held, as the listener I am.
session.delta({ type: "role_changed", user_id: "me", role: "speaker", by: "h", version: 8 });
out.meOnStage = { stage: ids(rs.stage(session.state)),
  listeners: ids(rs.audience(session.state)) };
session.delta({ type: "role_changed", user_id: "me", role: "listener", by: "h", version: 9 });
out.meBack = rs.myRole(session.state);

// A moderator learns a raised hand's listener from the delta and names them.
let m = rs.fromWelcome(welcome("mod", "moderator"));
let r = rs.applyDelta(m, { type: "hand_raised", user_id: "x", version: 4,
  participant: p("x", "listener", { hand_raised: true }) });
out.hand = { queue: r.state.handQueue, notice: r.notices[0],
  name: rs.listenerView(r.state, p("x")).display_name,
  raised: rs.listenerView(r.state, p("x")).hand_raised,
  stage: ids(rs.stage(r.state)) };
r = rs.applyDelta(r.state, { type: "participant_left", user_id: "x", reason: "left",
  version: 5 });
out.handLeft = { queue: r.state.handQueue, held: r.state.participants.has("x") };

// A snapshot (made moderator) keeps pages read beyond its first one.
const long = rs.applyAudiencePage(rs.fromWelcome(welcome("me", "speaker")),
  { count: 1300, listeners: [p("c"), p("d"), p("e")], next: "cur9" });
const snap = rs.fromSnapshot(long, { type: "snapshot", version: 10,
  room: welcome("me", "moderator").room });
out.snapshot = { listeners: ids(rs.audience(snap)), next: snap.audience.next,
  count: snap.audience.count };

// Paced: a page asked for right after another waits its turn, then goes by itself.
const paced = [];
const slow = new RoomSession("r", null, { config: {}, audioPool: {}, events: {} });
slow.conn = { send(type, fields) { paced.push({ at: Date.now(), ...fields });
  return `p${paced.length}`; } };
slow.state = rs.fromWelcome(welcome("me", "listener"));
slow.loadMoreAudience();
slow.delta({ type: "audience_page", ref: "p1", count: 5, listeners: [p("c")], next: "cur2" });
slow.loadMoreAudience();
out.pacedAtOnce = paced.length;
await new Promise((resolve) => setTimeout(resolve, 300));
out.pacedLater = paced.map((q) => q.cursor);
out.pacedGap = paced[1].at - paced[0].at >= 90;
// Refused as too many: nothing asked again at once (a retry follows a second later).
slow.audiencePageRefused("rate_limited");
out.afterRateLimit = { sent: paced.length, loading: slow.audienceLoading };
slow.stopAudience();

postMessage(out);
"""


async def run_worker(browsers: Browsers, source: str) -> dict[str, object]:
    """Run a module worker's source on the server's origin and return what it posts."""
    browser = await browsers.launch()
    ctx = await browser.new_context(base_url=browsers.base_url, bypass_csp=True)
    page = await ctx.new_page()
    await page.goto("/")
    await page.wait_for_selector(tid("live-rooms"))
    result: dict[str, object] = await page.evaluate(
        """async (source) => {
          const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
          const worker = new Worker(url, { type: "module" });
          return await new Promise((resolve, reject) => {
            worker.onmessage = (e) => resolve(e.data);
            worker.onerror = (e) => reject(new Error(e.message || "worker failed"));
          });
        }""",
        source,
    )
    return result


async def test_the_audience_state_without_a_dom(browsers: Browsers) -> None:
    out = await run_worker(browsers, AUDIENCE_WORKER)
    assert out["welcome"] == {
        "count": 1234, "sample": ["s1", "me"], "listeners": ["a", "b", "me"], "more": True,
        # While pages remain, the list spans the whole count (a spacer for the unread).
        "length": 1234, "faces": ["me", "s1"], "stage": ["h"],
    }
    assert out["tick"] == {"count": 1240, "sample": ["s2", "s1"], "version": 3}
    assert out["sent"] == [{"type": "audience_page", "limit": 100, "cursor": "cur1"}]
    assert out["pageSize"] == 100
    assert out["strayIgnored"] == ["a", "b", "me"]
    assert out["appended"] == {"listeners": ["a", "b", "me", "c", "d"], "count": 1241,
                               "loading": False}
    assert out["refreshSent"] == [
        {"type": "audience_page", "limit": 100, "cursor": "cur2"},
        {"type": "audience_page", "limit": 100},
    ]
    assert out["fresh"] == {"listeners": ["a", "c"], "more": False, "length": 2, "count": 1239}
    assert out["sentAtEnd"] == 3  # read to the end: nothing more to ask for
    assert out["removed"] == {"listeners": [], "sample": ["s2"], "count": 1239}
    assert out["onStage"] == {"stage": ["h", "e"], "listeners": ["f"], "role": "speaker"}
    assert out["stalePage"] == ["f", "g"]
    # Back in the audience: off the stage, and at the end of a list read to its end.
    assert out["offStage"] == {"stage": ["h"], "held": False, "listeners": ["f", "e"]}
    assert out["meOnStage"] == {"stage": ["h", "me"], "listeners": ["f", "e"]}
    assert out["meBack"] == "listener"
    assert out["hand"] == {
        "queue": ["x"], "notice": {"key": "notice.hand_raised", "params": {"name": "N x"}},
        "name": "N x", "raised": True, "stage": ["h", "mod"],
    }
    assert out["handLeft"] == {"queue": [], "held": False}
    assert out["pacedAtOnce"] == 1 and out["pacedLater"] == ["cur1", "cur2"]
    assert out["pacedGap"]
    assert out["afterRateLimit"] == {"sent": 2, "loading": False}
    # (and not myself, on stage in it)
    assert out["snapshot"] == {"listeners": ["a", "b", "c", "d", "e"], "next": "cur9",
                               "count": 1234}
