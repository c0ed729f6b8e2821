"""Validation of what people type into account forms: handle, display name, locale.

Each failure is an InvalidField whose message names the field, and whose details carry it, so the
web client can point at the right input.
"""

from __future__ import annotations

import re
import unicodedata

from audio_rooms.db.records import Locale
from audio_rooms.errors import InvalidField

HANDLE_RE = re.compile(r"[a-z0-9_]{3,32}")
DISPLAY_NAME_MAX = 64

# Bidirectional embeddings, overrides and isolates let a name reorder the text around it
# ("gnp.exe" tricks) on every screen that shows it. ZWNJ and ZWJ stay: Persian spelling needs them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def normalise_handle(handle: str) -> str:
    """Handles are case-insensitive: ``Sara`` and ``sara`` are one account."""
    return handle.strip().lower()


def validate_handle(handle: str) -> str:
    """Return the normalised handle, or raise InvalidField.

    Hyphens are not allowed, which also keeps handles apart from guest ids (``guest-...``).
    """
    normalised = normalise_handle(handle)
    if not HANDLE_RE.fullmatch(normalised):
        raise InvalidField("handle must be 3-32 characters of a-z, 0-9 and _", field="handle")
    return normalised


def clean_display_name(name: str) -> str:
    """Return the display name without control characters, or raise InvalidField."""
    cleaned = "".join(
        char
        for char in unicodedata.normalize("NFC", name)
        if unicodedata.category(char) != "Cc" and char not in _BIDI_CONTROLS
    ).strip()
    if not 1 <= len(cleaned) <= DISPLAY_NAME_MAX:
        raise InvalidField(
            f"display_name must be 1-{DISPLAY_NAME_MAX} characters", field="display_name"
        )
    return cleaned


def validate_locale(locale: str) -> Locale:
    try:
        return Locale(locale)
    except ValueError:
        raise InvalidField(
            "locale must be one of: " + ", ".join(item.value for item in Locale), field="locale"
        ) from None
