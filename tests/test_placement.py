"""Placement (pure): origins stay where the speaker is unless that node is busy; listeners fill
this node up to its capacity, then the least loaded node with room."""

from __future__ import annotations

from audio_rooms.placement import Candidate, choose_edge, choose_origin


def test_origin_stays_here_unless_busy() -> None:
    nodes = [Candidate("a", 0.5, 10), Candidate("b", 0.1, 0), Candidate("c", 0.2, 0)]
    assert choose_origin(nodes, "a") == "a"
    busy = [Candidate("a", 0.8, 10), Candidate("b", 0.3, 0), Candidate("c", 0.1, 0)]
    assert choose_origin(busy, "a") == "c"
    all_busy = [Candidate("a", 1.5, 0), Candidate("b", 0.95, 0)]
    assert choose_origin(all_busy, "a") == "b"
    assert choose_origin([], "a") == "a"


def test_edges_fill_here_then_the_least_loaded_with_room() -> None:
    nodes = [Candidate("a", 0.1, 5, 5), Candidate("b", 0.1, 300, 800), Candidate("c", 0.1, 20, 800)]
    assert choose_edge(nodes, "a", 10, 5) == "a"
    assert choose_edge(nodes, "a", 5, 5) == "c"
    assert choose_edge(nodes, "a", 5, 5, exclude=("c",)) == "b"
    pure_origin = [Candidate("a", 0.1, 1, 0), Candidate("b", 0.1, 0, 800)]
    assert choose_edge(pure_origin, "a", 0, 1) == "b"
    full = [Candidate("a", 0.1, 10, 10), Candidate("b", 0.2, 900, 800)]
    assert choose_edge(full, "a", 10, 10) in ("a", "b")
