"""Issue 11, client polish, in headless Chromium against the real server, in Persian and English,
phone (390x844) and desktop (1280x800): the sign-up form states and checks the server's handle
rule in the page's language; the Solar Hijri picker schedules a room at the right instant; the
desktop layout puts the stage beside the room's side column; a signed-out visit logs nothing in
the console; the app is installable and branded; a listener's phone keeps the room on the lock
screen. Screenshots of every screen go to artifacts/screenshots/polish/."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from audio_rooms.accounts.handles import HANDLE_RE
from tests.conftest import AccountFactory, RunningServer, ServerFactory, create_room, join
from tests.web.browser import SCREENSHOTS, Browsers, tid

pytestmark = pytest.mark.browser

WEB = Path(__file__).resolve().parents[2] / "audio_rooms" / "web"
CATALOGUES = {loc: json.loads((WEB / "i18n" / f"{loc}.json").read_text(encoding="utf-8"))
              for loc in ("fa", "en")}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SIZES = {"phone": PHONE, "desktop": DESKTOP}
SHOTS = SCREENSHOTS / "polish"
BROWSER_LOCALE = {"fa": "fa-IR", "en": "en-US"}


async def open_page(browsers: Browsers, server: RunningServer, locale: str, path: str = "/",
                    viewport: dict[str, int] = PHONE, token: str | None = None,
                    timezone: str | None = None) -> Any:
    """A page that records everything a person would see as an error in the console: uncaught
    exceptions, console.error, and failed requests (which Chromium logs as errors too)."""
    browser = await browsers.launch()
    ctx = await browser.new_context(viewport=viewport, locale=BROWSER_LOCALE[locale],
                                    base_url=server.base_url, timezone_id=timezone)
    if token:
        await ctx.add_cookies([{"name": "ar_session", "value": token, "url": server.base_url}])
    page = await ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"exception: {e}"))
    page.on("console", lambda m: m.type == "error" and page.errors.append(f"console: {m.text}"))
    page.on("response", lambda r: r.status >= 400 and page.errors.append(
        f"HTTP {r.status} {r.url}"))
    await page.goto(path)
    return page


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def in_colour(page: Any, testid: str) -> bool:
    """Whether an element's pixels include a saturated yellow: a colour emoji face, not a
    text font's outline (this machine has fonts-noto-color-emoji, as CI does)."""
    png = await page.locator(tid(testid)).screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return bool(((r > 200) & (g > 140) & (b < 90)).sum() > 20)


async def box(page: Any, testid: str) -> dict[str, float]:
    found = await page.locator(tid(testid)).first.bounding_box()
    assert found is not None, testid
    return dict(found)


