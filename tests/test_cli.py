"""``audio-rooms`` as an operator meets it: ``--version``, a ``--help`` without noise, and a
start-up log that says what media will do (without the TURN secret)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from audio_rooms import __version__
from tests.conftest import free_port


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audio_rooms", *args], capture_output=True, text=True, timeout=60
    )


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"audio-rooms {__version__}"
    helped = run("--help")
    assert helped.returncode == 0 and helped.stderr == ""
    for command in ("serve", "rooms", "users", "--version"):
        assert command in helped.stdout
    assert "{" not in helped.stdout  # commands listed by name, not as argparse's {a,b,c}
    assert run("users", "--help").returncode == 0
    assert run("nosuchcommand").returncode == 2


def test_start_up_log_says_what_media_will_do(tmp_path: Path, redis_url: str) -> None:
    secret = "turn-secret-never-logged-0123"
    port = free_port()
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(tmp_path / "data"),
        "AUDIO_ROOMS_REDIS_URL": redis_url,
        "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
        "AUDIO_ROOMS_MEDIA_PORT_MIN": "42000",
        "AUDIO_ROOMS_MEDIA_PORT_MAX": "42099",
        "AUDIO_ROOMS_STUN_URLS": "stun:127.0.0.1:3478",
        "AUDIO_ROOMS_TURN_URLS": "turn:127.0.0.1:3478?transport=udp",
        "AUDIO_ROOMS_TURN_SECRET": secret,
        "AUDIO_ROOMS_WORKERS": "2",  # the supervisor says it once, before its workers start
    }
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "audio_rooms", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert f"audio-rooms {__version__}" in text
    assert "media: ICE host addresses 127.0.0.1 (configured)" in text
    assert "media: UDP ports 42000-42099" in text
    assert "worker 1 (pid" in text and "UDP ports 42050-42099" in text  # its half of them
    assert "media: STUN stun:127.0.0.1:3478" in text
    assert "media: TURN turn:127.0.0.1:3478?transport=udp (with shared secret)" in text
    assert "media: compiled fast path" in text
    assert secret not in text
