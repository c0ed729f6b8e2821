"""Fixtures for the web client's tests: headless Chromium (one process per participant, each with
its own fake microphone) against the real server of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import CHROMIUM, SCREENSHOTS, Browsers


@pytest.fixture
async def browsers(server: Any) -> AsyncIterator[Browsers]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (Debian package: chromium)")
    async_api = pytest.importorskip("playwright.async_api")
    async with async_api.async_playwright() as p:
        running = Browsers(p, server.base_url)
        try:
            yield running
        finally:
            await running.close()


@pytest.fixture
def screenshot() -> Callable[[Any, str], Awaitable[Path]]:
    """Save a full-page screenshot under artifacts/screenshots/ (a CI artifact)."""

    async def save(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return save