@pytest.mark.parametrize("locale", ["fa", "en"])
async def test_sign_up_states_and_checks_the_servers_handle_rule(
    browsers: Browsers, server: RunningServer, locale: str
) -> None:
    text = CATALOGUES[locale]
    page = await open_page(browsers, server, locale)
    await page.click(tid("signup-open"))
    hint = page.locator(tid("auth-handle-hint"))
    # The rule is next to the field before anyone types, in the page's language, and says Latin.
    rule = await hint.text_content()
    assert "a" in rule and "z" in rule and "_" in rule
    assert rule.startswith(text["auth.handle_rule"].split("{")[0]) or "{" not in rule
    assert await page.locator("form").evaluate("f => f.noValidate")  # no browser bubbles

    handle = page.locator(tid("auth-handle"))
    cases = {
        "sara.k": text["auth.handle_chars"],
        "sara-k": text["auth.handle_chars"],
        "سارا": text["auth.handle_latin"],
        "saraк": text["auth.handle_latin"],  # a Cyrillic letter that looks Latin
        "sa": text["auth.handle_short"].replace("{min}", "۳" if locale == "fa" else "3"),
    }
    for typed, sentence in cases.items():
        await handle.fill(typed)
        await handle.blur()
        assert await hint.text_content() == sentence, typed
        assert await handle.get_attribute("aria-invalid") == "true"
    await shot(page, f"signup-error-{locale}-phone")

    # The client's verdict is the server's, case-insensitively.
    for typed in ("sara_01", "Sara_01", "abc", "x" * 32, "x" * 33, "a b", "sara!", "_"):
        await handle.fill(typed)
        await handle.blur()
        client_ok = await handle.get_attribute("aria-invalid") == "false"
        # maxlength stops the 33rd character: what the field holds is what the server gets.
        held = await handle.input_value()
        assert client_ok == bool(HANDLE_RE.fullmatch(held.lower())), typed

    # Submitting a broken form sends nothing and focuses the field that is wrong.
    await handle.fill("sara.k")
    await page.click(tid("auth-submit"))
    assert await page.evaluate("() => document.activeElement.dataset.testid") == "auth-handle"
    assert await page.locator(tid("auth-dialog")).is_visible()

    # Persian digits from a Persian keyboard count as digits; upper case is lowered.
    await handle.fill("Sara۱۲")
    await page.fill(tid("auth-display-name"), "سارا 😂")
    await page.fill(tid("auth-password"), "correct horse battery")
    await page.click(tid("auth-submit"))
    await page.wait_for_selector(tid("current-user"))
    async with server.http() as http:
        user = (await http.get("/api/users/sara12@localhost")).json()["user"]
    assert user["handle"] == "sara12"
    assert page.errors == []


async def pick(page: Any, part: str, value: int) -> None:
    await page.select_option(tid(f"schedule-{part}"), str(value))


@pytest.mark.parametrize("locale", ["fa", "en"])
async def test_the_date_picker_schedules_the_picked_wall_clock_time(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory, locale: str
) -> None:
    """Persian: 1 Dey (month 10) of next Solar Hijri year, 20:30 in Tehran (UTC+3:30 all year)
    is 17:00 UTC on the day Intl's Persian calendar calls 1 Dey; English: 5 March next year,
    20:30 in New York (UTC-5 then) is 01:30 UTC on 6 March."""
    host = await make_account("Maryam")
    zone = "Asia/Tehran" if locale == "fa" else "America/New_York"
    page = await open_page(browsers, server, locale, viewport=DESKTOP, token=host.token,
                           timezone=zone)
    await page.click(tid("create-room-open"))
    await page.fill(tid("room-title-input"), "گپ شبانه" if locale == "fa" else "Night talk")
    submit = page.locator(tid("create-room"))
    # Waiting assertions: the lobby may re-render between a click and the read.
    expect = pytest.importorskip("playwright.async_api").expect
    await expect(submit).to_have_text(CATALOGUES[locale]["lobby.create_submit"])
    await page.click(tid("schedule-open"))
    await expect(submit).to_have_text(CATALOGUES[locale]["lobby.schedule_submit"])

    months = await page.eval_on_selector_all(
        f"{tid('schedule-month')} option", "os => os.map(o => o.textContent)")
    years = await page.eval_on_selector_all(
        f"{tid('schedule-year')} option", "os => os.map(o => Number(o.value))")
    next_year = years[1]
    if locale == "fa":
        assert months[0] == "فروردین" and months[9] == "دی" and next_year < 1500
        day_options = await page.eval_on_selector_all(
            f"{tid('schedule-day')} option", "os => os.map(o => o.textContent)")
        assert day_options[0] == "۱"  # Persian digits, no Latin ones
        await pick(page, "year", next_year)
        await pick(page, "month", 10)
        await pick(page, "day", 1)
    else:
        assert months[2] == "March" and next_year > 2000
        await pick(page, "year", next_year)
        await pick(page, "month", 3)
        await pick(page, "day", 5)
    await pick(page, "hour", 20)
    await pick(page, "minute", 30)
    preview = await page.text_content(tid("schedule-preview"))
    assert ("۲۰:۳۰" in preview and "دی" in preview) if locale == "fa" else "20:30" in preview
    await shot(page, f"schedule-{locale}-desktop")
    await submit.click()
    await page.wait_for_selector(f"{tid('scheduled-rooms')} .room-card")

    async with server.http(host.token) as http:
        rooms = (await http.get("/api/rooms?status=scheduled")).json()["rooms"]
    start = datetime.fromisoformat(rooms[0]["scheduled_start"]).astimezone(UTC)
    if locale == "fa":
        assert (start.hour, start.minute) == (17, 0)
        # The instant, read back in Tehran in the Persian calendar by the browser's own ICU.
        parts = await page.evaluate(
            """(iso) => Object.fromEntries(new Intl.DateTimeFormat("en-u-ca-persian-nu-latn", {
                 timeZone: "Asia/Tehran", year: "numeric", month: "numeric", day: "numeric",
                 hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
                 .formatToParts(new Date(iso)).map(p => [p.type, p.value]))""",
            rooms[0]["scheduled_start"])
        assert (int(parts["year"]), int(parts["month"]), int(parts["day"])) == (next_year, 10, 1)
        assert (parts["hour"], parts["minute"]) == ("20", "30")
    else:
        assert (start.year, start.month, start.day, start.hour, start.minute) == (
            next_year, 3, 6, 1, 30)
    assert page.errors == []


