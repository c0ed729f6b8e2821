"""Validation of what people type into account forms: handle, display name, locale.

Each failure is an InvalidField whose message names the field, and whose details carry it, so the
web client can point at the right input.
"""

from __future__ import annotations

import re
import unicodedata

from audio_rooms.db.records import Locale
from audio_rooms.errors import InvalidField

# The web client states and checks the same rule, from /api/config (limits.handle_*).
HANDLE_MIN = 3
HANDLE_MAX = 32
HANDLE_RE = re.compile(rf"[a-z0-9_]{{{HANDLE_MIN},{HANDLE_MAX}}}")
DISPLAY_NAME_MAX = 64

ZWNJ = "\u200c"
"""The zero-width non-joiner: Persian spelling needs it (می‌خواهم), so it is the one format
character a name keeps."""

# Format characters (category Cf) are invisible: bidi embeddings, overrides and isolates let a
# name reorder the text around it ("gnp.exe" tricks), zero-width spaces and joiners let two
# names that look the same differ, or a name look empty. All go, except ZWNJ.
# Categories that draw nothing on their own: a name made only of these looks blank.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cs", "Co", "Cn"})
# Letters and symbols that fonts draw as blank space (Hangul fillers, the braille blank).
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def normalise_handle(handle: str) -> str:
    """Handles are case-insensitive: ``Sara`` and ``sara`` are one account."""
    return handle.strip().lower()


def validate_handle(handle: str) -> str:
    """Return the normalised handle, or raise InvalidField.

    Hyphens are not allowed, which also keeps handles apart from guest ids (``guest-...``).
    """
    normalised = normalise_handle(handle)
    if not HANDLE_RE.fullmatch(normalised):
        raise InvalidField(
            f"handle must be {HANDLE_MIN}-{HANDLE_MAX} characters of a-z, 0-9 and _",
            field="handle",
        )
    return normalised


def clean_display_name(name: str) -> str:
    """Return the display name without control and format characters (but ZWNJ), or raise
    InvalidField, also for a name with nothing visible in it."""
    cleaned = "".join(
        char
        for char in unicodedata.normalize("NFC", name)
        if char == ZWNJ or unicodedata.category(char) not in ("Cc", "Cf")
    ).strip()
    if len(cleaned) > DISPLAY_NAME_MAX:
        raise InvalidField(
            f"display_name must be 1-{DISPLAY_NAME_MAX} characters", field="display_name"
        )
    if not any(_visible(char) for char in cleaned):  # also a name that was only format chars
        raise InvalidField("display_name must have a visible character", field="display_name")
    return cleaned


def _visible(char: str) -> bool:
    return (
        char not in _BLANK_GLYPHS
        and not char.isspace()
        and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
    )


def validate_locale(locale: str) -> Locale:
    try:
        return Locale(locale)
    except ValueError:
        raise InvalidField(
            "locale must be one of: " + ", ".join(item.value for item in Locale), field="locale"
        ) from None
