"""docs/sdk.md's minimal listening page, exactly as the page prints it, works: its two code
blocks are served beside a copy of the client (as `AUDIO_ROOMS_WEB_DIR` would serve them) and
Chromium, clicking Listen as a guest, hears the tone an aiortc host sends."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from audio_rooms.app import WEB_DIR
from tests.conftest import Client, RunningServer, ServerFactory
from tests.web.browser import Browsers
from tests.web.test_listening import speaking_host  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

SDK_DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def minimal_page() -> tuple[str, str]:
    """The first html and js blocks of the section "A minimal listening page"."""
    section = SDK_DOC.read_text(encoding="utf-8").split("## A minimal listening page", 1)[1]
    section = section.split("\n## ", 1)[0]
    html = re.search(r"```html\n(.*?)```", section, re.S)
    js = re.search(r"```js\n(.*?)```", section, re.S)
    assert html and js, "docs/sdk.md lost its minimal page"
    return html.group(1), js.group(1)


@pytest.fixture
async def server(make_server: ServerFactory, tmp_path: Path) -> RunningServer:
    web = tmp_path / "web"
    shutil.copytree(WEB_DIR, web)
    html, js = minimal_page()
    (web / "my-room.html").write_text(html, encoding="utf-8")
    (web / "my-room.js").write_text(js, encoding="utf-8")
    return await make_server(web_dir=web)


async def test_the_minimal_page_of_the_docs_hears_the_room(
    browsers: Browsers, speaking_host: tuple[str, Client]  # noqa: F811
) -> None:
    room_id, host = speaking_host
    page = await browsers.page(await browsers.launch(), "en-US", f"/my-room.html?room={room_id}")
    await page.click("#listen")
    await page.wait_for_function(
        "() => document.querySelector('#status').textContent.startsWith('Listening to')")
    await page.wait_for_function("() => __audioProbe.firstTone(440, 6) !== null",
                                 timeout=10_000)
    assert await page.text_content("#stage") == f"{host.welcome['you']['display_name']} (host)"
    assert page.errors == []
