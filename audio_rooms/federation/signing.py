"""Signed server-to-server requests: HTTP Message Signatures (RFC 9421), Ed25519.

Every request one deployment sends another is signed over ``@method``, ``@request-target``,
``content-digest`` (the SHA-256 of the body, RFC 9530), ``date``, ``ar-origin`` (the sender's
server name) and ``ar-destination`` (the receiver's), with the signature parameters
``created``, ``keyid`` (``<server>#g<N>``), ``alg="ed25519"``, a random ``nonce`` and the tag
``audio-rooms``. The receiver refuses, each with its own code (docs/federation.md):

* a request without those headers (``unsigned_request``);
* one addressed to another server (``wrong_destination``);
* one from a server its operator does not allow (``server_not_allowed``);
* a signature that does not verify with a key the origin publishes under its own name
  (``bad_signature``);
* one created more than 60 s ago or ahead (``stale_request``);
* a nonce it has seen in the last two minutes (``replayed_request``; Redis remembers them, so
  every node of the receiving deployment agrees).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import http_message_signatures as hms

from audio_rooms import errors
from audio_rooms.federation.keys import ServerKeys

COMPONENTS = (
    "@method", "@request-target", "content-digest", "date", "ar-origin", "ar-destination",
)
LABEL = "ar"
TAG = "audio-rooms"
MAX_SKEW = timedelta(seconds=60)


class _Message:
    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method = method
        self.url = url
        self.headers = headers


class _Keys(hms.HTTPSignatureKeyResolver):
    def __init__(self, public: Mapping[str, Any], private: Mapping[str, Any]) -> None:
        self._public = public
        self._private = private

    def resolve_public_key(self, key_id: str) -> Any:
        key = self._public.get(key_id)
        if key is None:
            raise hms.HTTPMessageSignaturesException(f"unknown key {key_id}")
        return key

    def resolve_private_key(self, key_id: str) -> Any:
        return self._private[key_id]


def sign(
    keys: ServerKeys, method: str, url: str, body: bytes, destination: str,
    now: datetime | None = None, nonce: str | None = None,
) -> dict[str, str]:
    """The headers that make ``method url`` with ``body`` a signed request to ``destination``."""
    now = now or datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "date": format_datetime(now, usegmt=True),
        "ar-origin": keys.server_name,
        "ar-destination": destination,
    }
    message = _Message(method.upper(), url, headers)
    signer = hms.HTTPMessageSigner(
        signature_algorithm=hms.algorithms.ED25519,
        key_resolver=_Keys({}, {keys.kid: keys.signing_key}),
    )
    signer.sign(
        message, key_id=keys.kid, created=now, nonce=nonce or secrets.token_urlsafe(16),
        label=LABEL, tag=TAG, covered_component_ids=COMPONENTS, body=body,
    )
    return {name.lower(): value for name, value in message.headers.items()}


class FederationRefused(errors.AudioRoomsError):
    http_status = 401


class UnsignedRequest(FederationRefused):
    code = "unsigned_request"


class WrongDestination(FederationRefused):
    code = "wrong_destination"


class BadSignature(FederationRefused):
    code = "bad_signature"


class StaleRequest(FederationRefused):
    code = "stale_request"


class ReplayedRequest(FederationRefused):
    code = "replayed_request"


class ServerNotAllowed(FederationRefused):
    code = "server_not_allowed"
    http_status = 403


class FederationDisabled(FederationRefused):
    code = "federation_disabled"
    http_status = 403


class PeerUnreachable(errors.ServiceUnavailable):
    """The other server could not be reached, or its keys could not be read."""

    code = "peer_unreachable"


def signed_origin(headers: Mapping[str, str], own_name: str) -> str:
    """The claimed origin of a request addressed to ``own_name`` (checks before any key)."""
    if not all(h in headers for h in ("signature", "signature-input", "ar-origin",
                                      "ar-destination", "content-digest", "date")):
        raise UnsignedRequest("Server-to-server requests must be signed.")
    if headers["ar-destination"] != own_name:
        raise WrongDestination("This request is addressed to another server.")
    return headers["ar-origin"]


def verify(
    method: str, url: str, headers: Mapping[str, str], body: bytes, origin: str,
    public_keys: Mapping[str, Any], now: datetime | None = None,
) -> str:
    """Verify a request's signature with ``origin``'s keys; returns its nonce."""
    now = now or datetime.now(UTC)
    own = {kid: key for kid, key in public_keys.items() if kid.startswith(origin + "#")}
    message = _Message(method.upper(), url, {k.lower(): v for k, v in headers.items()})
    verifier = hms.HTTPMessageVerifier(
        signature_algorithm=hms.algorithms.ED25519, key_resolver=_Keys(own, {}),
    )
    try:
        results = verifier.verify(
            message, max_age=None, require_components=COMPONENTS, body=body,
            expect_label=LABEL, expect_tag=TAG,
        )
    except (hms.HTTPMessageSignaturesException, hms.InvalidSignature, ValueError) as exc:
        raise BadSignature(f"The signature does not verify: {exc}") from None
    parameters = results[0].parameters
    created, nonce = parameters.get("created"), parameters.get("nonce")
    if not isinstance(created, int) or not isinstance(nonce, str) or not 8 <= len(nonce) <= 64:
        raise BadSignature("The signature lacks created or nonce.")
    if abs(now - datetime.fromtimestamp(created, UTC)) > MAX_SKEW:
        raise StaleRequest("The request is more than 60 s old (or ahead).")
    return nonce


class NotHomeServer(FederationRefused):
    """A server asked on behalf of a user who is not one of its own."""

    code = "not_home_server"
    http_status = 403


class RoomNotInterconnected(errors.RoomError):
    code = "room_not_interconnected"
    http_status = 403


class ConsentMissing(errors.RoomError):
    """The user has not let their home server join rooms of that server for them."""

    code = "federation_consent_missing"
    http_status = 403
