"""The embed page inside another site's iframe: shown on an allowed origin (another loopback
port), refused by Chromium on one that is not; and the admin page in Chromium."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import (
    AccountFactory,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    free_port,
    join,
)
from tests.test_admin_page import admin_token
from tests.web.browser import Browsers

pytestmark = pytest.mark.timeout(90)

ALLOWED_PORT = free_port()


@pytest.fixture
async def server(make_server: ServerFactory) -> RunningServer:
    return await make_server(embed_origins=(f"http://127.0.0.1:{ALLOWED_PORT}",))


@contextlib.asynccontextmanager
async def site(port: int, target: str) -> AsyncIterator[str]:
    """Another site, on its own origin: one page with the room in an iframe."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>Blog</title><h1>Our show</h1>"
            f'<iframe id="room" src="{target}" width="360" height="200" '
            'allow="autoplay; encrypted-media"></iframe>')

    app = Starlette(routes=[Route("/", page)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_embed_headers_allow_only_the_embed_page(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        embed = await http.get("/embed/r/anything")
        home = await http.get("/")
    csp = embed.headers["content-security-policy"]
    assert f"frame-ancestors 'self' http://127.0.0.1:{ALLOWED_PORT}" in csp
    assert "x-frame-options" not in embed.headers
    assert "microphone=()" in embed.headers["permissions-policy"]
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert home.headers["x-frame-options"] == "DENY"


async def test_embedded_room_shows_and_listens_on_an_allowed_origin_only(
    server: RunningServer, make_account: AccountFactory, browsers: Browsers,
    screenshot: Any,
) -> None:
    host = await make_account("Nasrin")
    room_id = await create_room(server, host, title="Evening news")
    host_c = await join(server, room_id, host)
    target = f"{server.base_url}/embed/r/{room_id}?lang=en"
    browser = await browsers.launch()
    async with site(ALLOWED_PORT, target) as allowed_url:
        ctx = await browser.new_context(viewport={"width": 800, "height": 600})
        page = await ctx.new_page()
        await page.goto(allowed_url)
        frame = page.frame_locator("#room")
        await frame.get_by_test_id("embed-title").filter(has_text="Evening news").wait_for(
            timeout=10_000)
        assert "Nasrin" in await frame.get_by_test_id("embed-meta").inner_text()
        assert await frame.get_by_test_id("embed-open").get_attribute("href") == f"/r/{room_id}"
        await frame.get_by_test_id("embed-listen").click()
        await frame.get_by_test_id("embed-status").filter(has_text="Listening").wait_for(
            timeout=15_000)

        async def counted() -> bool:
            async with server.http() as http:
                room = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
            return bool(room["listener_count"] == 1)

        await eventually(counted, within=10)
        await screenshot(page, "embed-allowed-en")
        await ctx.close()

    refused_port = free_port()
    async with site(refused_port, target) as refused_url:
        ctx = await browser.new_context(viewport={"width": 800, "height": 600})
        page = await ctx.new_page()
        messages: list[str] = []
        page.on("console", lambda m: messages.append(m.text))
        await page.goto(refused_url)
        await eventually(lambda: any("frame-ancestors" in m for m in messages), within=10)
        child = page.frames[1] if len(page.frames) > 1 else None
        assert child is None or await child.query_selector("[data-testid=embed]") is None
        await ctx.close()
    await host_c.close()


async def test_admin_page_ends_a_room_in_chromium(
    server: RunningServer, make_account: AccountFactory, browsers: Browsers,
    screenshot: Any,
) -> None:
    host = await make_account("Host")
    room_id = await create_room(server, host, title="Too late")
    host_c = await join(server, room_id, host)
    token = await admin_token(server)
    browser = await browsers.launch()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800},
                                    base_url=server.base_url)
    await ctx.add_cookies([{"name": "ar_session", "value": token, "url": server.base_url}])
    page = await ctx.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto("/admin")
    row = page.get_by_test_id(f"room-{room_id}")
    await row.wait_for(timeout=10_000)
    assert "Too late" in await row.inner_text()
    await page.get_by_test_id(f"ban-{host.user_id.split('@')[0]}").wait_for()
    assert await page.get_by_test_id("ban-boss").count() == 0  # not their own account
    await screenshot(page, "admin-desktop")
    await page.get_by_test_id(f"end-{room_id}").click()
    assert (await host_c.expect("room_ended"))["reason"] == "ended_by_admin"
    await row.wait_for(state="detached", timeout=10_000)
    # Someone who is not an administrator sees the refusal, and no lists.
    other = await make_account("Other")
    await ctx.clear_cookies()
    await ctx.add_cookies([{"name": "ar_session", "value": other.token,
                            "url": server.base_url}])
    await page.reload()
    await page.get_by_test_id("admin-status").filter(
        has_text="for server administrators").wait_for(timeout=10_000)
    assert not await page.get_by_test_id("admin-users").is_visible()
    await ctx.close()


async def test_embed_and_admin_pages_in_persian_on_a_phone(
    server: RunningServer, make_account: AccountFactory, browsers: Browsers,
    screenshot: Any,
) -> None:
    host = await make_account("نسرین")
    room_id = await create_room(server, host, title="اخبار شب")
    host_c = await join(server, room_id, host)
    token = await admin_token(server)
    browser = await browsers.launch()
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, locale="fa-IR",
                                    base_url=server.base_url)
    await ctx.add_cookies([{"name": "ar_session", "value": token, "url": server.base_url}])
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"/embed/r/{room_id}")
    await page.get_by_test_id("embed-title").filter(has_text="اخبار شب").wait_for(
        timeout=10_000)
    assert await page.evaluate("document.documentElement.dir") == "rtl"
    assert "زنده" in await page.get_by_test_id("embed-meta").inner_text()
    assert await page.get_by_test_id("embed-listen").inner_text() == "گوش دادن"
    await screenshot(page, "embed-fa-phone")
    await page.goto("/admin")
    await page.get_by_test_id(f"room-{room_id}").wait_for(timeout=10_000)
    assert await page.evaluate("document.documentElement.dir") == "rtl"
    assert "اتاق‌های زنده" in await page.locator("#rooms-title").inner_text()
    await screenshot(page, "admin-fa-phone")
    assert errors == []
    await ctx.close()
    await host_c.close()
