"""Federation consents: which other servers a user lets their home server join rooms of for
them (docs/federation.md). Off unless given, per server, revocable."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audio_rooms.db.runner import Aggregate, in_session, rowcount
from audio_rooms.db.tables import FederationConsent


class Consents(Aggregate):
    @in_session
    def give_consent(self, session: Session, user_id: str, server: str) -> None:
        """Idempotent."""
        if session.get(FederationConsent, (user_id, server)) is not None:
            return
        session.add(FederationConsent(user_id=user_id, server=server))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # the same consent raced in: the outcome is what was asked

    @in_session
    def withdraw_consent(self, session: Session, user_id: str, server: str) -> bool:
        result = session.execute(
            delete(FederationConsent).where(
                col(FederationConsent.user_id) == user_id, col(FederationConsent.server) == server
            )
        )
        session.commit()
        return bool(rowcount(result))

    @in_session
    def consents(self, session: Session, user_id: str) -> list[str]:
        query = select(FederationConsent.server).where(col(FederationConsent.user_id) == user_id)
        return sorted(session.exec(query))

    @in_session
    def has_consent(self, session: Session, user_id: str, server: str) -> bool:
        return session.get(FederationConsent, (user_id, server)) is not None
