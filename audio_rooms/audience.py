"""A room's audience as people see it: how many listen, a few faces, and the list page by page.

Listeners are not announced one by one (docs/protocol.md, "The audience"): every node sends its
connections the room's count and a sample at most once a tick, and anyone who wants names reads
pages. The sample puts first the listeners the room's moderators follow (people the room knows),
then the newest; ``followed`` lists the listeners the viewer follows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from audio_rooms.domain.room import Participant, RoomState
from audio_rooms.state.audience import PAGE_SIZE, SAMPLE_SIZE, AudiencePage
from audio_rooms.state.store import RoomStore

# How many of the moderators' follows are looked for in the audience, and for how long the
# list is kept before SQL is asked again (a new moderator asks at once).
MODERATOR_FOLLOWS = 500
FOLLOWS_TTL = 30.0
VIEWER_FOLLOWS = 1000
# How long a welcome reuses the sample and full first page another welcome just read: a
# thousand people joining in a second cost a few reads, not a thousand. The count is always
# read fresh.
WELCOME_VIEW_TTL = 1.0


class Followings(Protocol):
    async def followed_by_any(self, user_ids: list[str], limit: int) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Glance:
    """What everyone in a room sees of its audience between pages."""

    count: int
    sample: tuple[Participant, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"count": self.count, "sample": [p.to_wire() for p in self.sample]}


class Audience:
    def __init__(self, store: RoomStore, follows: Followings) -> None:
        self.store = store
        self.follows = follows
        self._known: dict[str, tuple[tuple[str, ...], float, list[str]]] = {}
        self._welcome: dict[str, tuple[float, list[dict[str, Any]], dict[str, Any]]] = {}

    async def glance(self, state: RoomState) -> Glance:
        """The count and the sample of a live room."""
        audience = self.store.audience
        first = await self._moderators_follow(state)
        sample = await audience.sample(state.room_id, first, SAMPLE_SIZE)
        return Glance(await audience.count(state.room_id), tuple(sample))

    async def for_welcome(self, state: RoomState) -> dict[str, Any]:
        """The ``audience`` of a snapshot: the count now, the sample and the first page (as
        read at most ``WELCOME_VIEW_TTL`` ago)."""
        room_id = state.room_id
        now = time.monotonic()
        cached = self._welcome.get(room_id)
        # Joins add to the end: a full first page stays right until one of its people leaves;
        # a short one (a small room) is read each time, which is cheap there.
        if (cached is None or now - cached[0] > WELCOME_VIEW_TTL
                or len(cached[2]["listeners"]) < PAGE_SIZE):
            glance = await self.glance(state)
            page = await self.page(room_id, None, PAGE_SIZE)
            cached = (now, glance.to_wire()["sample"], {
                "listeners": [p.to_wire() for p in page.listeners], "next": page.next,
            })
            self._welcome[room_id] = cached
        count = await self.store.audience.count(room_id)
        return {"count": count, "sample": cached[1], "page": cached[2]}

    async def page(self, room_id: str, cursor: str | None, limit: int) -> AudiencePage:
        return await self.store.audience.page(room_id, cursor, limit)

    async def followed(self, room_id: str, viewer_id: str, limit: int) -> AudiencePage:
        """The listeners ``viewer_id`` follows (up to ``limit``), with the room's count."""
        audience = self.store.audience
        followed = await self.follows.followed_by_any([viewer_id], VIEWER_FOLLOWS)
        present = (await audience.present(room_id, followed))[:limit]
        listeners = await audience.listeners(room_id, present)
        return AudiencePage(await audience.count(room_id), listeners, None)

    def forget(self, room_id: str) -> None:
        self._known.pop(room_id, None)
        self._welcome.pop(room_id, None)

    async def _moderators_follow(self, state: RoomState) -> list[str]:
        moderators = tuple(sorted(p.user_id for p in state.moderators() if not p.is_guest))
        known = self._known.get(state.room_id)
        now = time.monotonic()
        if known is not None and known[0] == moderators and now - known[1] < FOLLOWS_TTL:
            return known[2]
        follows = await self.follows.followed_by_any(list(moderators), MODERATOR_FOLLOWS)
        self._known[state.room_id] = (moderators, now, follows)
        return follows
