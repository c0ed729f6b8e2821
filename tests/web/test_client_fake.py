"""The web client in headless Chromium against the fake server: languages, joining as a
guest, the stage and moderation controls, reconnection rules, translated errors."""

from __future__ import annotations

import json
import time

import pytest

from tests.web.fake_server import FakeServer, participant

pytestmark = pytest.mark.browser

FA = json.loads((__import__("pathlib").Path(__file__).resolve().parents[2]
                 / "web" / "i18n" / "fa.json").read_text(encoding="utf-8"))


def tid(name: str) -> str:
    return f"[data-testid='{name}']"


def join_as_guest(page, name: str = "مهمان") -> None:
    page.fill(tid("guest-name"), name)
    page.click(tid("join-button"))
    page.wait_for_selector(tid("stage"))


def test_persian_is_default_for_persian_browsers_with_the_bundled_font(open_page) -> None:
    page = open_page("/", locale="fa-IR")
    page.wait_for_selector(tid("room-card-r1"))
    assert page.evaluate("document.documentElement.dir") == "rtl"
    assert page.evaluate("document.documentElement.lang") == "fa"
    assert page.evaluate("document.fonts.check('16px Vazirmatn')")
    assert page.evaluate(
        "[...document.fonts].some(f => f.family.includes('Vazirmatn') && f.status === 'loaded')")
    counts = page.text_content(tid("room-counts-r1"))
    assert "۱" in counts and "۲۳۴" in counts and not any(c.isascii() and c.isdigit() for c in counts)
    assert page.errors == []


def test_language_switch_is_remembered(open_page) -> None:
    page = open_page("/", locale="en-US")
    page.wait_for_selector(tid("room-card-r1"))
    assert page.evaluate("document.documentElement.dir") == "ltr"
    assert "1,234 listeners" in page.text_content(tid("room-counts-r1"))
    page.click(tid("lang-switch"))
    page.wait_for_function("document.documentElement.dir === 'rtl'")
    page.reload()
    page.wait_for_selector(tid("room-card-r1"))
    assert page.evaluate("document.documentElement.lang") == "fa"
    assert FA["lobby.live"] in page.text_content("#main")


def test_guest_listens_raises_hand_and_accepts_invitation(open_page, fake: FakeServer) -> None:
    page = open_page("/r/r1")
    join_as_guest(page)
    assert fake.requests[0] == ("POST", "/api/auth/guest", {"display_name": "مهمان"})
    join = fake.wait_for("join")
    assert join.get("token", "").startswith("guest-")

    offer = fake.wait_for("media_offer")
    sdp = offer["sdp"]
    assert sdp.count("a=sendonly") == 1 and sdp.count("a=recvonly") == fake.config["slots"]
    assert "opus" in sdp.lower()
    assert page.locator("audio").count() == fake.config["slots"]

    me = page.evaluate("audioRooms.view.state.me")
    page.click(tid("raise-hand"))
    assert fake.wait_for("raise_hand")
    fake.push({"type": "hand_raised", "user_id": me})
    page.wait_for_selector(f"{tid('raise-hand')}[aria-pressed='true']")

    fake.push({"type": "invited", "user_id": me, "by": "u-host"})
    page.wait_for_selector(tid("invitation-dialog"))
    page.wait_for_function(
        "document.querySelector('#announce-assertive').textContent.includes('Maryam')")
    page.click(tid("accept-invitation"))
    assert fake.wait_for("accept_invitation")
    fake.push({"type": "role_changed", "user_id": me, "role": "speaker", "by": me})
    page.wait_for_selector(f"{tid('mic-toggle')}[data-muted='true']")
    assert page.is_hidden(tid("raise-hand"))
    page.wait_for_function(
        "document.querySelector('#announce-assertive').textContent.length > 0")

    # The microphone stays silent until the server confirms the unmute.
    page.click(tid("mic-toggle"))
    assert fake.wait_for("unmute")["user_id"] == me
    fake.push({"type": "mute_changed", "user_id": me, "self_muted": False,
               "muted_by_moderator": False, "by": me})
    page.wait_for_selector(f"{tid('mic-toggle')}[data-muted='false']")
    assert page.evaluate("audioRooms.view.mic.track.enabled") is True
    assert page.errors == []


def test_moderator_controls_send_their_actions(open_page, fake: FakeServer) -> None:
    fake.roles["u-sara"] = "moderator"
    fake.hand_queues["r1"] = ["u4"]
    page = open_page("/r/r1", locale="en-US", session="t-sara")
    page.click(tid("join-button"))
    page.wait_for_selector(tid("hand-queue"))

    page.click(tid("invite-u4"))
    assert fake.wait_for("invite_to_speak")["user_id"] == "u4"

    page.click(tid("person-menu-u2"))
    assert page.get_attribute(tid("person-menu-u2"), "aria-expanded") == "true"
    assert page.is_visible(tid("make-moderator-u2"))
    page.click(tid("mute-u2"))
    assert fake.wait_for("mute")["user_id"] == "u2"

    page.click(tid("person-menu-u2"))
    page.click(tid("ban-u2"))
    assert fake.count("ban") == 0, "ban needs a second, confirming click"
    page.click(tid("confirm-ban-u2"))
    assert fake.wait_for("ban")["user_id"] == "u2"

    # The host outranks a moderator: no menu for them.
    assert page.locator(tid("person-menu-u-host")).count() == 0

    fake.push({"type": "participant_removed", "user_id": "u2", "by": "u-sara", "banned": True})
    page.wait_for_selector(tid("participant-u2"), state="detached")


