"""Contact events: the append-only log of every contact's life cycle (and of agents'
statuses), from which the day's figures are rebuilt after a restart.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_events")),
    )
    op.create_index("ix_contact_events_at", "contact_events", ["at"], unique=False)
    op.create_index(
        "ix_contact_events_interaction_id",
        "contact_events",
        ["interaction_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_contact_events_interaction_id", table_name="contact_events")
    op.drop_index("ix_contact_events_at", table_name="contact_events")
    op.drop_table("contact_events")
