from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from audio_rooms.accounts import TokenSigner
from audio_rooms.db import Locale, SessionRecord
from audio_rooms.errors import InvalidField, NotAuthenticated

SECRET = "k" * 48


class FakeClock:
    """Time that tests move by hand, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _session(ttl: int = 3600) -> SessionRecord:
    now = datetime.now(UTC)
    return SessionRecord("sid-123", "sara@test.example", now, now + timedelta(seconds=ttl), None)


def test_user_token_round_trip() -> None:
    signer = TokenSigner(SECRET, "test.example")
    session = _session()

    claims = signer.verify(signer.issue_user_token(session))

    assert claims.subject == "sara@test.example"
    assert claims.session_id == "sid-123"
    assert not claims.is_guest
    assert claims.expires_at == int(session.expires_at.timestamp())


def test_guest_token_round_trip() -> None:
    signer = TokenSigner(SECRET, "test.example")
    guest_id = signer.new_guest_id()

    claims = signer.verify(signer.issue_guest_token(guest_id, " مهمان\n", 600, Locale.FA))

    assert guest_id.startswith("guest-") and guest_id.endswith("@test.example")
    assert claims.is_guest and claims.session_id is None
    assert claims.subject == guest_id
    assert claims.display_name == "مهمان"
    assert claims.locale is Locale.FA


def test_guest_display_name_is_validated() -> None:
    signer = TokenSigner(SECRET, "test.example")

    with pytest.raises(InvalidField):
        signer.issue_guest_token(signer.new_guest_id(), "\x00", 600)


def test_expired_token_is_rejected() -> None:
    clock = FakeClock()
    signer = TokenSigner(SECRET, "test.example", clock=clock)
    token = signer.issue_guest_token(signer.new_guest_id(), "Guest", ttl=60)
    signer.verify(token)

    clock.now += 61

    with pytest.raises(NotAuthenticated, match="expired"):
        signer.verify(token)


def test_token_signed_with_another_secret_is_rejected() -> None:
    token = TokenSigner("z" * 48, "test.example").issue_user_token(_session())

    with pytest.raises(NotAuthenticated):
        TokenSigner(SECRET, "test.example").verify(token)


def test_tampered_payload_is_rejected() -> None:
    signer = TokenSigner(SECRET, "test.example")
    version, payload, mac = signer.issue_user_token(_session()).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "admin@test.example"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()

    with pytest.raises(NotAuthenticated):
        signer.verify(f"{version}.{forged}.{mac}")


def test_tampered_signature_is_rejected() -> None:
    signer = TokenSigner(SECRET, "test.example")
    token = signer.issue_user_token(_session())
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]

    with pytest.raises(NotAuthenticated):
        signer.verify(flipped)


@pytest.mark.parametrize(
    "token",
    ["", "v1", "v1..", "v2.e30.AAAA", "v1.e30", "v1.!!!.???", "not a token", "v1." + "a" * 5000],
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(NotAuthenticated):
        TokenSigner(SECRET, "test.example").verify(token)
