"""A media transport the server loses anyway is announced, and the browser offers again at once."""

from __future__ import annotations

import asyncio

import pytest

from audio_rooms.sfu.transport import TransportState
from tests.conftest import Client, RunningServer
from tests.web.browser import Browsers, tid
from tests.web.conftest import browsers  # noqa: F401  (the fixture, shared with tests/web)
from tests.web.test_listening import heard_within, speaking_host  # noqa: F401

pytestmark = pytest.mark.browser


async def test_the_browser_hears_again_after_its_transport_dies(
    browsers: Browsers,  # noqa: F811
    server: RunningServer,
    speaking_host: tuple[str, Client],  # noqa: F811
) -> None:
    room_id, _ = speaking_host
    page = await browsers.page(await browsers.launch(), "en-US", f"/r/{room_id}")
    await page.fill(tid("guest-name"), "Nima")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("stage"))
    await heard_within(page, 440, 6, 10)
    me = await page.evaluate("audioRooms.view.state.me")

    # The server's side of the guest's transport dies by itself (as a lost peer would).
    media = server.services.media
    assert media is not None
    router = media.get_router(room_id)
    assert router is not None
    dying = router.transports[me]
    pc = dying._pc
    assert pc is not None
    await pc.close()

    # Told media_failed, the page offers again on the same socket and hears the host again.
    async with asyncio.timeout(10):
        while (new := router.transports.get(me)) is None or new is dying or (
            new.state is not TransportState.CONNECTED
        ):
            await asyncio.sleep(0.05)
    await page.evaluate("__audioProbe.history.length = 0")
    await page.wait_for_function("() => __audioProbe.firstTone(440, 6) !== null", timeout=10_000)
    assert await page.evaluate("audioRooms.view.session.connState") == "joined"
    assert page.errors == []
