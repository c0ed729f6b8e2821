"""A browser whose network lets no UDP through still gets WebRTC, through TURN over TLS: Chromium
may use no UDP that is not proxied (TURN over TCP and TLS stay allowed), the server hands out a
`turns:` URL of coturn-tls run as the compose file ships it (tests/abuse/test_edge_turntls.py,
with a self-signed certificate Chromium is told to accept), and the page connects WebRTC, shows
no relay badge, hears the host, and the server counts it on the `turn` path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.abuse.test_edge_turntls import SECRET, certificate, coturn_tls  # noqa: F401
from tests.conftest import Client, RunningServer, ServerFactory
from tests.test_metrics import metric, scrape
from tests.web.browser import Browsers, tid
from tests.web.test_listening import heard_within, speaking_host  # noqa: F401
from tests.web.test_relay import udp_blocked_page

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(make_server: ServerFactory, coturn_tls: int) -> RunningServer:  # noqa: F811
    return await make_server(
        turn_urls=(f"turns:127.0.0.1:{coturn_tls}?transport=tcp",), turn_secret=SECRET
    )


async def test_without_udp_a_guest_connects_webrtc_through_turns(
    browsers: Browsers, server: RunningServer, speaking_host: tuple[str, Client],  # noqa: F811
    tmp_path: Path,
) -> None:
    room_id, _ = speaking_host
    page = await udp_blocked_page(browsers, tmp_path / "profile", f"/r/{room_id}",
                                  extra_args=("--ignore-certificate-errors",))
    await page.fill(tid("guest-name"), "Sara")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("stage"))
    await page.wait_for_function(
        "() => audioRooms.view.session.media?.state === 'connected'", timeout=15_000)
    elapsed = await heard_within(page, 440, 6, 15)
    print(f"heard 440 Hz through turns: {elapsed:.0f} ms after the join click")
    assert await page.locator(f"{tid('relay-badge')}[data-state='listening']").count() == 0
    text = await scrape(server)
    assert metric(text, 'audio_rooms_listeners_by_path{path="turn"}') == 1
    assert page.errors == []
