"""Two real deployments verify each other's signed requests; forged, unsigned, replayed, stale,
mis-addressed and not-allowed requests are refused, each with its own code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from audio_rooms.federation import signing
from audio_rooms.federation.keys import ServerKeys

from .conftest import Deployment

Make = Callable[..., tuple[Deployment, Deployment]]


def _post(target: Deployment, headers: dict[str, str], body: bytes = b"{}") -> httpx.Response:
    return httpx.post(f"{target.base_url}/federation/v1/ping", content=body, headers=headers,
                      timeout=10)


def _signed(keys: ServerKeys, target: Deployment, body: bytes = b"{}", **kw: object
            ) -> dict[str, str]:
    return signing.sign(keys, "POST", f"{target.base_url}/federation/v1/ping", body,
                        kw.pop("destination", target.name), **kw)  # type: ignore[arg-type]


def test_peers_verify_each_other_and_refuse_what_is_not_theirs(
    make_deployments: Make
) -> None:
    a, b = make_deployments()
    # B's operator checks the link: a signed request A verifies with B's published key.
    pinged = b.cli("federation", "ping", "a.test")
    assert pinged.returncode == 0, pinged.stderr
    assert "it is a.test, we are b.test" in pinged.stdout

    b_keys = ServerKeys("b.test", b.secret)
    ok = _post(a, _signed(b_keys, a))
    assert ok.status_code == 200 and ok.json() == {"server_name": "a.test", "you": "b.test"}

    def refused(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["code"]

    assert refused(_post(a, {"content-type": "application/json"})) == (401, "unsigned_request")
    forger = ServerKeys("b.test", "not b's secret")
    assert refused(_post(a, _signed(forger, a))) == (401, "bad_signature")
    headers = _signed(b_keys, a)
    assert _post(a, headers).status_code == 200
    assert refused(_post(a, headers)) == (401, "replayed_request")
    tampered = _signed(b_keys, a)
    assert refused(_post(a, tampered, b'{"x":1}')) == (401, "bad_signature")
    assert refused(_post(a, _signed(b_keys, a, destination="c.test"))) == (
        401, "wrong_destination")
    old = datetime.now(UTC) - timedelta(seconds=120)
    assert refused(_post(a, _signed(b_keys, a, now=old))) == (401, "stale_request")
    c_keys = ServerKeys("c.test", "c's secret")
    assert refused(_post(a, _signed(c_keys, a))) == (403, "server_not_allowed")


def test_a_denied_server_and_a_rotated_key(make_deployments: Make) -> None:
    retired_until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    a, b = make_deployments(
        a_env={"AUDIO_ROOMS_FEDERATION_DENY": "b.test"},
        b_env={"AUDIO_ROOMS_FEDERATION_KEY_GENERATION": "2",
               "AUDIO_ROOMS_FEDERATION_KEY_RETIRED_UNTIL": retired_until},
    )
    document = httpx.get(f"{b.base_url}/.well-known/audio-rooms", timeout=5).json()
    assert document["server_name"] == "b.test" and document["federation"] is True
    assert [k["kid"] for k in document["keys"]] == ["b.test#g2", "b.test#g1"]
    assert "secret" not in json.dumps(document)
    # B's old key still verifies during the overlap, at a server that allows B...
    old_keys = ServerKeys("b.test", b.secret, 1)
    # ...but A denies B outright, whatever the key.
    response = _post(a, _signed(old_keys, a))
    assert (response.status_code, response.json()["code"]) == (403, "server_not_allowed")
    pinged = b.cli("federation", "ping", "a.test")
    assert pinged.returncode == 1 and "server_not_allowed" in pinged.stderr


def test_an_operator_denies_and_forgives_a_server_from_the_cli(make_deployments: Make) -> None:
    """``federation deny`` on a running deployment: every node refuses the server within
    seconds; ``forget`` lets the settings decide again."""
    a, b = make_deployments()
    assert b.cli("federation", "ping", "a.test").returncode == 0
    denied = a.cli("federation", "deny", "b.test")
    assert denied.returncode == 0, denied.stderr
    listed = a.cli("federation", "peers").stdout
    assert "server=b.test\tpolicy=deny\tfrom=cli" in listed
    assert "server=b.test\tpolicy=allow\tfrom=settings" in listed

    def refused() -> bool:
        pinged = b.cli("federation", "ping", "a.test")
        return pinged.returncode == 1 and "server_not_allowed" in pinged.stderr

    deadline = time.monotonic() + 15
    while not refused():
        assert time.monotonic() < deadline, "the denial never took effect"
        time.sleep(0.5)
    assert a.cli("federation", "forget", "b.test").returncode == 0
    deadline = time.monotonic() + 15
    while b.cli("federation", "ping", "a.test").returncode != 0:
        assert time.monotonic() < deadline, "forgetting the denial never took effect"
        time.sleep(0.5)
    assert a.cli("federation", "deny", "not a name").returncode == 2
