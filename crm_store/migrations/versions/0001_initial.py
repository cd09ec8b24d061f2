"""Initial schema: users, customers, contact points, interactions, messages,
service requests and their transitions, audit log.

Generated with Alembic autogenerate from crm_store.models, then reviewed: the
UTCDateTime columns are plain `DateTime(timezone=True)` here so this file never
depends on the models as they are later.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("segment", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "tier IN ('bronze', 'silver', 'gold', 'platinum')", name=op.f("ck_customers_tier")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index("ix_customers_name", "customers", ["name"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("capacities", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("at"),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_audit_log_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)

    op.create_table(
        "contact_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("raw", sa.String(length=320), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "kind IN ('phone', 'email', 'chat')", name=op.f("ck_contact_points_kind")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_contact_points_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_points")),
        sa.UniqueConstraint("kind", "value", name="uq_contact_points_kind_value"),
    )
    op.create_index(
        op.f("ix_contact_points_customer_id"), "contact_points", ["customer_id"], unique=False
    )

    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        _timestamp("started_at"),
        _timestamp("offered_at", nullable=True),
        _timestamp("answered_at", nullable=True),
        _timestamp("ended_at", nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("ivr_path", sa.JSON(), nullable=True),
        sa.Column("ivr_inputs", sa.JSON(), nullable=True),
        sa.Column("routing", sa.JSON(), nullable=True),
        sa.Column("end_cause", sa.String(length=64), nullable=True),
        sa.Column("disposition", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("recording_ref", sa.String(length=500), nullable=True),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "channel IN ('voice', 'email', 'sms', 'chat')", name=op.f("ck_interactions_channel")
        ),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_interactions_direction")
        ),
        sa.CheckConstraint(
            "csat IS NULL OR (csat >= 1 AND csat <= 5)", name=op.f("ck_interactions_csat")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["users.id"],
            name=op.f("fk_interactions_agent_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_interactions_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
    )
    op.create_index(
        "ix_interactions_customer_started",
        "interactions",
        ["customer_id", "started_at", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_interactions_external_id"), "interactions", ["external_id"], unique=False
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_messages_direction")
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_messages_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("channel", "provider_id", name="uq_messages_channel_provider_id"),
    )
    op.create_index(
        op.f("ix_messages_interaction_id"), "messages", ["interaction_id"], unique=False
    )

    op.create_table(
        "service_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("assigned_to_id", sa.Integer(), nullable=True),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('new', 'assigned', 'in_progress', 'feedback', 'archived')",
            name=op.f("ck_service_requests_status"),
        ),
        sa.CheckConstraint(
            "csat IS NULL OR (csat >= 1 AND csat <= 5)", name=op.f("ck_service_requests_csat")
        ),
        sa.ForeignKeyConstraint(
            ["assigned_to_id"],
            ["users.id"],
            name=op.f("fk_service_requests_assigned_to_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_service_requests_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_service_requests_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_service_requests_interaction_id_interactions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_requests")),
    )
    op.create_index(
        "ix_service_requests_assignee_status",
        "service_requests",
        ["assigned_to_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_service_requests_customer_status",
        "service_requests",
        ["customer_id", "status"],
        unique=False,
    )

    op.create_table(
        "service_request_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_request_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _timestamp("at"),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_service_request_transitions_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_request_id"],
            ["service_requests.id"],
            name=op.f("fk_service_request_transitions_service_request_id_service_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_request_transitions")),
    )
    op.create_index(
        op.f("ix_service_request_transitions_service_request_id"),
        "service_request_transitions",
        ["service_request_id"],
        unique=False,
    )


def downgrade() -> None:
    # Dependants first; dropping a table drops its indexes with it.
    for table in (
        "service_request_transitions",
        "service_requests",
        "messages",
        "interactions",
        "contact_points",
        "audit_log",
        "users",
        "customers",
    ):
        op.drop_table(table)
