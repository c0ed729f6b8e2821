"""The protocol as documents generated from the code: served, listing exactly what
docs/protocol.md lists, and describing what a real client really receives."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, get_args

from audio_rooms.domain import events as ev
from audio_rooms.sfu.testing import AudioClient, ToneTrack
from audio_rooms.sfu.transport import Loss
from audio_rooms.signalling.outbound import (
    SERVER_MESSAGES,
    MediaFailed,
    message_types,
    websocket_schema,
)
from audio_rooms.signalling.schema import openapi
from tests.conftest import (
    AccountFactory,
    Client,
    RunningServer,
    ServerFactory,
    connect,
    create_room,
)

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def table_first_cells(heading: str) -> list[str]:
    """The first cell of every row of the table under ``heading`` in docs/protocol.md."""
    lines = PROTOCOL.read_text(encoding="utf-8").splitlines()
    cells = []
    for line in lines[lines.index(heading) + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| type |"):
            cells.append(line[2:].partition(" | ")[0])
    return cells


def documented_types(heading: str) -> set[str]:
    return {cell.strip("`") for cell in table_first_cells(heading)}


def test_docs_list_exactly_the_message_types_of_the_schema() -> None:
    assert documented_types("### Actions (client to server)") == message_types("client_to_server")
    assert (documented_types("### Deltas and replies (server to client)")
            == message_types("server_to_client"))


def test_docs_list_exactly_the_endpoints_of_the_openapi_document() -> None:
    documented = set()
    for cell in table_first_cells("| method and path | body | answer |"):
        methods, _, path = cell.replace("`", "").partition(" ")
        if path.startswith("/api/"):
            path = re.sub(r"\{[^}]*\}", "{}", path.partition("?")[0])
            documented |= {(method, path) for method in methods.split("/")}
    generated = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
        for path, operations in openapi()["paths"].items()
        for method in operations
    }
    # The two documents describe the API; they are not part of its route table.
    assert documented - generated == {("GET", "/api/openapi.json"), ("GET", "/api/schema/ws.json")}
    assert generated <= documented


def test_every_event_the_domain_makes_matches_its_schema() -> None:
    participant = {"user_id": "a@x", "display_name": "A", "role": "listener", "is_guest": False,
                   "self_muted": True, "muted_by_moderator": False, "hand_raised": False}
    made = [
        ev.participant_joined(participant, "a@x"),
        ev.participant_left("a@x", "timeout"),
        ev.participant_left("a@x", "left", listener=True),
        ev.role_changed("a@x", "speaker", None),
        ev.role_changed("a@x", "speaker", "a@x", participant),
        ev.hand_raised("a@x", participant),
        ev.hand_lowered("a@x", "h@x"),
        ev.invited("a@x", "h@x", participant),
        ev.invitation_declined("a@x"),
        ev.mute_changed("a@x", True, True, "h@x"),
        ev.participant_removed("a@x", "h@x", True),
        ev.accounts_only_changed(True, "h@x"),
        ev.invite_rotated("h@x"),
        ev.room_ended("abandoned", None),
    ]
    for event in made:
        SERVER_MESSAGES.validate_python(event.to_wire(7))


def test_media_failed_reasons_are_the_transport_losses_and_the_moves() -> None:
    reasons = set(get_args(MediaFailed.model_fields["reason"].annotation))
    moves = {"origin_moved", "media_moved", "media_node_lost"}  # docs/cascade.md
    assert reasons == {loss.value for loss in Loss} | moves


async def test_the_documents_are_served(server: RunningServer) -> None:
    async with server.http() as http:
        ws_schema = await http.get("/api/schema/ws.json")
        api_schema = await http.get("/api/openapi.json")
    assert ws_schema.status_code == 200 and ws_schema.json() == websocket_schema()
    assert api_schema.status_code == 200
    sign_up = api_schema.json()["paths"]["/api/auth/signup"]["post"]
    body = sign_up["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body == "#/components/schemas/SignUp"
    assert api_schema.json()["components"]["schemas"]["SignUp"]["required"] == [
        "handle", "display_name", "password"
    ]


class Recorder:
    """A participant whose every received frame is kept as the text that arrived."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.texts: list[str] = []

    async def send(self, kind: str, **fields: Any) -> None:
        await self.client.send(kind, **fields)

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                text = await self.client.ws.recv()
                assert isinstance(text, str)
                self.texts.append(text)
                message: dict[str, Any] = json.loads(text)
                if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                    return message