async def test_the_jalali_arithmetic_agrees_with_intl_day_by_day(
    browsers: Browsers, server: RunningServer
) -> None:
    """calendar.js against the browser's ICU over 1370-1480 (1991-2101), both directions."""
    page = await open_page(browsers, server, "fa")
    await page.wait_for_selector(tid("live-rooms"))
    mismatches = await page.evaluate("""async () => {
      const { toJalali, toGregorian, jalaliMonthLength } = await import("/calendar.js");
      const f = new Intl.DateTimeFormat("en-u-ca-persian-nu-latn",
        { timeZone: "UTC", year: "numeric", month: "numeric", day: "numeric" });
      const bad = [];
      for (let t = Date.UTC(1991, 2, 21); t < Date.UTC(2101, 2, 21); t += 86400000) {
        const d = new Date(t);
        const p = Object.fromEntries(f.formatToParts(d).map(x => [x.type, Number(x.value)]));
        const j = toJalali(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
        const g = toGregorian(p.year, p.month, p.day);
        if (j.jy !== p.year || j.jm !== p.month || j.jd !== p.day
            || g.gy !== d.getUTCFullYear() || g.gm !== d.getUTCMonth() + 1
            || g.gd !== d.getUTCDate() || p.day > jalaliMonthLength(p.year, p.month)) {
          bad.push(d.toISOString());
        }
      }
      return bad;
    }""")
    assert mismatches == []


