"""Issue 4, end to end: two people in two Chromium processes, each with a fake microphone fed
from a generated WAV, through the real server (signalling, Redis, the aiortc SFU).

Maryam (Persian browser, 440 Hz microphone) signs up, opens a room from the lobby and speaks.
Sara (English browser, 660 Hz microphone) finds the room in the lobby, signs up on the room page
and taps to listen: she must hear 440 Hz within 3 s of the click. Speaking needs an account
(guests may only listen), which is why Sara signs up; guests listening are covered in
test_listening.py. Sara raises her hand, Maryam invites her, she accepts, comes on stage muted,
unmutes and Maryam hears 660 Hz. Maryam mutes her and stops hearing it; Maryam bans her, and her
attempt to rejoin is refused. Screenshots of the lobby and the room in both languages are saved
to artifacts/screenshots/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import Browsers, tid, tone_wav

pytestmark = pytest.mark.browser

TOLERANCE_HZ = 6


async def sign_up(page: Any, handle: str, name: str, switch: bool = False) -> None:
    """Fill the sign-up dialog; ``switch`` from the "sign in" dialog to it first."""
    if switch:
        await page.click(tid("auth-switch"))
    await page.fill(tid("auth-handle"), handle)
    await page.fill(tid("auth-display-name"), name)
    await page.fill(tid("auth-password"), "correct horse battery")
    await page.click(tid("auth-submit"))
    await page.wait_for_selector(tid("current-user"))


async def wait_for_tone(page: Any, freq: float, timeout_ms: float = 10_000) -> None:
    # Predicates are functions, not expression strings: the server's CSP forbids eval, and
    # Playwright evaluates a string predicate with it.
    await page.wait_for_function(
        "([f, tol]) => __audioProbe.firstTone(f, tol) !== null", arg=[freq, TOLERANCE_HZ],
        timeout=timeout_ms)


async def x_of(page: Any, testid: str) -> float:
    box = await page.locator(tid(testid)).bounding_box()
    assert box is not None, testid
    return float(box["x"])


async def test_two_people_speak_and_are_moderated_in_both_languages(
    browsers: Browsers, screenshot: Any, tmp_path: Path
) -> None:
    maryam_b = await browsers.launch(tone_wav(tmp_path / "a440.wav", 440))
    sara_b = await browsers.launch(tone_wav(tmp_path / "e660.wav", 660))

    # Maryam opens a room from the Persian lobby and is on stage, unmuted.
    host = await browsers.page(maryam_b, "fa-IR", "/")
    await host.click(tid("signup-open"))
    await sign_up(host, "maryam", "مریم")
    await host.click(tid("create-room-open"))
    await host.fill(tid("room-title-input"), "گپ شبانه")
    await host.click(tid("create-room"))
    await host.wait_for_url("**/r/*")
    room_id = host.url.rsplit("/", 1)[1]
    await host.click(tid("join-button"))
    await host.wait_for_selector(f"{tid('mic-toggle')}[data-muted='false']")
    maryam = await host.evaluate("audioRooms.view.state.me")

    # Sara finds it in the English lobby, signs up on the room page and taps to listen.
    guest = await browsers.page(sara_b, "en-US", "/")
    await guest.click(tid(f"room-link-{room_id}"))
    await guest.click(tid("signin-open-room"))
    await sign_up(guest, "sara", "Sara", switch=True)
    await guest.click(tid("join-button"))
    await wait_for_tone(guest, 440)
    elapsed = await guest.evaluate(
        f"__audioProbe.firstTone(440, {TOLERANCE_HZ}) - __audioProbe.joinClickAt")
    assert elapsed <= 3000, f"Sara heard 440 Hz {elapsed:.0f} ms after clicking join"
    sara = await guest.evaluate("audioRooms.view.state.me")

    # Hand, invitation, stage: she comes on stage muted and is heard once she unmutes.
    await guest.click(tid("raise-hand"))
    await guest.wait_for_selector(f"{tid('raise-hand')}[aria-pressed='true']")
    await host.click(tid(f"invite-{sara}"))
    await guest.click(tid("accept-invitation"))
    await guest.wait_for_selector(f"{tid('mic-toggle')}[data-muted='true']")
    await host.wait_for_selector(f"{tid(f'participant-{sara}')}[data-role='speaker']")
    assert await host.locator(tid(f"hand-{sara}")).count() == 0
    await guest.wait_for_timeout(500)
    assert await host.evaluate(f"__audioProbe.lastTone(660, {TOLERANCE_HZ})") is None, \
        "a new speaker is heard before unmuting"
    await guest.click(tid("mic-toggle"))
    await guest.wait_for_selector(f"{tid('mic-toggle')}[data-muted='false']")
    await wait_for_tone(host, 660)
    # Both speak: each sees both speaking rings (from the server's active_speakers).
    for page in (host, guest):
        for person in (maryam, sara):
            await page.wait_for_selector(f"{tid(f'participant-{person}')}[data-speaking='true']")
    assert await host.evaluate(f"__audioProbe.lastTone(440, {TOLERANCE_HZ})") is None, \
        "Maryam hears her own voice back"

    # Both languages, with both of them on stage.
    await check_layout(host, "fa", "rtl", maryam, sara)
    await check_layout(guest, "en", "ltr", maryam, sara)
    await screenshot(host, "room-fa")
    await screenshot(guest, "room-en")
    await lobby_screenshot(host, room_id, "fa", screenshot)
    await lobby_screenshot(guest, room_id, "en", screenshot)

    # Maryam mutes Sara: Sara cannot unmute herself, and Maryam stops hearing 660 Hz.
    await host.click(tid(f"person-menu-{sara}"))
    await host.click(tid(f"mute-{sara}"))
    await guest.wait_for_selector(
        f"{tid('mic-toggle')}[data-muted='true'][aria-disabled='true']")
    await host.wait_for_selector(tid(f"muted-{sara}"))
    await host.wait_for_function(
        """([f, tol]) => {
          const last = __audioProbe.lastTone(f, tol);
          return last !== null && performance.now() - last > 1500;
        }""", arg=[660, TOLERANCE_HZ], timeout=8000)
    await guest.click(tid("mic-toggle"), force=True)  # aria-disabled, not disabled: it explains
    await guest.wait_for_selector(f"{tid('toast')}:has-text('A moderator muted you')")

    # The ban needs a confirming click; then Sara is out and cannot come back.
    await host.click(tid(f"person-menu-{sara}"))
    await host.click(tid(f"ban-{sara}"))
    await host.wait_for_timeout(300)
    assert await guest.locator(tid("room-closed")).count() == 0
    await host.click(tid(f"confirm-ban-{sara}"))
    await guest.wait_for_selector(f"{tid('room-closed')}[data-reason='banned']")
    await host.wait_for_selector(tid(f"participant-{sara}"), state="detached")

    await guest.reload()
    await guest.click(tid("join-button"))
    await guest.wait_for_selector(f"{tid('room-closed')}[data-reason='banned']")
    assert "banned" in await guest.text_content(tid("room-closed"))
    assert await host.locator(tid(f"participant-{sara}")).count() == 0
    assert host.errors == [] and guest.errors == []


async def check_layout(page: Any, lang: str, direction: str, first: str, second: str) -> None:
    """Direction, language and font, and the stage and controls mirrored in right-to-left."""
    assert await page.evaluate("document.documentElement.lang") == lang
    assert await page.evaluate("getComputedStyle(document.body).direction") == direction
    assert await page.evaluate("document.fonts.check('16px Vazirmatn')")
    assert await page.evaluate(
        "[...document.fonts].some(f => f.family.includes('Vazirmatn') && f.status === 'loaded')")
    assert "Vazirmatn" in await page.evaluate("getComputedStyle(document.body).fontFamily")
    host_x = await x_of(page, f"participant-{first}")
    speaker_x = await x_of(page, f"participant-{second}")
    leave_x = await x_of(page, "leave-room")
    share_x = await x_of(page, "share-room")
    if direction == "rtl":  # the host, first on stage, and "leave", first control, on the right
        assert host_x > speaker_x and leave_x > share_x
    else:
        assert host_x < speaker_x and leave_x < share_x


async def lobby_screenshot(room_page: Any, room_id: str, lang: str, screenshot: Any) -> None:
    """The lobby in a second tab of the same person: the live room with both speakers."""
    page = await room_page.context.new_page()
    await page.goto("/")
    counts = page.locator(tid(f"room-counts-{room_id}"))
    await counts.wait_for()
    text = await counts.text_content()
    if lang == "fa":
        # Persian digits and words only: no ASCII digit, no English fallback ("0 listener").
        assert "۲" in text and "۰" in text, text
        assert not any(c.isascii() and c.isalnum() for c in text), text
        assert await page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    else:
        assert "2 speakers" in text, text
        assert await page.evaluate("getComputedStyle(document.body).direction") == "ltr"
    await screenshot(page, f"lobby-{lang}")
    await page.close()
