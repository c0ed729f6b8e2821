from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from audio_rooms.accounts import passwords
from audio_rooms.errors import InvalidField


def test_right_password_verifies_and_wrong_one_does_not() -> None:
    stored = passwords.hash_password("correct horse")

    assert stored.startswith("$argon2id$")
    assert passwords.verify_password(stored, "correct horse")
    assert not passwords.verify_password(stored, "correct horsE")
    assert not passwords.needs_rehash(stored)


@pytest.mark.parametrize("bad_hash", ["", "plain-text", "$argon2id$v=19$m=1$broken"])
def test_unreadable_hash_is_a_mismatch_not_a_crash(bad_hash: str) -> None:
    assert not passwords.verify_password(bad_hash, "whatever123")
    assert passwords.needs_rehash(bad_hash)


def test_weaker_parameters_need_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse")

    assert passwords.verify_password(weak, "correct horse")
    assert passwords.needs_rehash(weak)


@pytest.mark.parametrize("password", ["", "short12", "x" * 129])
def test_policy_rejects_lengths_outside_8_to_128(password: str) -> None:
    with pytest.raises(InvalidField) as raised:
        passwords.hash_password(password)

    assert raised.value.details == {"field": "password"}


def test_policy_accepts_boundaries_and_persian() -> None:
    passwords.check_password_policy("x" * 8)
    passwords.check_password_policy("x" * 128)
    assert passwords.verify_password(passwords.hash_password("رمز عبور من"), "رمز عبور من")
