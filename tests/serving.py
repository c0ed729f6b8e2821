"""Real ``audio-rooms serve`` processes for the tests that need several: start one with its log
in a file, wait until it is ready, and stop them all for certain (a stopped one is continued
first, so that a test that froze a node with SIGSTOP leaves nothing behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

from tests.conftest import Account


def serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "audio_rooms", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path,
               seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def stop(processes: Iterable[subprocess.Popen[bytes] | None]) -> None:
    running = [p for p in processes if p is not None]
    for process in running:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
    for process in running:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class ServerCalls:
    """What tests ask of a server process over HTTP (``base``: its URL)."""

    base: str

    async def account(self, handle: str) -> Account:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
            response = await http.post(
                "/api/auth/signup",
                json={"handle": handle, "display_name": handle, "password": "a long password"},
            )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(body["user"]["id"], body["token"], handle)

    async def create_room(self, host: Account, title: str = "Test room") -> str:
        async with httpx.AsyncClient(
            base_url=self.base, headers={"Authorization": f"Bearer {host.token}"}, timeout=10
        ) as http:
            response = await http.post("/api/rooms", json={"title": title})
        assert response.status_code == 201, response.text
        return str(response.json()["room"]["id"])
