"""The room domain: pure rules, no I/O.

A transition takes the current :class:`RoomState`, the acting participant and an action, and
returns the new state plus the events it caused, or raises a typed error from
:mod:`audio_rooms.errors`. Every rule about who may do what lives here and nowhere else.
"""

from audio_rooms.domain.actions import Action
from audio_rooms.domain.events import Event
from audio_rooms.domain.roles import Role, Visibility
from audio_rooms.domain.room import Participant, RoomState, new_room
from audio_rooms.domain.transitions import Outcome, apply

__all__ = [
    "Action",
    "Event",
    "Outcome",
    "Participant",
    "Role",
    "RoomState",
    "Visibility",
    "apply",
    "new_room",
]
