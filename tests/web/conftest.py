"""Fixtures for the web client's tests: the fake server and headless Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.web.fake_server import FakeServer, participant, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    # A fake microphone that is granted without a prompt, for the stage tests.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian package: chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A fake server with one open live room, `r1`, and one signed-up user, `sara`."""
    server = FakeServer()
    server.add_user("t-sara", {"id": "u-sara", "handle": "sara", "display_name": "Sara"})
    server.add_room(
        "r1", "گپ شبانه", listener_count=1234, speaker_count=2,
        speakers=[{"user_id": "u-host", "display_name": "Maryam", "role": "host"},
                  {"user_id": "u2", "display_name": "Ali", "role": "speaker"}],
    )
    server.snapshots["r1"] = [
        participant("u-host", "Maryam", "host"),
        participant("u2", "Ali", "speaker", self_muted=False),
        participant("u4", "Reza", hand_raised=True),
    ]
    with serving(server) as running:
        yield running


@pytest.fixture
def open_page(browser: object, fake: FakeServer) -> Iterator[Callable[..., object]]:
    """open_page(path, locale="fa-IR", session=None) -> a Playwright page at that path."""
    contexts = []

    def open_(path: str, locale: str = "fa-IR", session: str | None = None) -> object:
        ctx = browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 390, "height": 844}, locale=locale)
        contexts.append(ctx)
        if session:
            ctx.add_cookies([{"name": "ar_session", "value": session, "url": fake.base_url}])
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors
        page.goto(fake.base_url + path)
        return page

    yield open_
    for ctx in contexts:
        ctx.close()
