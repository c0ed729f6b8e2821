"""``GET /api/config`` carries the rules the web client would otherwise copy: the reaction set
(each with a sentence in both catalogues, since the client names them by it) and the limits
that the server enforces on sign-up and room creation."""

from __future__ import annotations

import json
import re
from pathlib import Path

from audio_rooms.domain.actions import REACTIONS
from tests.conftest import AccountFactory, RunningServer

WEB = Path(__file__).resolve().parents[2] / "audio_rooms" / "web"
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


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


async def test_config_names_the_closes_after_which_not_to_reconnect(server: RunningServer) -> None:
    async with server.http() as http:
        served = (await http.get("/api/config")).json()["terminal_close_codes"]
    # The "no" rows of the close-code table in docs/protocol.md (1000 is the client's own leave).
    table = PROTOCOL.read_text().split("### Close codes", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| 4")]
    assert set(served) == {code.strip() for code, _, again in rows if again.strip()[:2] == "no"}
    # The client's fallback, for when /api/config cannot be read, says the same.
    script = (WEB / "sdk" / "signalling.js").read_text()
    fallback = script.split("TERMINAL_CLOSE_CODES = Object.freeze({", 1)[1].split("});", 1)[0]
    assert dict(re.findall(r'(\d{4}): "(\w+)"', fallback)) == served
    for locale in ("en", "fa"):
        catalogue = json.loads((WEB / "i18n" / f"{locale}.json").read_text(encoding="utf-8"))
        assert all(f"closed.{name}" in catalogue for name in served.values()), locale


async def test_session_answers_signed_out_visits_and_branding_has_defaults(
    server: RunningServer, make_account: AccountFactory
) -> None:
    """A page checking who it is on load gets 200 either way (a 401 is a console error in every
    browser); unbranded, the client names the product itself and there is no logo."""
    maryam = await make_account("Maryam")
    async with server.http() as http:
        signed_out = await http.get("/api/auth/session")
        config = (await http.get("/api/config")).json()
        logo = await http.get("/brand/logo")
        manifest = (await http.get("/manifest.webmanifest")).json()
    async with server.http("not-a-token") as http:
        forged = await http.get("/api/auth/session")
    async with server.http(maryam.token) as http:
        signed_in = (await http.get("/api/auth/session")).json()
    assert signed_out.status_code == 200 and signed_out.json() == {"user": None}
    assert forged.status_code == 200 and forged.json() == {"user": None}
    assert signed_in["user"]["id"] == maryam.user_id
    assert config["branding"] == {"name": None, "colour": "#0b5f55", "logo": None}
    assert config["limits"]["handle_min"] == 3 and config["limits"]["handle_max"] == 32
    assert logo.status_code == 404 and logo.json()["code"] == "not_found"
    assert manifest["name"] == "Audio rooms" and manifest["display"] == "standalone"
