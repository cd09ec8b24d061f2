"""Text channels: messages both ways with their delivery state, threads and attachments;
the name that came with a contact; opt-outs; channel adapters' cursors.

Existing messages become `received` (inbound) or `sent` (outbound): everything stored
before this revision was delivered already or came in.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("received", "queued", "sending", "sent", "delivered", "read", "failed", "undelivered")
_NEW_COLUMNS = (
    "sender_name",
    "recipient",
    "thread_key",
    "thread_refs",
    "attachments",
    "status",
    "author_id",
    "attempts",
    "next_attempt_at",
    "last_error",
    "status_at",
)


def upgrade() -> None:
    op.add_column("interactions", sa.Column("address_name", sa.String(length=200), nullable=True))
    # SQLite cannot add a foreign key or a check constraint in place: batch rebuilds it.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("sender_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("recipient", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("thread_key", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("thread_refs", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("attachments", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(length=12), nullable=False, server_default="received")
        )
        batch.add_column(sa.Column("author_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_messages_author_id_users"), "users", ["author_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_check_constraint(
            op.f("ck_messages_status"), "status IN (" + ", ".join(f"'{s}'" for s in _STATUSES) + ")"
        )
        batch.create_index("ix_messages_channel_thread", ["channel", "thread_key", "id"])
        batch.create_index("ix_messages_status_next_attempt", ["status", "next_attempt_at"])
    op.execute("UPDATE messages SET status = 'sent' WHERE direction = 'outbound'")
    # The models give the defaults; the server defaults were only for the rows already there.
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("status", server_default=None)
        batch.alter_column("attempts", server_default=None)
    op.create_table(
        "opt_outs",
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("channel", "address", name=op.f("pk_opt_outs")),
    )
    op.create_table(
        "channel_cursors",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_channel_cursors")),
    )


def downgrade() -> None:
    # Opt-outs and cursors go, and messages keep their bodies but lose delivery state:
    # a downgrade must not be run with outbound messages still queued.
    op.drop_table("channel_cursors")
    op.drop_table("opt_outs")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_status_next_attempt")
        batch.drop_index("ix_messages_channel_thread")
        batch.drop_constraint(op.f("ck_messages_status"), type_="check")
        batch.drop_constraint(op.f("fk_messages_author_id_users"), type_="foreignkey")
        for column in reversed(_NEW_COLUMNS):
            batch.drop_column(column)
    # In place (SQLite >= 3.35 drops a column without rebuilding): rebuilding interactions
    # would take its messages with it where foreign keys are enforced.
    op.drop_column("interactions", "address_name")