async def test_what_a_room_sends_is_what_the_schema_says(
    make_server: ServerFactory, make_account: AccountFactory
) -> None:
    # make_account signs up on the default server; this one shares its Redis and database.
    server = await make_server(media_connect_timeout=1.0)
    host, ana, bob = [await make_account(n) for n in ("Host", "Ana", "Bob")]
    carl, hoarder = [await make_account(n, guest=True) for n in ("Carl", "Hoarder")]
    room_id = await create_room(server, host)
    people: list[Recorder] = []

    async def enter(account: Any, room: str = room_id) -> Recorder:
        recorder = Recorder(await connect(server, room, account))
        people.append(recorder)
        await recorder.expect("welcome")
        return recorder

    speaker, listener, unanswered = AudioClient(mic=ToneTrack(440)), AudioClient(), AudioClient()
    try:
        # Ana is in first: the host's arrival on stage is a participant_joined for her.
        ana_r = await enter(ana)
        host_r = await enter(host)
        await ana_r.expect("participant_joined", user_id=host.user_id)
        await host_r.send("ping", ref="p")
        await host_r.expect("pong", ref="p")
        await host_r.send("ice_servers", ref="i")
        await host_r.expect("ice_servers", ref="i")
        await host_r.send("reaction", emoji="👏", ref="r")
        await host_r.expect("ack", ref="r")
        await ana_r.expect("reactions")
        await host_r.send("no_such_thing", ref="e")
        await host_r.expect("error", ref="e", code="unknown_message_type")

        for recorder, peer in ((host_r, speaker), (ana_r, listener)):
            await recorder.send("media_offer", sdp=await peer.offer(), ref="m")
            await peer.accept((await recorder.expect("media_answer", timeout=15))["sdp"])
        speakers = await ana_r.expect("active_speakers", timeout=10)
        assert speakers["speakers"][0]["user_id"] == host.user_id
        hoarder_r = await enter(hoarder)
        await hoarder_r.send("media_offer", sdp=await unanswered.offer(), ref="h")
        await hoarder_r.expect("media_answer", ref="h", timeout=15)
        await hoarder_r.expect("media_failed", reason="connect_timeout")

        await ana_r.send("raise_hand")
        await host_r.expect("hand_raised", user_id=ana.user_id)
        await host_r.send("lower_hand", user_id=ana.user_id)
        await ana_r.expect("hand_lowered", user_id=ana.user_id)
        await host_r.send("invite_to_speak", user_id=ana.user_id)
        await ana_r.expect("invited")
        await ana_r.send("decline_invitation")
        await host_r.expect("invitation_declined", user_id=ana.user_id)
        await host_r.send("invite_to_speak", user_id=ana.user_id)
        await ana_r.expect("invited")
        await ana_r.send("accept_invitation")
        await host_r.expect("role_changed", user_id=ana.user_id, role="speaker")
        await host_r.send("mute", user_id=ana.user_id)
        await ana_r.expect("mute_changed", user_id=ana.user_id, muted_by_moderator=True)
        await host_r.send("make_moderator", user_id=ana.user_id)
        await ana_r.expect("role_changed", user_id=ana.user_id, role="moderator")
        await ana_r.expect("snapshot")  # a moderator sees the hand queue: a fresh view
        await host_r.send("set_accounts_only", enabled=True)
        await ana_r.expect("accounts_only_changed", enabled=True)
        await host_r.send("rotate_invite")
        await ana_r.expect("invite_rotated")

        bob_r = await enter(bob)
        # Listeners are counted, not announced: the newest face shows within a tick.
        while True:
            update = await host_r.expect("audience")
            if bob.user_id in {p["user_id"] for p in update["sample"]}:
                break
        await host_r.send("audience_page", ref="ap")
        page = await host_r.expect("audience_page", ref="ap")
        assert bob.user_id in {p["user_id"] for p in page["listeners"]}
        await host_r.send("remove", user_id=bob.user_id)
        await bob_r.expect("participant_removed", user_id=bob.user_id)
        await host_r.send("set_accounts_only", enabled=False)
        await ana_r.expect("accounts_only_changed", enabled=False)
        await host_r.send("set_interconnected", enabled=True)
        await ana_r.expect("interconnected_changed", enabled=True)
        carl_r = await enter(carl)
        await carl_r.send("leave")
        await ana_r.send("leave")  # a moderator leaving the stage is told to everyone
        await host_r.expect("participant_left", user_id=ana.user_id, reason="left")
        await host_r.send("end_room")
        await host_r.expect("room_ended", reason="ended_by_moderator")

        # A restart tells everyone still connected, in any room, to come back shortly.
        second_r = await enter(host, await create_room(server, host))
        await server.services.hub.drain(0.5)
        await second_r.expect("reconnect")
    finally:
        for peer in (speaker, listener, unanswered):
            await peer.close()

    seen = set()
    for text in (text for recorder in people for text in recorder.texts):
        message = json.loads(text)
        SERVER_MESSAGES.validate_python(message)  # exactly the schema's fields and types
        # Encoded once, compactly, as it always was: clients and the fan-out rely on it.
        assert text == json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        seen.add(message["type"])
    assert seen == message_types("server_to_client")
