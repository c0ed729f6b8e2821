"""Speaker selection with hysteresis, and stable slot assignment (pure, no network)."""

from __future__ import annotations

from audio_rooms.sfu.audiolevel import LevelMeter, level_from_dbov
from audio_rooms.sfu.slots import SpeakerSelector, assign, wanted_for


def test_free_places_fill_at_once() -> None:
    selector = SpeakerSelector(size=2)
    assert selector.update({"a": 0.0}, now=0.0)
    assert selector.selected == ["a"]
    selector.update({"a": 0.0, "b": 0.0, "c": 0.5}, now=0.1)
    assert sorted(selector.selected) == ["a", "c"]


def test_a_cough_does_not_steal_a_slot() -> None:
    selector = SpeakerSelector(size=2, margin=0.1, hold=0.6)
    talking = {"a": 0.6, "b": 0.5}
    selector.update({**talking, "c": 0.0}, now=0.0)
    assert sorted(selector.selected) == ["a", "b"]
    # c coughs: much louder, for 0.4 s.
    t = 0.0
    for _ in range(2):
        t += 0.2
        selector.update({**talking, "c": 0.9}, now=t)
    selector.update({**talking, "c": 0.1}, now=t + 0.2)
    assert sorted(selector.selected) == ["a", "b"]
    # ...and again later: the clock of the first cough does not carry over.
    for _ in range(3):
        t += 0.2
        selector.update({**talking, "c": 0.9}, now=t + 0.4)
    assert sorted(selector.selected) == ["a", "b"]


def test_sustained_louder_speaker_takes_the_quietest_slot() -> None:
    selector = SpeakerSelector(size=2, margin=0.1, hold=0.6)
    selector.update({"a": 0.6, "b": 0.3, "c": 0.0}, now=0.0)
    for i in range(1, 5):
        selector.update({"a": 0.6, "b": 0.3, "c": 0.7}, now=0.2 * i)
    assert sorted(selector.selected) == ["a", "c"]


def test_a_demoted_speaker_leaves_at_once() -> None:
    selector = SpeakerSelector(size=2)
    selector.update({"a": 0.5, "b": 0.5, "c": 0.1}, now=0.0)
    assert selector.update({"b": 0.5, "c": 0.1}, now=0.01)
    assert sorted(selector.selected) == ["b", "c"]


def test_assignment_keeps_speakers_in_their_slots() -> None:
    assert assign([None, None, None], ["a", "b"]) == ["a", "b", None]
    assert assign(["a", "b", None], ["b", "c"]) == ["c", "b", None]
    assert assign(["a", "b", "c"], ["c", "a", "b"]) == ["a", "b", "c"]


def test_nobody_is_sent_their_own_voice() -> None:
    assert wanted_for(["a", "b", "c", "d"], "b", 3) == ["a", "c", "d"]
    assert wanted_for(["a", "b", "c", "d"], "z", 3) == ["a", "b", "c"]


def test_levels_from_dbov() -> None:
    assert level_from_dbov(0) == 1.0
    assert level_from_dbov(127) == 0.0
    assert 0.6 < level_from_dbov(30) < 0.7
    meter = LevelMeter()
    for i in range(50):
        meter.add(20, now=i * 0.02)
    assert abs(meter.value(1.0) - level_from_dbov(20)) < 0.01
    assert meter.value(3.0) == 0.0
