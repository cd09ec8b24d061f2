"""Users: `sessions_valid_after`, so every daemon ends the sessions of a changed user.

Set when a user is disabled or gets a new password or role (from the API, the CLI or another
daemon on the same database); each daemon polls it through the index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing users have no voided sessions, and SQLite can add
    # such a column without rebuilding the table.
    op.add_column(
        "users", sa.Column("sessions_valid_after", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_users_sessions_valid_after", "users", ["sessions_valid_after"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_users_sessions_valid_after", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sessions_valid_after")
