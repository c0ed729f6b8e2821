"""In the browser: a Persian-speaking user of B opens a room on A by its address in B's own
client, is asked to allow rooms on A, allows them, and hears the host's tone through B; then
raises a hand, is invited on stage by A's host, and A's own listener hears her microphone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import eventually, join
from tests.hearing import connect_media
from tests.signalling.test_three_nodes import account
from tests.web.browser import CHROMIUM, Browsers, tid, tone_wav

from .conftest import Deployment
from .test_remote_listening import _hears_in_any_slot

pytestmark = pytest.mark.browser
Make = Callable[..., tuple[Deployment, Deployment]]
TONE = 659.0
SARA = 523.0  # her microphone (Chromium's fake capture file)


async def test_a_user_of_b_allows_a_hears_its_room_and_speaks_in_it_from_the_browser(
    make_deployments: Make, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (Debian package: chromium)")
    async_api = pytest.importorskip("playwright.async_api")
    a, b = make_deployments()
    host = await account(a, "Host", guest=False)
    async with httpx.AsyncClient(base_url=a.base_url, timeout=20,
                                 headers={"Authorization": f"Bearer {host.token}"}) as http:
        created = await http.post("/api/rooms", json={"title": "شب شعر", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    host_c = await join(a, room_id, host)
    await host_c.send("set_interconnected", enabled=True)
    await host_c.expect("interconnected_changed", enabled=True)
    speaker = AudioClient(mic=ToneTrack(TONE), decode=False)
    local_peer = AudioClient()
    try:
        await connect_media(host_c, speaker)
        local = await account(a, "Local", guest=True)
        await connect_media(await join(a, room_id, local), local_peer)
        sara = await account(b, "Sara", guest=False)
        async with async_api.async_playwright() as p:
            browsers = Browsers(p, b.base_url)
            try:
                browser = await browsers.launch(tone_wav(tmp_path / "sara.wav", SARA, 30.0))
                ctx = await browsers.context(browser, "fa-IR")
                await ctx.add_cookies([{"name": "ar_session", "value": sara.token,
                                        "url": b.base_url}])
                page = await ctx.new_page()
                await page.goto("/")
                await page.fill(tid("remote-room-input"), f"{room_id}@a.test")
                await page.click(tid("remote-room-go"))
                await page.wait_for_selector(tid("remote-room"))
                await page.click(tid("join-button"))
                # No consent yet: the reason, translated, and the way to give it.
                await page.wait_for_selector(tid("remote-allow"))
                assert "مجاز" in await page.inner_text(tid("remote-error"))
                await page.click(tid("remote-allow"))
                await page.wait_for_selector(tid("remote-listening"))
                assert await page.inner_text(tid("remote-title")) == "شب شعر"
                await page.wait_for_function(
                    "([f, tol]) => __audioProbe.firstTone(f, tol) !== null",
                    arg=[TONE, 6], timeout=20_000)
                # Her hand reaches A's host, who invites her; she accepts and unmutes.
                await page.click(tid("raise-hand"))
                await host_c.expect("hand_raised", user_id="sara@b.test", timeout=10)
                await host_c.send("invite_to_speak", user_id="sara@b.test")
                await page.click(tid("accept-invitation"), timeout=10_000)
                await page.click(tid("mic-toggle"), timeout=10_000)
                await host_c.expect("mute_changed", user_id="sara@b.test", timeout=10)
                await eventually(lambda: _hears_in_any_slot(local_peer, SARA), within=15)
                await page.click(tid("leave-button"))
                await page.wait_for_selector(tid("live-rooms"))
            finally:
                await browsers.close()
        # Leaving through B took Sara out of A's room.
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=a.base_url, timeout=5) as http:
            page_a = (await http.get(f"/api/rooms/{room_id}/audience")).json()
        assert "sara@b.test" not in {p["user_id"] for p in page_a.get("listeners", [])}
    finally:
        await speaker.close()
        await local_peer.close()
