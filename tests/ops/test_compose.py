"""The compose file is valid as shipped (no docker/.env needed) and wires the services."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from audio_rooms.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def compose_config(*extra: str, cwd: Path = ROOT) -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (scripts/test installs it)")
    result = subprocess.run(
        [binary, "-f", "docker/compose.yml", *extra, "config"],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compose_config_passes_without_env_file(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    (tmp_path / "docker" / ".env").unlink(missing_ok=True)
    rendered = compose_config(cwd=tmp_path)
    for service in ("app:", "redis:", "postgres:", "coturn:"):
        assert service in rendered
    assert "appendonly" in rendered  # Redis keeps live rooms across restarts
    assert "published: 40099" in rendered  # the whole media UDP range is published


def test_example_env_gives_the_app_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = compose_config("--env-file", "docker/example.env")
    app_env = {}
    in_app = in_env = False
    for line in rendered.splitlines():
        if line.startswith("  app:"):
            in_app = True
        elif line.startswith("  ") and not line.startswith("    ") and in_app:
            break
        if in_app and line.strip() == "environment:":
            in_env = True
            continue
        if in_env:
            if not line.startswith("      "):
                in_env = False
                continue
            key, _, value = line.strip().partition(": ")
            app_env[key] = value.strip("'\"")
    assert app_env["AUDIO_ROOMS_REDIS_URL"].startswith("redis://redis")
    for key, value in app_env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match="AUDIO_ROOMS_TURN_SECRET"):
        load_settings()  # the example's placeholder secret is refused
    monkeypatch.setenv("AUDIO_ROOMS_TURN_SECRET", "a-real-shared-secret-of-the-operator")
    settings = load_settings()
    assert settings.turn_urls and settings.media_port_min == 40000


def test_monitoring_profile_scrapes_the_app_and_its_dashboard_reads_real_metrics() -> None:
    import json
    import re

    rendered = compose_config("--profile", "monitoring")
    for service in ("prometheus", "grafana"):
        block = re.search(rf"^  {service}:\n((?:    .*\n|\n)*)", rendered, re.MULTILINE)
        assert block is not None, service
        # Only with the profile: a plain `up` starts neither.
        assert re.search(r"profiles:\n\s+- monitoring", block.group(1)), service
        assert "127.0.0.1" in block.group(1)  # published on this host only
    for mounted in ("monitoring/prometheus.yml", "monitoring/grafana/provisioning",
                    "monitoring/grafana/dashboards"):
        assert (ROOT / "docker" / mounted).exists()
        assert mounted in rendered
    metrics_port = re.search(r"AUDIO_ROOMS_METRICS_PORT: \"?(\d+)", rendered)
    assert metrics_port is not None
    scrape = (ROOT / "docker/monitoring/prometheus.yml").read_text()
    assert f"app:{metrics_port.group(1)}" in scrape
    # Every series the dashboard asks for is one the server exports (docs/operations.md lists
    # them all), so no panel stays empty because of a typo.
    dashboard = json.loads((ROOT / "docker/monitoring/grafana/dashboards/audio-rooms.json")
                           .read_text())
    documented = (ROOT / "docs/operations.md").read_text()
    names = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"audio_rooms_[a-z_]+", target["expr"])}
    assert "audio_rooms_forwarding_latency_seconds_bucket" in names
    for name in names:
        base = re.sub(r"_(total|bucket)$", "", name)
        assert base in documented, name


def test_reverse_proxy_examples_route_websockets_and_turns() -> None:
    nginx = (ROOT / "docker/proxy/nginx.conf").read_text()
    caddy = (ROOT / "docker/proxy/Caddyfile").read_text()
    assert "ssl_preread on" in nginx and "proxy_set_header Upgrade" in nginx
    assert "listen 443" in nginx and "5349" in nginx
    assert "reverse_proxy" in caddy
    nginx_binary = shutil.which("nginx")
    if nginx_binary is not None:
        result = subprocess.run([nginx_binary, "-t", "-c", str(ROOT / "docker/proxy/nginx.conf")],
                                capture_output=True, text=True, timeout=30)
        # Certificates are the operator's: only their absence may fail the check.
        assert result.returncode == 0 or "fullchain.pem" in result.stderr, result.stderr


def test_turn_tls_profile_runs_coturn_for_tls_only_and_the_app_hands_its_url_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns_url = "turns:turn.example.org:443?transport=tcp"
    env_file = tmp_path / "tls.env"
    env_file.write_text(
        (ROOT / "docker" / "example.env").read_text()
        + f"\nTURN_TLS_URL={turns_url}\nTURN_SECRET=a-real-shared-secret-of-the-operator\n"
    )
    services = yaml.safe_load(
        compose_config("--env-file", str(env_file), "--profile", "turn-tls")
    )["services"]
    tls = services["coturn-tls"]
    assert tls["profiles"] == ["turn-tls"]
    assert {"--no-udp", "--no-tcp", "--no-dtls", "--tls-listening-port=5349"} <= set(
        tls["command"]
    )
    published = {(p["published"], p["protocol"]): p["target"] for p in tls["ports"]}
    assert published[(443, "tcp")] == 5349
    # Its relay ports are its own: two coturns cannot share a published port.
    plain = {(p["published"], p["protocol"]) for p in services["coturn"]["ports"]}
    assert not plain & set(published)
    assert any(v.endswith(":/etc/coturn/tls/cert.pem:ro") for v in tls["volumes"])

    for service in ("app", "app2"):
        environment = services[service]["environment"]
        for key, value in environment.items():
            monkeypatch.setenv(key, str(value))
        settings = load_settings()
        assert settings.turn_urls[-1] == turns_url and len(settings.turn_urls) == 3

    # Without TURN_TLS_URL the app hands out the two plain URLs and no empty one.
    environment = yaml.safe_load(compose_config("--env-file", "docker/example.env"))[
        "services"]["app"]["environment"]
    monkeypatch.setenv("AUDIO_ROOMS_TURN_URLS", environment["AUDIO_ROOMS_TURN_URLS"])
    assert load_settings().turn_urls == (
        "turn:203.0.113.10:3478?transport=udp", "turn:203.0.113.10:3478?transport=tcp"
    )
