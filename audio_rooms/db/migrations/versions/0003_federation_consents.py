"""Federation consents: which servers a user lets their home server join rooms of.

Revision ID: 0003
Revises: 0002
Created: 2026-12-03 06:36:45.615874
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_consents",
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("server", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "server"),
    )


def downgrade() -> None:
    op.drop_table("federation_consents")
