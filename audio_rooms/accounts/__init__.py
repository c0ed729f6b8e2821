"""Accounts: passwords, signed session tokens, and the sign-up / sign-in / sign-out flows."""

from __future__ import annotations

from audio_rooms.accounts.service import enter_as_guest, sign_in, sign_out, sign_up
from audio_rooms.accounts.tokens import (
    Identity,
    TokenClaims,
    TokenSigner,
    authenticate,
    signer_for,
)

__all__ = [
    "Identity",
    "TokenClaims",
    "TokenSigner",
    "authenticate",
    "enter_as_guest",
    "sign_in",
    "sign_out",
    "sign_up",
    "signer_for",
]
