"""TURN over TLS, as the compose file's ``turn-tls`` profile ships it: a listener whose network
lets nothing through but TLS over TCP gets a ``turns:`` URL with its credentials in ``welcome``,
relays through coturn over TLS to the SFU, hears the speaker, and ``/metrics`` counts it on the
``turn`` path. The same coturn still relays to the SFU's address only.

The ``coturn-tls`` command is rendered by docker-compose and run with a real ``turnserver``;
only the ports, certificate paths and log file are changed, with a self-signed certificate made
here that the client is told to trust (``SSL_CERT_FILE``), the way a browser trusts a CA's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aioice import stun, turn
from aiortc import RTCIceServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from audio_rooms.turn import turn_credentials
from tests.abuse.test_edge_turnrelay import ELSEWHERE, SFU, udp_peer
from tests.conftest import AccountFactory, ServerFactory, create_room, eventually, free_port, join
from tests.hearing import connect_media, hears_tone
from tests.ops.test_compose import compose_config
from tests.test_metrics import metric, scrape

SECRET = "tls-relay-test-shared-secret-0123456789"

pytestmark = pytest.mark.skipif(
    shutil.which("turnserver") is None, reason="coturn's turnserver is not installed"
)

OVERRIDDEN = (
    "--tls-listening-port", "--cert", "--pkey", "--min-port", "--max-port", "--log-file",
)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the name in the turns: URL), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def coturn_tls(tmp_path: Path, certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    rendered = yaml.safe_load(compose_config("--profile", "turn-tls"))
    command = [
        arg for arg in rendered["services"]["coturn-tls"]["command"]
        if not arg.startswith(OVERRIDDEN)
    ]
    # TLS only: a client that can reach it reaches it the way an HTTPS page is reached.
    assert {"--no-udp", "--no-tcp", "--no-dtls", "--no-tcp-relay"} <= set(command)
    assert "--allowed-peer-ip=127.0.0.1" in command
    cert, key = certificate
    port, relay = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        "turnserver", *command, f"--static-auth-secret={SECRET}",
        f"--tls-listening-port={port}", f"--cert={cert}", f"--pkey={key}",
        "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
        f"--min-port={relay}", f"--max-port={relay + 20}", "--allow-loopback-peers",
        f"--log-file={tmp_path / 'turn.log'}", f"--pidfile={tmp_path / 'turn.pid'}",
        f"--userdb={tmp_path / 'turndb'}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return True
            return False

        await eventually(listening, within=15, every=0.1)
        yield port
    finally:
        process.terminate()
        await process.wait()


async def test_listener_behind_tls_only_relays_through_turns_and_hears_the_speaker(
    coturn_tls: int,
    certificate: tuple[Path, Path],
    make_server: ServerFactory,
    make_account: AccountFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    turns_url = f"turns:127.0.0.1:{coturn_tls}?transport=tcp"
    server = await make_server(
        turn_urls=("turn:127.0.0.1:3478?transport=udp", turns_url), turn_secret=SECRET
    )
    host, ana = await make_account("Host"), await make_account("Ana")
    room_id = await create_room(server, host)
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    turn_server = next(s for s in ana_c.welcome["ice_servers"] if "username" in s)
    assert turns_url in turn_server["urls"]
    assert str(turn_server["username"]).endswith(f":{ana.user_id}")

    speaker = AudioClient(mic=ToneTrack(440))
    # No host candidates and only the turns: server: TLS to coturn is this client's one path.
    listener = AudioClient(host_addresses=(), ice_servers=[RTCIceServer(
        urls=[turns_url],
        username=str(turn_server["username"]),
        credential=str(turn_server["credential"]),
    )])
    try:
        await connect_media(host_c, speaker)
        sdp = await connect_media(ana_c, listener)
        assert "typ relay" not in sdp  # the server's own candidates are host candidates
        await hears_tone(listener, 440.0, within=15)
        text = await scrape(server)
        assert metric(text, 'audio_rooms_listeners_by_path{path="turn"}') == 1
        assert metric(text, 'audio_rooms_listeners_by_path{path="webrtc"}') == 1  # the host
    finally:
        await speaker.close()
        await listener.close()


async def test_turns_relays_to_the_sfu_and_nothing_else(
    coturn_tls: int, certificate: tuple[Path, Path]
) -> None:
    username, password = turn_credentials(SECRET, "listener@localhost", 600)
    context = ssl.create_default_context(cafile=str(certificate[0]))
    relay, _ = await turn.create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", coturn_tls), username, password,
        ssl=context, transport="tcp",
    )
    client = relay._TurnTransport__inner_protocol
    sfu_transport, sfu, sfu_addr = await udp_peer(SFU)
    other_transport, other, other_addr = await udp_peer(ELSEWHERE)
    try:
        await client.send_data(b"to the sfu", sfu_addr)
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.send_data(b"to elsewhere", other_addr)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 403
        await eventually(lambda: bool(sfu.received))
        await asyncio.sleep(0.3)  # time for the refused packet to arrive, were it relayed
        assert sfu.received == [b"to the sfu"] and other.received == []
    finally:
        relay.close()
        sfu_transport.close()
        other_transport.close()
