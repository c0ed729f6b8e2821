"""A guest listens from the browser to a host speaking through the real server; the audio comes
back after the socket drops. The host here is an aiortc peer over the WebSocket (the browser host
is in test_end_to_end.py), so this needs one Chromium only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import AccountFactory, Client, RunningServer, create_room, join
from tests.web.browser import Browsers, tid

pytestmark = pytest.mark.browser


@pytest.fixture
async def speaking_host(
    server: RunningServer, make_account: AccountFactory
) -> AsyncIterator[tuple[str, Client]]:
    """An open room whose host speaks 440 Hz from an aiortc peer."""
    host = await make_account("میزبان")
    room_id = await create_room(server, host, title="گپ شبانه")
    client = await join(server, room_id, host)
    peer = AudioClient(mic=ToneTrack(440), decode=False)
    await client.send("media_offer", sdp=await peer.offer())
    answer = await client.expect("media_answer", timeout=15)
    await peer.accept(answer["sdp"])
    async with asyncio.timeout(15):
        await peer.connected()
    yield room_id, client
    await peer.close()
    await client.close()


async def heard_within(page, freq: float, tol: float, timeout_s: float) -> float:
    """Wait until the page hears ``freq``; returns ms from the join click."""
    # A function, not an expression string: the server's CSP forbids the eval Playwright
    # would use for one.
    await page.wait_for_function(
        "([f, tol]) => __audioProbe.firstTone(f, tol) !== null", arg=[freq, tol],
        timeout=timeout_s * 1000)
    return float(await page.evaluate(
        f"__audioProbe.firstTone({freq}, {tol}) - __audioProbe.joinClickAt"))


async def test_guest_hears_the_host_within_three_seconds_and_after_a_drop(
    browsers: Browsers, speaking_host: tuple[str, Client]
) -> None:
    room_id, host = speaking_host
    browser = await browsers.launch()
    page = await browsers.page(browser, "en-US", f"/r/{room_id}")
    await page.fill(tid("guest-name"), "Nima")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("stage"))
    elapsed = await heard_within(page, 440, 6, 10)
    print(f"heard 440 Hz {elapsed:.0f} ms after the join click")
    assert elapsed <= 3000, f"heard 440 Hz {elapsed:.0f} ms after clicking join"

    me = await page.evaluate("audioRooms.view.state.me")
    assert me.startswith("guest-")
    assert await page.get_attribute(tid(f"participant-{me}"), "data-role") == "listener"
    # The speaking ring follows the server's active_speakers, which it sends when the list
    # changes (a listener who joins during a steady voice waits for the next change).
    host_tile = tid(f"participant-{host.user_id}")
    await host.send("mute", user_id=host.user_id)
    await page.wait_for_selector(f"{tid(f'muted-{host.user_id}')}")
    await page.wait_for_selector(f"{host_tile}[data-speaking='false']")
    await host.send("unmute", user_id=host.user_id)
    await page.wait_for_selector(f"{host_tile}[data-speaking='true']")

    # The socket drops (not a close code that ends the visit): the client rejoins within the
    # grace period as the same participant, offers again and hears the host again.
    await page.evaluate("__audioProbe.history.length = 0")
    await page.evaluate("audioRooms.view.session.conn.ws.close(3000)")
    await page.wait_for_selector(f"{tid('connection-state')}[data-state='reconnecting']")
    await page.wait_for_selector(f"{tid('connection-state')}[data-state='joined']")
    await page.wait_for_function(
        "() => __audioProbe.firstTone(440, 6) !== null", timeout=10_000)
    assert await page.evaluate("audioRooms.view.state.me") == me
    assert await page.locator(tid(f"participant-{me}")).count() == 1
    assert page.errors == []
