"""/metrics counters move with real traffic."""

from __future__ import annotations

import re

from audio_rooms.sfu.testing import AudioClient, ToneTrack
from tests.conftest import (
    Account,
    AccountFactory,
    RunningServer,
    ServerFactory,
    create_room,
    eventually,
    join,
)
from tests.hearing import connect_media


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def scrape(server: RunningServer) -> str:
    async with server.http() as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_metrics_move_with_traffic(
    server: RunningServer, make_account: AccountFactory
) -> None:
    before = await scrape(server)
    assert metric(before, "audio_rooms_forwarded_packets_total") == 0
    host, ana = await make_account("Host"), await make_account("Ana")
    room_id = await create_room(server, host)
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    speaker, listener = AudioClient(mic=ToneTrack(440), decode=False), AudioClient(decode=False)
    try:
        await connect_media(host_c, speaker)
        await connect_media(ana_c, listener)
        await ana_c.send("raise_hand")
        await ana_c.send("no_such_thing")
        await ana_c.expect("error")
        after = ""

        async def moved() -> bool:
            nonlocal after
            after = await scrape(server)
            return metric(after, "audio_rooms_forwarded_packets_total") > 20 and metric(
                after, 'audio_rooms_participants{role="listener"}'
            ) == 1

        await eventually(moved)
    finally:
        await speaker.close()
        await listener.close()
    assert metric(after, "audio_rooms_forwarded_packets_total") > 20
    assert metric(after, "audio_rooms_forwarded_bytes_total") > 1000
    assert metric(after, 'audio_rooms_participants{role="host"}') == 1
    assert metric(after, 'audio_rooms_participants{role="listener"}') == 1
    assert metric(after, "audio_rooms_media_producers") >= 1
    assert metric(after, 'audio_rooms_signalling_messages_total{type="raise_hand"}') == 1
    assert metric(after, 'audio_rooms_signalling_messages_total{type="media_offer"}') == 2
    assert metric(after, 'audio_rooms_signalling_errors_total{code="unknown_message_type"}') == 1
    assert "audio_rooms_event_loop_lag_seconds" in after
    assert "audio_rooms_dropped_packets_total" in after or "audio_rooms_dropped_packets" in after


async def test_forwarding_latency_histogram_when_measured(
    make_server: ServerFactory,
) -> None:
    server = await make_server(media_measure_latency=True)
    accounts = []
    async with server.http() as http:
        for handle in ("lat_host", "lat_ana"):
            response = await http.post("/api/auth/signup", json={
                "handle": handle, "display_name": handle, "password": "correct horse battery",
                "locale": "en"})
            body = response.json()
            accounts.append(Account(body["user"]["id"], body["token"], handle))
    host, ana = accounts
    room_id = await create_room(server, host)
    host_c, ana_c = await join(server, room_id, host), await join(server, room_id, ana)
    speaker, listener = AudioClient(mic=ToneTrack(440), decode=False), AudioClient(decode=False)
    text = ""
    try:
        await connect_media(host_c, speaker)
        await connect_media(ana_c, listener)

        async def measured() -> bool:
            nonlocal text
            text = await scrape(server)
            return metric(text, "audio_rooms_forwarding_latency_seconds_count") > 20

        await eventually(measured, within=10)
    finally:
        await speaker.close()
        await listener.close()
    count = metric(text, "audio_rooms_forwarding_latency_seconds_count")
    buckets = [float(v) for v in re.findall(
        r'^audio_rooms_forwarding_latency_seconds_bucket\{le="[^"]+"\} ([0-9.e+]+)$', text,
        re.MULTILINE)]
    assert len(buckets) == 11 and buckets == sorted(buckets) and buckets[-1] == count
    # A fan-out to one listener on an idle machine takes well under 50 ms.
    assert buckets[-2] == count
    assert 0 < metric(text, "audio_rooms_forwarding_latency_seconds_sum") < count * 0.05


async def test_no_latency_histogram_unless_measured(server: RunningServer) -> None:
    assert "forwarding_latency" not in await scrape(server)
