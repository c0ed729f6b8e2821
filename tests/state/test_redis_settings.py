"""Which Redis: one URL, sentinels with a primary's name, or cluster nodes. A contradictory or
incomplete combination stops start-up with one line that names the variables, and never shows
a password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio_rooms.settings import SettingsError, load_settings
from audio_rooms.state.connect import RedisMode, describe, redis_mode


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUDIO_ROOMS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("settings", "named"), [
    ({"redis_url": "redis://r:6379/0", "redis_sentinels": "s1:26379",
      "redis_sentinel_master": "m"},
     ["AUDIO_ROOMS_REDIS_URL", "AUDIO_ROOMS_REDIS_SENTINELS", "contradict"]),
    ({"redis_sentinels": "s1:26379", "redis_sentinel_master": "m",
      "redis_cluster_nodes": "c1:7000"},
     ["AUDIO_ROOMS_REDIS_SENTINELS", "AUDIO_ROOMS_REDIS_CLUSTER_NODES", "contradict"]),
    ({"redis_sentinels": "s1:26379"}, ["AUDIO_ROOMS_REDIS_SENTINEL_MASTER"]),
    ({"redis_sentinel_master": "m"}, ["AUDIO_ROOMS_REDIS_SENTINELS"]),
    ({"redis_sentinels": "s1:26379,s2", "redis_sentinel_master": "m"},
     ["AUDIO_ROOMS_REDIS_SENTINELS", "'s2' is not host:port"]),
    ({"redis_cluster_nodes": "c1:99999"}, ["AUDIO_ROOMS_REDIS_CLUSTER_NODES"]),
    ({"redis_url": "redis://r:6379/0", "redis_sentinel_password": "hunter2-secret"},
     ["AUDIO_ROOMS_REDIS_SENTINEL_PASSWORD"]),
    ({"redis_url": "redis://r:6379/0", "redis_password": "hunter2-secret"},
     ["AUDIO_ROOMS_REDIS_PASSWORD", "AUDIO_ROOMS_REDIS_URL"]),
    ({"redis_replica_acks": 1}, ["AUDIO_ROOMS_REDIS_REPLICA_ACKS", "embedded"]),
])
def test_contradictory_redis_settings_are_refused(settings: dict[str, object],
                                                  named: list[str]) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**settings)
    message = str(refused.value)
    assert all(part in message for part in named), message
    assert "hunter2" not in message


def test_each_deployment_is_recognised_and_described_without_secrets() -> None:
    sentinel = load_settings(redis_sentinels="10.0.0.1:26379, 10.0.0.2:26379",
                             redis_sentinel_master="rooms", redis_sentinel_password="hunter2-s",
                             redis_password="hunter2-p", redis_replica_acks=1)
    assert redis_mode(sentinel) is RedisMode.SENTINEL
    assert sentinel.redis_sentinels == ("10.0.0.1:26379", "10.0.0.2:26379")
    cluster = load_settings(redis_cluster_nodes="10.0.0.5:7000")
    assert redis_mode(cluster) is RedisMode.CLUSTER
    assert redis_mode(load_settings(redis_url="redis://r:6379/0")) is RedisMode.SINGLE
    assert redis_mode(load_settings()) is None
    for settings in (sentinel, cluster):
        shown = describe(settings) + repr(settings)
        assert "hunter2" not in shown


def test_serve_refuses_a_contradictory_redis_at_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AUDIO_ROOMS_DATA_DIR": str(tmp_path),
        "AUDIO_ROOMS_REDIS_URL": "redis://127.0.0.1:1/0",
        "AUDIO_ROOMS_REDIS_CLUSTER_NODES": "127.0.0.1:7000,127.0.0.1:7001",
    }
    result = subprocess.run(
        [sys.executable, "-m", "audio_rooms", "serve"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "AUDIO_ROOMS_REDIS_URL and AUDIO_ROOMS_REDIS_CLUSTER_NODES contradict" in lines[0]
