from __future__ import annotations

import pytest

from audio_rooms.accounts.handles import clean_display_name, validate_handle, validate_locale
from audio_rooms.db import Locale
from audio_rooms.errors import InvalidField


@pytest.mark.parametrize(
    ("given", "stored"), [("sara", "sara"), ("  Sara_92 ", "sara_92"), ("abc", "abc")]
)
def test_handles_are_normalised(given: str, stored: str) -> None:
    assert validate_handle(given) == stored


@pytest.mark.parametrize("handle", ["ab", "x" * 33, "sara-k", "sara k", "سارا", "sara@x", ""])
def test_bad_handles_name_the_field(handle: str) -> None:
    with pytest.raises(InvalidField, match="handle") as raised:
        validate_handle(handle)

    assert raised.value.details == {"field": "handle"}


def test_display_name_keeps_persian_joiners_and_drops_controls() -> None:
    zwnj = "\u200c"
    persian = f"می{zwnj}خواهم"

    assert clean_display_name(f"  {persian}\n\x07 ") == persian
    # A right-to-left override would flip the text after the name on every screen.
    assert clean_display_name("evil\u202eexe.txt") == "evilexe.txt"


@pytest.mark.parametrize("name", ["", "   ", "\x00\x01", "\u202e", "x" * 65])
def test_bad_display_names_name_the_field(name: str) -> None:
    with pytest.raises(InvalidField, match="display_name"):
        clean_display_name(name)


def test_locales() -> None:
    assert validate_locale("fa") is Locale.FA
    assert validate_locale("en") is Locale.EN
    with pytest.raises(InvalidField, match="locale"):
        validate_locale("de")
