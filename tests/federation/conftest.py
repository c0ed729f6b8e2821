"""Two deployments on loopback, each with its own embedded Redis and its own database."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.serving import serve, stop, wait_ready


@dataclass
class Deployment:
    name: str
    port: int
    secret: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "audio_rooms", *args], env=self.env, capture_output=True,
            text=True, timeout=60,
        )


def _start(deployment: Deployment) -> None:
    assert deployment.log is not None
    deployment.process = serve(deployment.port, deployment.env, deployment.log)
    wait_ready(deployment.base_url, deployment.process, deployment.log)


@pytest.fixture
def make_deployments(tmp_path: Path) -> Iterator[object]:
    started: list[Deployment] = []

    def make(
        a_env: dict[str, str] | None = None, b_env: dict[str, str] | None = None
    ) -> tuple[Deployment, Deployment]:
        ports = {"a.test": free_port(), "b.test": free_port()}
        urls = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in ports.items())
        made = []
        for index, (name, extra) in enumerate((("a.test", a_env), ("b.test", b_env))):
            secret = secrets.token_hex(32)
            env = {
                **os.environ,
                "AUDIO_ROOMS_SERVER_NAME": name,
                "AUDIO_ROOMS_DATA_DIR": str(tmp_path / name),
                "AUDIO_ROOMS_SECRET_KEY": secret,
                "AUDIO_ROOMS_WORKERS": "1",
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1",
                "AUDIO_ROOMS_MEDIA_PORT_MIN": str(45000 + 100 * index),
                "AUDIO_ROOMS_MEDIA_PORT_MAX": str(45099 + 100 * index),
                "AUDIO_ROOMS_FEDERATION_ENABLED": "true",
                "AUDIO_ROOMS_FEDERATION_ALLOW": "a.test,b.test",
                "AUDIO_ROOMS_FEDERATION_PEER_URLS": urls,
                "AUDIO_ROOMS_GUEST_TOKENS_PER_ADDRESS_PER_HOUR": "1000",
                **(extra or {}),
            }
            for key in ("AUDIO_ROOMS_REDIS_URL", "AUDIO_ROOMS_DATABASE_URL"):
                env.pop(key, None)
            deployment = Deployment(name, ports[name], secret, env,
                                    log=tmp_path / f"{name}.log")
            _start(deployment)
            started.append(deployment)
            made.append(deployment)
        return made[0], made[1]

    yield make
    stop(deployment.process for deployment in started)
