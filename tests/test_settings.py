"""Settings: defaults that work offline; a bad value stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio_rooms.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUDIO_ROOMS_"):
            monkeypatch.delenv(name)


def test_defaults_work_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.redis_url is None  # embedded redis-server
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.media_slots == 3


def test_bad_value_fails_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "AUDIO_ROOMS_PORT": "eighty", "AUDIO_ROOMS_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "audio_rooms", "serve"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AUDIO_ROOMS_PORT" in lines[0]


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "AUDIO_ROOMS_SERVER_NAME=rooms.example\nAUDIO_ROOMS_MEDIA_SLOTS=5\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.server_name == "rooms.example" and settings.media_slots == 5


def test_branding_is_checked_at_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A colour white text cannot be read on, a logo that is not there or not an image: refused
    with the variable's name, not discovered as a broken header later."""
    monkeypatch.chdir(tmp_path)
    logo = tmp_path / "logo.svg"
    logo.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    settings = load_settings(brand_name=" Radio Kooche ", brand_colour="#6B3FA0", brand_logo=logo)
    assert (settings.brand_name, settings.brand_colour) == ("Radio Kooche", "#6b3fa0")
    bad = {
        "AUDIO_ROOMS_BRAND_COLOUR": {"brand_colour": "#f0d000"},  # yellow: 1.5:1 with white
        "AUDIO_ROOMS_BRAND_LOGO": {"brand_logo": tmp_path / "missing.svg"},
    }
    (tmp_path / "logo.gif").write_bytes(b"GIF89a")
    for name, override in [*bad.items(),
                           ("AUDIO_ROOMS_BRAND_LOGO", {"brand_logo": tmp_path / "logo.gif"}),
                           ("AUDIO_ROOMS_BRAND_NAME", {"brand_name": "a\nb"})]:
        with pytest.raises(SettingsError, match=name):
            load_settings(**override)
    assert load_settings(brand_name="").brand_name is None  # compose passes unset as ""
