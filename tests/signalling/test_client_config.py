"""``GET /api/config`` carries the rules the web client would otherwise copy: the reaction set
(each with a sentence in both catalogues, since the client names them by it) and the limits
that the server enforces on sign-up and room creation."""

from __future__ import annotations

import json
from pathlib import Path

from audio_rooms.domain.actions import REACTIONS
from tests.conftest import RunningServer

WEB = Path(__file__).resolve().parents[2] / "audio_rooms" / "web"


async def test_config_gives_the_reactions_and_the_limits_the_server_enforces(
    server: RunningServer,
) -> None:
    async with server.http() as http:
        config = (await http.get("/api/config")).json()
        refused = await http.post("/api/auth/signup", json={
            "handle": "x" * 33, "display_name": "X", "password": "a long password"})
        too_long = await http.post("/api/auth/signup", json={
            "handle": "longname", "password": "a long password",
            "display_name": "n" * (config["limits"]["display_name_max"] + 1)})
    assert {r["emoji"] for r in config["reactions"]} == REACTIONS
    for locale in ("en", "fa"):
        catalogue = json.loads((WEB / "i18n" / f"{locale}.json").read_text(encoding="utf-8"))
        for reaction in config["reactions"]:
            assert f"reaction.{reaction['name']}" in catalogue, (locale, reaction)
    limits = config["limits"]
    assert limits["handle_pattern"] and limits["password_min"] <= limits["password_max"]
    assert refused.status_code == 400 and refused.json()["details"]["field"] == "handle"
    assert too_long.status_code == 400 and too_long.json()["details"]["field"] == "display_name"