async def test_persian_counts_read_as_two_numbers(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    """In Persian "1 speaker · 0 listeners" in Persian digits read as "1 speaker, 10 listeners":
    the dot beside Persian digits looks like a zero. Persian uses the Persian comma; English
    keeps the middle dot."""
    host = await make_account("Maryam")
    room_id = await create_room(server, host, title="Evening chat")
    for locale, expected in (("fa", "۰ سخنران، ۰ شنونده"), ("en", "0 speakers · 0 listeners")):
        page = await open_page(browsers, server, locale)
        await page.wait_for_selector(tid(f"room-counts-{room_id}"))
        assert await page.text_content(tid(f"room-counts-{room_id}")) == expected
        assert page.errors == []


async def test_a_signed_out_visit_is_clean_installable_and_branded(
    browsers: Browsers, make_server: ServerFactory, tmp_path: Path
) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text((WEB / "favicon.svg").read_text().replace("#0b5f55", "#6b3fa0"))
    server = await make_server(brand_name="Radio Kooche", brand_colour="#6b3fa0",
                               brand_logo=str(logo))
    for locale in ("fa", "en"):
        page = await open_page(browsers, server, locale)
        await page.wait_for_selector(tid("live-rooms"))
        await page.wait_for_timeout(300)  # anything the first paint fetches afterwards
        assert page.errors == []
        assert await page.text_content(tid("site-name")) == "Radio Kooche"
        assert await page.title() == "Radio Kooche"
        header = await page.eval_on_selector(
            "#header", "h => getComputedStyle(h).backgroundColor")
        assert header == "rgb(107, 63, 160)"
        assert await page.eval_on_selector(".brand-logo", "i => i.naturalWidth > 0")

    async with server.http() as http:
        assert (await http.get("/api/auth/session")).json() == {"user": None}
        favicon = await http.get("/favicon.svg")
        assert favicon.status_code == 200 and favicon.headers["content-type"].startswith(
            "image/svg+xml")
        manifest = (await http.get("/manifest.webmanifest")).json()
        for icon in manifest["icons"]:
            assert (await http.get(icon["src"])).status_code == 200, icon
    assert manifest["name"] == "Radio Kooche" and manifest["display"] == "standalone"
    assert manifest["start_url"] == "/" and manifest["theme_color"] == "#6b3fa0"
    assert any(icon["sizes"] == "512x512" for icon in manifest["icons"])

    # Chromium's own verdict: the manifest parses with no errors and names the icons.
    session = await page.context.new_cdp_session(page)
    found = await session.send("Page.getAppManifest")
    assert found["errors"] == [] and found["url"].endswith("/manifest.webmanifest")


async def test_without_branding_the_header_names_the_product_not_the_host(
    browsers: Browsers, server: RunningServer
) -> None:
    for locale in ("fa", "en"):
        page = await open_page(browsers, server, locale)
        await page.wait_for_selector(tid("live-rooms"))
        assert await page.text_content(tid("site-name")) == CATALOGUES[locale]["app.title"]
        assert page.errors == []


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_layout_and_screenshots_of_every_screen(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory, size: str
) -> None:
    """On a desktop the lobby's live rooms sit beside "Start a room", and a room's stage beside
    its title and hand queue, the wide column on the reading side; on a phone one column."""
    host = await make_account("مریم")
    scheduled_id = await create_room(server, host, title="Book club",
                                     scheduled_start="2099-03-21T16:30:00+00:00")
    viewport = SIZES[size]
    for locale in ("fa", "en"):
        # A room of its own for each language: the host leaving at the end closes it.
        room_id = await create_room(server, host, title="گپ شبانه", description="دربارهٔ کتاب")
        page = await open_page(browsers, server, locale, viewport=viewport)
        await page.wait_for_selector(tid(f"room-card-{room_id}"))
        await shot(page, f"lobby-signed-out-{locale}-{size}")
        await page.click(tid("signup-open"))
        await shot(page, f"signup-{locale}-{size}")
        await page.click(tid("auth-cancel"))

        # Signed in: the lobby, "Start a room" open with the picker.
        page = await open_page(browsers, server, locale, viewport=viewport, token=host.token)
        await page.wait_for_selector(tid(f"room-card-{room_id}"))
        live, create = await box(page, "live-rooms"), await box(page, "create-room-panel")
        if size == "desktop":
            assert live["width"] > 600 and create["y"] < live["y"] + 50
            beside = create["x"] < live["x"] if locale == "fa" else create["x"] > live["x"]
            assert beside, (locale, live, create)
        else:
            assert create["y"] + create["height"] <= live["y"] and live["width"] > 330
        await page.click(tid("create-room-open"))
        await page.click(tid("schedule-open"))
        await shot(page, f"lobby-start-room-{locale}-{size}")

        # The room, before and after joining, as its host (a moderator: the hand queue shows).
        await page.click(tid(f"room-link-{room_id}"))
        await page.wait_for_selector(tid("join-button"))
        await shot(page, f"room-prejoin-{locale}-{size}")
        await page.click(tid("join-button"))
        await page.wait_for_selector(tid("hand-queue"))
        await page.wait_for_selector(f"{tid('connection-state')}[data-state='joined']")
        side, main = await box(page, "room-side"), await box(page, "room-main")
        if size == "desktop":
            assert main["width"] > 600 and abs(side["y"] - main["y"]) < 50
            beside = side["x"] < main["x"] if locale == "fa" else side["x"] > main["x"]
            assert beside, (locale, side, main)
        else:
            assert side["y"] + side["height"] <= main["y"] + 1 and main["width"] > 330
        await shot(page, f"room-{locale}-{size}")
        for name in ("laugh", "wow"):  # the two a monochrome text font used to draw
            assert await in_colour(page, f"reaction-{name}"), name

        # What keeps a phone listening: the room on the lock screen, with its controls.
        metadata = await page.evaluate(
            "() => [navigator.mediaSession.metadata?.title, navigator.mediaSession.playbackState]")
        assert metadata == ["گپ شبانه", "playing"]
        assert await page.evaluate("() => audioRooms.view.keepListening.active")
        await page.click(tid("leave-room"))
        await page.wait_for_selector(tid("live-rooms"))
        assert await page.evaluate("() => navigator.mediaSession.metadata") is None
        assert page.errors == []

        # The other screens: a scheduled room's page, and a room that has ended.
        await page.goto(f"/r/{scheduled_id}")
        await page.wait_for_selector(tid("scheduled-notice"))
        await shot(page, f"room-scheduled-{locale}-{size}")
        await page.goto(f"/r/{room_id}")
        await page.wait_for_selector(f"{tid('room-closed')}, {tid('join-button')}")
        await shot(page, f"room-ended-{locale}-{size}")


async def test_a_listener_keeps_the_screen_awake_and_comes_back_with_the_network(
    browsers: Browsers, server: RunningServer, make_account: AccountFactory
) -> None:
    """The wake lock is held while in the room and taken again when the page comes back (the
    browser drops it whenever the page is hidden). A network that comes back during a backoff
    step (the fifth waits 6-10 s) brings the listener back at once, as the same participant."""
    host, sara = await make_account("Maryam"), await make_account("Sara")
    room_id = await create_room(server, host, title="Evening chat")
    await join(server, room_id, host)
    page = await open_page(browsers, server, "en", f"/r/{room_id}", token=sara.token)
    await page.click(tid("join-button"))
    joined = f"{tid('connection-state')}[data-state='joined']"
    await page.wait_for_selector(joined)
    assert await page.evaluate("() => audioRooms.view.keepListening.screenKeptAwake")
    await page.evaluate("() => audioRooms.view.keepListening.lock.release()")
    assert not await page.evaluate("() => audioRooms.view.keepListening.screenKeptAwake")
    await page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    await page.wait_for_function("() => audioRooms.view.keepListening.screenKeptAwake")

    me = await page.evaluate("() => audioRooms.view.state.me")
    await page.context.set_offline(True)
    # The socket would notice the loss by its keep-alive; closing it here is the same, sooner.
    await page.evaluate("() => audioRooms.view.session.conn.ws.close()")
    await page.wait_for_function("() => audioRooms.view.session.conn.attempt >= 4",
                                 timeout=15_000)
    await page.context.set_offline(False)
    started = time.monotonic()
    await page.wait_for_selector(joined, timeout=15_000)
    assert time.monotonic() - started < 2.0
    assert await page.evaluate("() => audioRooms.view.state.me") == me
    async with server.http(host.token) as http:
        room = (await http.get(f"/api/rooms/{room_id}")).json()["room"]
    assert room["listener_count"] == 1
    assert [e for e in page.errors if e.startswith("exception")] == []
