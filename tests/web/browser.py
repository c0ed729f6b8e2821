"""Headless Chromium for the web client's tests and bench/join_to_audio.py: one process per
participant (Chromium's fake microphone file is per process), each page probed by audio_probe.js."""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
PROBE_JS = Path(__file__).with_name("audio_probe.js").read_text(encoding="utf-8")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
SAMPLE_RATE = 48_000

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    # Grant the microphone without a prompt, and feed it from a file (or a beep without one).
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # The server listens on 127.0.0.1 only: Chromium must offer a loopback host candidate, by
    # address rather than as an mDNS .local name, which aiortc cannot resolve.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


def tone_wav(path: Path, frequency: float, seconds: float = 4.0, amplitude: float = 0.5) -> Path:
    """48 kHz mono 16-bit sine; a whole number of cycles, so Chromium's looping has no click."""
    n = int(SAMPLE_RATE * seconds)
    t = np.arange(n) / SAMPLE_RATE
    samples = (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return path


def chromium_args(microphone_wav: Path | None) -> list[str]:
    args = list(CHROMIUM_ARGS)
    if microphone_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone_wav}")
    return args


@dataclass
class Browsers:
    """Launches one Chromium per participant; `page()` opens a probed page in a new context."""

    playwright: Any
    base_url: str
    launched: list[Any] = field(default_factory=list)

    async def launch(self, microphone_wav: Path | None = None) -> Any:
        browser = await self.playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_args(microphone_wav))
        self.launched.append(browser)
        return browser

    async def context(self, browser: Any, locale: str) -> Any:
        ctx = await browser.new_context(
            viewport={"width": 390, "height": 844}, locale=locale, base_url=self.base_url)
        await ctx.add_init_script(script=PROBE_JS)
        return ctx

    async def page(self, browser: Any, locale: str, path: str = "/") -> Any:
        ctx = await self.context(browser, locale)
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors
        await page.goto(path)
        return page

    async def close(self) -> None:
        for browser in reversed(self.launched):
            await browser.close()




def tid(name: str) -> str:
    """A selector for a data-testid (docs/web-client.md lists them)."""
    return f"[data-testid='{name}']"
