"""A guest whose browser can get no UDP path listens over the relay (the listen WebSocket) by
itself: Chromium's WebRTC is told to use no UDP but through a proxy, and there is none, so the
page falls back after a few seconds, shows the badge and hears the host's tone; a moderator's
mute silences it. Once with WebCodecs, once with it hidden (the vendored WebAssembly decoder).
A signed-in listener on the relay keeps the room's other features: the host sees the hand it
raises, and invited on stage it is told that speaking needs a better connection."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AccountFactory, Client, RunningServer
from tests.web.browser import CHROMIUM, PROBE_JS, Browsers, chromium_args, tid
from tests.web.test_listening import heard_within, speaking_host  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

HIDE_WEBCODECS = "delete window.AudioDecoder; delete window.AudioEncoder;"


async def udp_blocked_page(browsers: Browsers, profile: Path, path: str,
                           init_script: str | None = None, token: str | None = None,
                           extra_args: tuple[str, ...] = ()) -> Any:
    """A page in a Chromium whose profile forbids WebRTC any UDP that is not proxied."""
    prefs = profile / "Default" / "Preferences"
    prefs.parent.mkdir(parents=True, exist_ok=True)
    prefs.write_text(json.dumps({"webrtc": {"ip_handling_policy": "disable_non_proxied_udp"}}))
    context = await browsers.playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=[*chromium_args(None), *extra_args],
        viewport={"width": 390, "height": 844}, locale="en-US", base_url=browsers.base_url)
    browsers.launched.append(context)
    if token is not None:
        await context.add_cookies(
            [{"name": "ar_session", "value": token, "url": browsers.base_url}])
    await context.add_init_script(script=PROBE_JS)
    if init_script:
        await context.add_init_script(script=init_script)
    page = context.pages[0] if context.pages else await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    await page.goto(path)
    return page


async def listen_without_udp(browsers: Browsers, tmp_path: Path, room_id: str, host: Client,
                             init_script: str | None, decoder: str) -> None:
    page = await udp_blocked_page(browsers, tmp_path / "profile", f"/r/{room_id}", init_script)
    await page.fill(tid("guest-name"), "Sara")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("stage"))
    await page.wait_for_selector(f"{tid('relay-badge')}[data-state='listening']",
                                 timeout=15_000)
    assert await page.get_attribute(tid("relay-badge"), "data-decoder") == decoder
    assert await page.text_content(tid("relay-badge")) == "Listening over a relay"
    elapsed = await heard_within(page, 440, 6, 15)
    print(f"heard 440 Hz over the relay ({decoder}) {elapsed:.0f} ms after the join click")
    # WebRTC really had no path: the page never connected it.
    assert await page.evaluate("audioRooms.view.session.media.state") != "connected"

    await host.send("mute", user_id=host.user_id)
    await asyncio.sleep(1.5)  # what was buffered plays out
    await page.evaluate("__audioProbe.history.length = 0")
    await asyncio.sleep(1.5)
    assert await page.evaluate("__audioProbe.firstTone(440, 6)") is None, "heard after a mute"
    await host.send("unmute", user_id=host.user_id)
    await page.wait_for_function("() => __audioProbe.firstTone(440, 6) !== null",
                                 timeout=10_000)
    assert page.errors == []


async def test_without_udp_a_guest_hears_the_host_over_the_relay(
    browsers: Browsers, speaking_host: tuple[str, Client], tmp_path: Path,  # noqa: F811
) -> None:
    room_id, host = speaking_host
    await listen_without_udp(browsers, tmp_path, room_id, host, None, "webcodecs")


async def test_without_webcodecs_the_webassembly_decoder_plays_the_relay(
    browsers: Browsers, speaking_host: tuple[str, Client], tmp_path: Path,  # noqa: F811
) -> None:
    room_id, host = speaking_host
    await listen_without_udp(browsers, tmp_path, room_id, host, HIDE_WEBCODECS, "wasm")


async def test_a_relay_listener_raises_a_hand_the_host_sees_and_is_told_speaking_needs_webrtc(
    browsers: Browsers, speaking_host: tuple[str, Client], server: RunningServer,  # noqa: F811
    make_account: AccountFactory, tmp_path: Path,
) -> None:
    room_id, host = speaking_host
    sara = await make_account("Sara")
    page = await udp_blocked_page(browsers, tmp_path / "profile", f"/r/{room_id}",
                                  token=sara.token)
    await page.click(tid("join-button"))
    await page.wait_for_selector(f"{tid('relay-badge')}[data-state='listening']",
                                 timeout=15_000)
    await heard_within(page, 440, 6, 15)

    await page.click(tid("raise-hand"))
    await page.wait_for_selector(f"{tid('raise-hand')}[aria-pressed='true']")
    raised = await host.expect("hand_raised", timeout=5, user_id=sara.user_id)
    assert raised["participant"]["display_name"] == "Sara"

    await host.send("invite_to_speak", user_id=sara.user_id)
    await page.click(tid("accept-invitation"))
    await host.expect("role_changed", timeout=5, user_id=sara.user_id, role="speaker")
    await page.wait_for_selector(
        f"{tid('toast')}:has-text('Speaking needs a better connection')", timeout=5_000)
    # WebRTC still has no path, so the relay goes on playing the host meanwhile.
    await page.evaluate("__audioProbe.history.length = 0")
    await page.wait_for_function("() => __audioProbe.firstTone(440, 6) !== null",
                                 timeout=10_000)
    assert await page.get_attribute(tid("relay-badge"), "data-state") == "listening"
    assert page.errors == []
