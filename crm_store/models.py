"""SQLAlchemy models of the CRM store: one schema for SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

TIERS = ("bronze", "silver", "gold", "platinum")
CONTACT_KINDS = ("phone", "email", "chat")
CHANNELS = ("voice", "email", "sms", "chat")
DIRECTIONS = ("inbound", "outbound")
# A message's way: received from the customer; queued -> sending -> sent -> delivered (or
# failed / undelivered) for what agents write.
MESSAGE_STATUSES = (
    "received",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "undelivered",
)
ROLES = ("agent", "supervisor", "admin")
SR_STATUSES = ("new", "assigned", "in_progress", "feedback", "archived")
OPEN_SR_STATUSES = ("new", "assigned", "in_progress", "feedback")


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    SQLite has no time zones and returns naive values; without this, comparing a
    stored time with `utcnow()` would raise on SQLite and not on PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# Named constraints so Alembic migrations can refer to them on both dialects.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    # {"billing": 7, "spanish": 4}: skill name -> level 1..10.
    skills: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"voice": 1, "chat": 3}: overrides of the configured per-channel capacity.
    capacities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The agent's phone, as Asterisk dials it ("PJSIP/1001").
    device: Mapped[str | None] = mapped_column(String(200))
    # Sessions made before this moment are void (disabled, new password, new role): the
    # daemons poll it, so a change from the CLI or another daemon ends sessions too.
    sessions_valid_after: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (CheckConstraint(_in("tier", TIERS), name="tier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16), default="bronze")
    language: Mapped[str | None] = mapped_column(String(16))
    segment: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="ContactPoint.id"
    )


Index("ix_customers_name", Customer.name)


class ContactPoint(Base):
    """A way to reach a customer; `value` is normalised (E.164, lower-case email)."""

    __tablename__ = "contact_points"
    __table_args__ = (
        UniqueConstraint("kind", "value", name="uq_contact_points_kind_value"),
        CheckConstraint(_in("kind", CONTACT_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(320))
    raw: Mapped[str] = mapped_column(String(320))
    label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="contact_points")


class Interaction(Base):
    """One contact on any channel, from offer to wrap-up."""

    __tablename__ = "interactions"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint("csat IS NULL OR (csat >= 1 AND csat <= 5)", name="csat"),
        # The timeline and the screen pop read a customer's newest interactions first.
        Index("ix_interactions_customer_started", "customer_id", "started_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8), default="inbound")
    # Channel-side identity: Asterisk Linkedid, email Message-ID, Twilio SID, chat session.
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The address the contact came from or went to, as seen (caller id, email address).
    address: Mapped[str | None] = mapped_column(String(320))
    # The name that came with it (caller id name, an email's From name, a chat's pre-chat
    # form): shown on the pop of a customer the store does not know yet.
    address_name: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    offered_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    queue: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ivr_path: Mapped[list[Any] | None] = mapped_column(JSON)
    ivr_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    end_cause: Mapped[str | None] = mapped_column(String(64))
    disposition: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    recording_ref: Mapped[str | None] = mapped_column(String(500))
    csat: Mapped[int | None]


class Message(Base):
    """An email, SMS or chat message belonging to an interaction, either way."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        # Provider ids make ingestion idempotent: the same email/SMS is never stored twice.
        UniqueConstraint("channel", "provider_id", name="uq_messages_channel_provider_id"),
        # The conversation a new message joins: its thread's newest message.
        Index("ix_messages_channel_thread", "channel", "thread_key", "id"),
        # What the delivery loop sends next.
        Index("ix_messages_status_next_attempt", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sender_name: Mapped[str | None] = mapped_column(String(200))
    recipient: Mapped[str | None] = mapped_column(String(320))
    # The conversation: an email thread's first Message-ID, an SMS number, a chat's id.
    thread_key: Mapped[str | None] = mapped_column(String(320))
    # Email: the ids this one answers (In-Reply-To first, then References).
    thread_refs: Mapped[list[str] | None] = mapped_column(JSON)
    # Kept by reference: [{filename, content_type, size, ref, dropped}].
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="received")
    # The agent who wrote it (outbound); None for the customer's and the daemon's own.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    status_at: Mapped[datetime | None]


class ServiceRequest(Base):
    """A customer's request, worked through new -> assigned -> in_progress -> feedback."""

    __tablename__ = "service_requests"
    __table_args__ = (
        CheckConstraint(_in("status", SR_STATUSES), name="status"),
        CheckConstraint("csat IS NULL OR (csat >= 1 AND csat <= 5)", name="csat"),
        Index("ix_service_requests_customer_status", "customer_id", "status"),
        Index("ix_service_requests_assignee_status", "assigned_to_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    csat: Mapped[int | None]
    feedback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    transitions: Mapped[list[ServiceRequestTransition]] = relationship(
        cascade="all, delete-orphan", order_by="ServiceRequestTransition.id"
    )


class ServiceRequestTransition(Base):
    """Who moved a service request from one status to another, and when."""

    __tablename__ = "service_request_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who changed what; written in the same transaction as the change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Kept as text too, so the log still reads after a user is deleted.
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AgentState(Base):
    """The status an agent (or a supervisor for them) last chose: restored at start-up."""

    __tablename__ = "agent_states"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(default=utcnow)


class ContactEvent(Base):
    """One step of a contact's life cycle (or an agent's status change): appended, never
    changed. Ids rather than foreign keys: the log is history, and says the same after a
    user or an interaction is deleted."""

    __tablename__ = "contact_events"
    __table_args__ = (
        # A contact's whole history, in the order it was written.
        Index("ix_contact_events_interaction_id", "interaction_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    interaction_id: Mapped[int | None] = mapped_column(Integer)  # None: an agent's status
    channel: Mapped[str | None] = mapped_column(String(8))
    queue: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(index=True)
    # Why: an end cause, a transfer target, an overflow target, a status and its reason.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LoginSession(Base):
    """A logged-in browser, shared by every daemon on the database (`web.sessions: store`).

    Only a SHA-256 digest of the cookie's token is kept: the token is 256 random bits, so
    the digest cannot be turned back into a cookie and reading this table logs nobody in.
    """

    __tablename__ = "login_sessions"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Useless without the cookie; kept so a reloaded page can be told it again (`auth/me`).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    # Moved forward at most once a minute (in the background), for the idle expiry.
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # The user's `sessions_valid_after` at login: an older one than the user's now is void.
    valid_after: Mapped[datetime | None]


class OptOut(Base):
    """A customer address that asked not to be contacted on a channel (an SMS STOP, the
    do-not-call list): honoured by every sender and dialer."""

    __tablename__ = "opt_outs"

    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What did it: the keyword the customer sent ("STOP"), or the user who added it.
    source: Mapped[str | None] = mapped_column(String(64))


class ChannelCursor(Base):
    """Where a channel adapter is in its provider's stream (an IMAP mailbox's UIDVALIDITY
    and last handled UID), so a restart neither re-reads nor skips anything."""

    __tablename__ = "channel_cursors"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
