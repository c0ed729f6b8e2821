"""Who follows whom: social rooms admit and show themselves to people their hosts follow."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audio_rooms.db.runner import Aggregate, in_session, rowcount
from audio_rooms.db.tables import Follow, User
from audio_rooms.errors import InvalidField, UserNotFound


class Follows(Aggregate):
    @in_session
    def follow(self, session: Session, follower_id: str, followee_id: str) -> None:
        """Idempotent. Following yourself is an InvalidField; an unknown followee UserNotFound."""
        if follower_id == followee_id:
            raise InvalidField("you cannot follow yourself", field="followee_id")
        if session.get(Follow, (follower_id, followee_id)) is not None:
            return
        for user_id in (follower_id, followee_id):
            if session.get(User, user_id) is None:
                raise UserNotFound(user_id=user_id)
        session.add(Follow(follower_id=follower_id, followee_id=followee_id))
        try:
            session.commit()
        except IntegrityError:
            # The same follow raced in from another request: the outcome is what was asked.
            session.rollback()

    @in_session
    def unfollow(self, session: Session, follower_id: str, followee_id: str) -> bool:
        """False if there was nothing to undo."""
        result = session.execute(
            delete(Follow).where(
                col(Follow.follower_id) == follower_id, col(Follow.followee_id) == followee_id
            )
        )
        session.commit()
        return bool(rowcount(result))

    async def followers_among(self, user_id: str, candidate_ids: list[str]) -> set[str]:
        """Which of ``candidate_ids`` follow ``user_id``? (Social rooms admit and show
        themselves to people the host or a moderator follows.)"""
        if not candidate_ids:
            return set()  # no social room in sight: joins and lobby pages cost no thread
        return await self._followers_among(user_id, list(candidate_ids))

    @in_session
    def _followers_among(
        self, session: Session, user_id: str, candidate_ids: list[str]
    ) -> set[str]:
        query = select(Follow.follower_id).where(
            col(Follow.followee_id) == user_id, col(Follow.follower_id).in_(candidate_ids)
        )
        return set(session.exec(query))

    @in_session
    def following(self, session: Session, user_id: str) -> list[str]:
        """Ids of the users ``user_id`` follows, in the order they were followed."""
        query = (
            select(Follow.followee_id)
            .where(col(Follow.follower_id) == user_id)
            .order_by(col(Follow.created_at), col(Follow.followee_id))
        )
        return list(session.exec(query))

    async def followed_by_any(self, user_ids: list[str], limit: int) -> list[str]:
        """Up to ``limit`` ids of people any of ``user_ids`` follow, most recently followed
        first (the faces a room's moderators know come first in its audience sample)."""
        if not user_ids:
            return []
        return await self._followed_by_any(list(user_ids), limit)

    @in_session
    def _followed_by_any(self, session: Session, user_ids: list[str], limit: int) -> list[str]:
        query = (
            select(Follow.followee_id)
            .where(col(Follow.follower_id).in_(user_ids))
            .group_by(col(Follow.followee_id))
            .order_by(func.max(Follow.created_at).desc(), col(Follow.followee_id))
            .limit(limit)
        )
        return list(session.exec(query))

    @in_session
    def followers_count(self, session: Session, user_id: str) -> int:
        query = select(func.count()).select_from(Follow).where(col(Follow.followee_id) == user_id)
        return session.exec(query).one()
