"""Untrusted JSON: decoding that fails only with typed errors, and what may be echoed back.

``json.loads`` accepts input that breaks the server later: ``"\\ud800"`` decodes to a lone
surrogate that cannot be encoded as UTF-8 (for Redis, SQL or the reply itself), a number past
Python's 4,300-digit limit raises a bare ``ValueError``, and bytes are decoded with
``surrogatepass`` (or as UTF-16/32). :func:`decode` refuses all of that with
``malformed_message``, so every caller (WebSocket messages, REST bodies) has one rule.

Whatever is echoed back to a client (a ``ref``, a field name in an error) is checked or clipped
here, so an error reply never grows with the input that caused it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from audio_rooms import errors

MAX_REF_CHARS = 64  # docs/protocol.md: a ref is echoed only if it is a string of at most this
MAX_ECHO_CHARS = 64  # a field name or other piece of input quoted in an error message

_SURROGATE = re.compile("[\ud800-\udfff]")
# Only a \u escape of a surrogate can put one into decoded text: UTF-8 text has none.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def decode(raw: str | bytes) -> Any:
    """The JSON value in ``raw``, with no lone surrogate anywhere in it (keys included).

    Raises :class:`errors.MalformedMessage` for anything else: not UTF-8, not JSON, nested too
    deep, an integer too long to convert, ``NaN``/``Infinity``, a lone surrogate.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, UnicodeDecodeError and the integer digit limit.
        raise errors.MalformedMessage("That is not valid JSON.") from None
    if _SURROGATE_ESCAPE.search(text) and _holds_surrogate(value):
        raise errors.MalformedMessage("Strings must be valid Unicode (no lone surrogates).")
    return value


def valid_ref(value: object) -> str | None:
    """``value`` if it may be echoed as a ``ref``: a string of at most 64 characters (lone
    surrogates never get this far); otherwise None."""
    if isinstance(value, str) and len(value) <= MAX_REF_CHARS and not _SURROGATE.search(value):
        return value
    return None


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked when cut, for quoting input in an error."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _holds_surrogate(value: Any) -> bool:
    # Iterative: decoded values nest nearly as deep as the recursion limit allows.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
