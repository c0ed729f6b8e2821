"""A user of deployment B listens to a room on deployment A through B's own server: only with
their consent, the room's flag and A's allowlist; A's ban reaches them at once; B going down
does not disturb A's own listeners."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from audio_rooms.sfu.testing import SAMPLE_RATE, AudioClient, Slot, ToneTrack, dominant_frequency
from tests.conftest import Account, eventually, join
from tests.hearing import connect_media, frames, hears_tone
from tests.signalling.test_three_nodes import account

from .conftest import Deployment

Make = Callable[..., tuple[Deployment, Deployment]]
TONE = 587.0


@pytest.fixture
async def peers() -> AsyncIterator[list[AudioClient]]:
    made: list[AudioClient] = []
    yield made
    await asyncio.gather(*(p.close() for p in made), return_exceptions=True)


def _api(deployment: Deployment, who: Account) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=deployment.base_url, timeout=20,
                             headers={"Authorization": f"Bearer {who.token}"})


async def _listen_remote(b: Deployment, who: Account, ref: str, peers: list[AudioClient]
                         ) -> AudioClient:
    peer = AudioClient()
    peers.append(peer)
    async with _api(b, who) as http:
        answer = await http.post(f"/api/federation/rooms/{ref}/media",
                                 json={"sdp": await peer.offer()})
    assert answer.status_code == 200, answer.text
    await peer.accept(answer.json()["sdp"])
    async with asyncio.timeout(15):
        await peer.connected()
    return peer


async def test_a_consenting_user_of_b_hears_a_room_on_a_and_a_ban_reaches_them(
    make_deployments: Make, peers: list[AudioClient]
) -> None:
    a, b = make_deployments()
    host = await account(a, "Host", guest=False)
    async with _api(a, host) as http:
        created = await http.post("/api/rooms", json={"title": "Across", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    ref = f"{room_id}@a.test"
    host_c = await join(a, room_id, host)
    speaker = AudioClient(mic=ToneTrack(TONE))
    peers.append(speaker)
    await connect_media(host_c, speaker)

    sara = await account(b, "Sara", guest=False)
    async with _api(b, sara) as http:
        refused = await http.post(f"/api/federation/rooms/{ref}/join")
        assert (refused.status_code, refused.json()["code"]) == (
            403, "federation_consent_missing")
        assert (await http.put("/api/federation/consents/a.test")).json() == {
            "servers": ["a.test"]}
        closed = await http.post(f"/api/federation/rooms/{ref}/join")
        assert (closed.status_code, closed.json()["code"]) == (403, "room_not_interconnected")

        await host_c.send("set_interconnected", enabled=True)
        await host_c.expect("interconnected_changed", enabled=True)
        joined = await http.post(f"/api/federation/rooms/{ref}/join")
        assert joined.status_code == 200, joined.text
        assert joined.json()["room"]["host_id"] == host.user_id
    sara_peer = await _listen_remote(b, sara, ref, peers)
    await hears_tone(sara_peer, TONE, within=15)

    # A second listener of B: still one pipe from A to B.
    omid = await account(b, "Omid", guest=False)
    async with _api(b, omid) as http:
        await http.put("/api/federation/consents/a.test")
        assert (await http.post(f"/api/federation/rooms/{ref}/join")).status_code == 200
    omid_peer = await _listen_remote(b, omid, ref, peers)
    await hears_tone(omid_peer, TONE, within=15)
    async with httpx.AsyncClient(timeout=5) as http:
        metrics = (await http.get(f"{a.base_url}/metrics")).text
    assert "audio_rooms_media_pipes 1.0" in metrics
    # A sees them as its listeners, namespaced by their server.
    await eventually(lambda: _audience_has(a, room_id, "sara@b.test"), within=10)

    # A's host bans sara@b.test: her audio stops at once, Omid's goes on, she cannot rejoin.
    await host_c.send("ban", user_id="sara@b.test")
    await host_c.expect("participant_removed", user_id="sara@b.test")
    await asyncio.sleep(1.0)
    before = frames(sara_peer)
    await asyncio.sleep(1.0)
    assert frames(sara_peer) == before
    await hears_tone(omid_peer, TONE, after_frames=frames(omid_peer) + 50)
    async with _api(b, sara) as http:
        state = await http.get(f"/api/federation/rooms/{ref}")
        assert (state.status_code, state.json()["code"]) == (403, "banned")
        again = await http.post(f"/api/federation/rooms/{ref}/join")
        assert (again.status_code, again.json()["code"]) == (403, "banned")

    # B goes down: A's own listener is undisturbed.
    local = await account(a, "Local", guest=True)
    local_c = await join(a, room_id, local)
    local_peer = AudioClient()
    peers.append(local_peer)
    await connect_media(local_c, local_peer)
    await hears_tone(local_peer, TONE)
    assert b.process is not None
    b.process.kill()
    await hears_tone(local_peer, TONE, after_frames=frames(local_peer) + 100)


async def _audience_has(a: Deployment, room_id: str, user_id: str) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        page = (await http.get(f"{a.base_url}/api/rooms/{room_id}/audience")).json()
    return user_id in {p["user_id"] for p in page.get("listeners", [])}


async def test_a_server_a_does_not_allow_is_refused_with_a_reason(make_deployments: Make
                                                                  ) -> None:
    a, b = make_deployments(a_env={"AUDIO_ROOMS_FEDERATION_ALLOW": "c.test"})
    host = await account(a, "Host", guest=False)
    async with _api(a, host) as http:
        created = await http.post("/api/rooms", json={"title": "Closed", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    host_c = await join(a, room_id, host)
    await host_c.send("set_interconnected", enabled=True)
    await host_c.expect("interconnected_changed", enabled=True)
    sara = await account(b, "Sara", guest=False)
    async with _api(b, sara) as http:
        await http.put("/api/federation/consents/a.test")
        refused = await http.post(f"/api/federation/rooms/{room_id}@a.test/join")
    assert (refused.status_code, refused.json()["code"]) == (403, "server_not_allowed")


async def test_a_user_of_b_raises_a_hand_is_invited_speaks_to_a_and_is_muted(
    make_deployments: Make, peers: list[AudioClient]
) -> None:
    """Remote speaking: B relays its user's microphone to A over one uplink pipe, and A checks
    every packet against the user's role there (a mute stops it at A)."""
    a, b = make_deployments()
    host = await account(a, "Host", guest=False)
    async with _api(a, host) as http:
        created = await http.post("/api/rooms", json={"title": "Both ways", "visibility": "open"})
    room_id = created.json()["room"]["id"]
    ref = f"{room_id}@a.test"
    host_c = await join(a, room_id, host)
    host_peer = AudioClient(mic=ToneTrack(TONE))
    peers.append(host_peer)
    await connect_media(host_c, host_peer)  # the host's node becomes the origin
    await host_c.send("set_interconnected", enabled=True)
    await host_c.expect("interconnected_changed", enabled=True)
    # A's own listener, who will hear the remote speaker.
    local = await account(a, "Local", guest=True)
    local_c = await join(a, room_id, local)
    local_peer = AudioClient()
    peers.append(local_peer)
    await connect_media(local_c, local_peer)

    sara = await account(b, "Sara", guest=False)
    sara_peer = AudioClient(mic=ToneTrack(880.0))
    peers.append(sara_peer)
    async with _api(b, sara) as http:
        await http.put("/api/federation/consents/a.test")
        assert (await http.post(f"/api/federation/rooms/{ref}/join")).status_code == 200
        answer = await http.post(f"/api/federation/rooms/{ref}/media",
                                 json={"sdp": await sara_peer.offer()})
        await sara_peer.accept(answer.json()["sdp"])
        async with asyncio.timeout(15):
            await sara_peer.connected()
        await hears_tone(sara_peer, TONE, within=15)
        # A listener's microphone goes nowhere: A's listener hears only the host.
        await asyncio.sleep(1.0)
        await hears_tone(local_peer, TONE, after_frames=frames(local_peer) + 50)

        raised = await http.post(f"/api/federation/rooms/{ref}/act",
                                 json={"action": "raise_hand"})
        assert raised.status_code == 200, raised.text
        await host_c.expect("hand_raised", user_id="sara@b.test", timeout=10)
        await host_c.send("invite_to_speak", user_id="sara@b.test")
        await eventually(lambda: _invited(b, sara, ref), within=10)
        accepted = await http.post(f"/api/federation/rooms/{ref}/act",
                                   json={"action": "accept_invitation"})
        assert accepted.status_code == 200, accepted.text
        # On stage with the microphone off, as every new speaker; she turns it on.
        unmuted = await http.post(f"/api/federation/rooms/{ref}/act", json={"action": "unmute"})
        assert unmuted.status_code == 200, unmuted.text
    await host_c.expect("role_changed", user_id="sara@b.test", timeout=10)
    # A's listener now hears Sara's 880 Hz from B, in a slot of its own.
    await eventually(lambda: _hears_in_any_slot(local_peer, 880.0), within=15)

    sara_slot = next(s for s in local_peer.slots if _slot_hears(s, 880.0))
    await host_c.send("mute", user_id="sara@b.test")
    await host_c.expect("mute_changed", user_id="sara@b.test")
    await asyncio.sleep(0.5)  # packets in flight
    before = len(sara_slot.packets)
    await asyncio.sleep(1.0)
    assert len(sara_slot.packets) == before  # A dropped every packet of hers after the mute


async def _invited(b: Deployment, who: Account, ref: str) -> bool:
    async with _api(b, who) as http:
        state = (await http.get(f"/api/federation/rooms/{ref}")).json()
    return bool(state.get("you") and state["you"].get("invited"))


def _slot_hears(slot: Slot, tone: float, seconds: float = 1.0) -> bool:
    samples = slot.samples(seconds)
    return (
        len(samples) >= SAMPLE_RATE * seconds * 0.8 and float(abs(samples).max()) > 1000
        and abs(dominant_frequency(samples, SAMPLE_RATE) - tone) < 5
    )


def _hears_in_any_slot(peer: AudioClient, tone: float) -> bool:
    return any(_slot_hears(slot, tone) for slot in peer.slots)