def test_reconnects_after_a_drop_but_not_after_removal(open_page, fake: FakeServer) -> None:
    page = open_page("/r/r1", session="t-sara")
    page.click(tid("join-button"))
    page.wait_for_selector(tid("stage"))
    fake.wait_for("media_offer")

    before = len(fake.received)
    fake.close("u-sara", 1011)
    fake.wait_for("join", after=before)
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=connection-state][data-state=joined]').length"
        " && window.audioRooms.view.conn.attempt === 0", timeout=10000)
    joins = [m for m in fake.received if m["type"] == "join"]
    assert len(joins) == 2 and set(joins[1]) <= {"type", "token", "invite"}, joins[1]
    deadline = time.monotonic() + 5
    while fake.count("media_offer") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.count("media_offer") == 2, "a rejoin makes a fresh offer"

    fake.close("u-sara", 4011)
    page.wait_for_selector(f"{tid('room-closed')}[data-reason='removed']")
    time.sleep(1.5)
    assert fake.count("join") == 2


def test_server_errors_are_translated_sentences(open_page, fake: FakeServer) -> None:
    page = open_page("/r/r1", session="t-sara")
    page.click(tid("join-button"))
    page.wait_for_selector(tid("stage"))
    fake.push({"type": "error", "code": "stage_full", "message": "Stage full", "ref": "c1"},
              versioned=False)
    page.wait_for_selector(f"{tid('toast')}:has-text('{FA['error.stage_full']}')")


def test_active_speakers_ring_and_version_jumps(open_page, fake: FakeServer) -> None:
    page = open_page("/r/r1", session="t-sara")
    page.click(tid("join-button"))
    page.wait_for_selector(tid("stage"))
    fake.push({"type": "active_speakers", "speakers": [{"user_id": "u2", "level": 0.8}]},
              versioned=False)
    page.wait_for_selector(f"{tid('participant-u2')}[data-speaking='true']")
    page.wait_for_selector(f"{tid('participant-u2')}[data-speaking='false']", timeout=5000)

    # A listener is not sent moderator-only deltas, so versions jump; two deltas of one
    # transition share a version. Both cases are applied, without a rejoin.
    fake.version += 3
    fake.push({"type": "participant_joined", "participant": participant("u9", "Late")})
    fake.version -= 1
    fake.push({"type": "hand_raised", "user_id": "u9"})
    page.wait_for_selector(tid("hand-raised-u9"))
    fake.push({"type": "participant_left", "user_id": "u9", "reason": "left"}, versioned=False)
    page.wait_for_selector(tid("participant-u9"), state="detached")
    assert fake.count("join") == 1


def test_room_state_reducer(open_page) -> None:
    page = open_page("/")
    page.wait_for_selector(tid("live-rooms"))
    result = page.evaluate("""async () => {
      const rs = await import('/room-state.js');
      const p = (id, role, extra = {}) => ({user_id: id, display_name: id, role, is_guest: false,
        self_muted: true, muted_by_moderator: false, hand_raised: false, ...extra});
      let s = rs.fromWelcome({you: {user_id: 'me'}, version: 5, room: {id: 'r', title: 'T',
        host_id: 'h', status: 'live', participants: [p('h', 'host'), p('me', 'listener'),
        p('x', 'listener', {hand_raised: true})], hand_queue: [], invited: false}});
      const out = {};
      out.dup = rs.applyDelta(s, {type: 'hand_raised', user_id: 'me', version: 5}).state === s;
      out.stale = rs.applyDelta(s, {type: 'hand_raised', user_id: 'me', version: 4}).state === s;
      out.jump = rs.applyDelta(s, {type: 'hand_raised', user_id: 'x', version: 9}).state.version;
      let r = rs.applyDelta(s, {type: 'role_changed', user_id: 'me', role: 'moderator',
        by: 'h', version: 6});
      out.queueSeeded = r.state.handQueue;
      out.notice = r.notices[0];
      out.stage = rs.stage(r.state).map(q => q.user_id);
      r = rs.applyDelta(r.state, {type: 'participant_removed', user_id: 'x', by: 'me',
        banned: false, version: 7});
      out.queueAfter = r.state.handQueue;
      out.audience = rs.audience(r.state).length;
      return out;
    }""")
    assert result == {
        "dup": False,
        "stale": True,
        "jump": 9,
        "queueSeeded": ["x"],
        "notice": {"key": "notice.you_are_moderator", "urgent": True},
        "stage": ["h", "me"],
        "queueAfter": [],
        "audience": 0,
    }
