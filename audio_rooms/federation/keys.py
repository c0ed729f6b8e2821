"""This server's Ed25519 identity for server-to-server requests.

The signing key is derived from the deployment's ``AUDIO_ROOMS_SECRET_KEY`` with HKDF-SHA256
(info ``audio-rooms federation ed25519 g<N>``), so every node of a deployment signs with the
same key without any key file to copy, and a key is never stored. Rotation is a number:
``AUDIO_ROOMS_FEDERATION_KEY_GENERATION`` N makes key ``g<N>`` the one that signs; key
``g<N-1>`` is still published (verify only) until ``AUDIO_ROOMS_FEDERATION_KEY_RETIRED_UNTIL``,
so peers that cached it keep accepting requests signed just before the change.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class PublicKey:
    kid: str
    key: Ed25519PublicKey
    valid_until: datetime | None  # None: the current key

    def to_wire(self) -> dict[str, str | None]:
        raw = self.key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {
            "kid": self.kid,
            "alg": "ed25519",
            "public_key": _b64(raw),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }

    @classmethod
    def from_wire(cls, data: object) -> PublicKey:
        if not isinstance(data, dict) or data.get("alg") != "ed25519":
            raise ValueError("not an ed25519 key")
        kid, raw, until = data.get("kid"), data.get("public_key"), data.get("valid_until")
        if not isinstance(kid, str) or not isinstance(raw, str) or len(kid) > 300:
            raise ValueError("bad key")
        key = Ed25519PublicKey.from_public_bytes(_unb64(raw))
        valid_until = datetime.fromisoformat(until) if isinstance(until, str) else None
        return cls(kid, key, valid_until)


def _derive(secret: str, generation: int) -> Ed25519PrivateKey:
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"audio-rooms",
        info=f"audio-rooms federation ed25519 g{generation}".encode(),
    ).derive(secret.encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


class ServerKeys:
    def __init__(
        self, server_name: str, secret: str, generation: int = 1,
        retired_until: datetime | None = None,
    ) -> None:
        self.server_name = server_name
        self.generation = generation
        self.signing_key = _derive(secret, generation)
        self.kid = f"{server_name}#g{generation}"
        self._published = [PublicKey(self.kid, self.signing_key.public_key(), None)]
        if generation > 1 and retired_until is not None:
            old = _derive(secret, generation - 1)
            self._published.append(
                PublicKey(f"{server_name}#g{generation - 1}", old.public_key(), retired_until)
            )

    def published(self, now: datetime) -> list[PublicKey]:
        """The keys peers may verify this server's requests with now."""
        return [k for k in self._published if k.valid_until is None or k.valid_until > now]
