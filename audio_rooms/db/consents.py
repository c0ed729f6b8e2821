"""Federation consents: which other servers a user lets their home server join rooms of for
them (docs/federation.md). Off unless given, per server, revocable. And the operator's own
decisions about other servers, made with the CLI (``federation_peers``)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audio_rooms.db.runner import Aggregate, in_session, rowcount
from audio_rooms.db.tables import FederationConsent, FederationPeer


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

    @in_session
    def set_peer_policy(self, session: Session, server: str, policy: str | None) -> None:
        """``allow``, ``deny``, or None to forget the server (the settings decide again)."""
        row = session.get(FederationPeer, server)
        if policy is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(FederationPeer(server=server, policy=policy))
        else:
            row.policy = policy
            session.add(row)
        session.commit()

    @in_session
    def peer_policies(self, session: Session) -> dict[str, str]:
        return {row.server: row.policy for row in session.exec(select(FederationPeer))}
