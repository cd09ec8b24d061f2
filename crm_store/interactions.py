"""Interactions (one per contact, any channel) and the messages exchanged in them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store._common import check_aware, check_int_range, clean_text, flush_or_conflict
from crm_store.errors import Conflict, InvalidData, NotFound
from crm_store.models import CHANNELS, DIRECTIONS, Customer, Interaction, Message, User, utcnow

TIME_FIELDS: Final = ("offered_at", "answered_at", "ended_at")
# Text field -> maximum length.
TEXT_FIELDS: Final[Mapping[str, int]] = {
    "queue": 64,
    "end_cause": 64,
    "disposition": 64,
    "notes": 20_000,
    "recording_ref": 500,
}
# Everything `update_interaction` accepts.
UPDATABLE_FIELDS: Final = frozenset(
    {
        *TIME_FIELDS,
        *TEXT_FIELDS,
        "agent_id",
        "routing",
        "csat",
        "customer_id",
        "ivr_path",
        "ivr_inputs",
    }
)
MAX_BODY: Final = 1_000_000
# How long after a contact ends its agent still reads the customer's history (follow-up
# work, a service request opened after the call); see `agent_serves_customer`.
SERVING_WINDOW: Final = timedelta(hours=12)


def _check_choice(value: str, field: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InvalidData(f"{field} {value!r} is not one of {', '.join(choices)}")
    return value


def _check_ivr_path(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidData("ivr_path must be a list of step names")
    return list(value)


def _check_mapping(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidData(f"{field} must be a mapping")
    return dict(value)


async def _check_exists(session: AsyncSession, model: type[Customer | User], ident: Any) -> int:
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise InvalidData(f"{model.__tablename__} id must be an integer, not {ident!r}")
    if await session.scalar(select(model.id).where(model.id == ident)) is None:
        raise NotFound(f"no {model.__name__.lower()} with id {ident}")
    return ident


def validated_new_row(
    *,
    channel: str,
    direction: str = "inbound",
    external_id: str | None = None,
    address: str | None = None,
    started_at: datetime | None = None,
    queue: str | None = None,
    ivr_path: Sequence[Any] | None = None,
    ivr_inputs: Mapping[str, Any] | None = None,
    address_name: str | None = None,
) -> dict[str, Any]:
    """The checked column values of a new interaction (shared by every way of storing one)."""
    return {
        "address_name": clean_text(address_name, "address_name", 200),
        "channel": _check_choice(channel, "channel", CHANNELS),
        "direction": _check_choice(direction, "direction", DIRECTIONS),
        "external_id": clean_text(external_id, "external_id", 255),
        "address": clean_text(address, "address", 320),
        "started_at": check_aware(started_at, "started_at") or utcnow(),
        "queue": clean_text(queue, "queue", TEXT_FIELDS["queue"]),
        "ivr_path": _check_ivr_path(ivr_path),
        "ivr_inputs": _check_mapping(ivr_inputs, "ivr_inputs"),
    }


async def record_interaction(
    session: AsyncSession,
    *,
    channel: str,
    direction: str = "inbound",
    customer_id: int | None = None,
    external_id: str | None = None,
    address: str | None = None,
    started_at: datetime | None = None,
    queue: str | None = None,
    ivr_path: Sequence[Any] | None = None,
    ivr_inputs: Mapping[str, Any] | None = None,
    address_name: str | None = None,
) -> Interaction:
    """Store a new interaction (a call, email, SMS or chat) as it starts."""
    interaction = Interaction(
        **validated_new_row(
            address_name=address_name,
            channel=channel,
            direction=direction,
            external_id=external_id,
            address=address,
            started_at=started_at,
            queue=queue,
            ivr_path=ivr_path,
            ivr_inputs=ivr_inputs,
        )
    )
    if customer_id is not None:
        interaction.customer_id = await _check_exists(session, Customer, customer_id)
    session.add(interaction)
    await flush_or_conflict(session, "cannot record the interaction")
    return interaction


async def get_interaction(session: AsyncSession, interaction_id: int) -> Interaction:
    """The interaction with this id; NotFound otherwise."""
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound(f"no interaction with id {interaction_id}")
    return interaction


async def agent_serves_customer(
    session: AsyncSession,
    agent_id: int,
    customer_id: int,
    *,
    now: datetime | None = None,
    window: timedelta = SERVING_WINDOW,
) -> bool:
    """True when the agent handles, or handled within `window`, a contact of this customer.

    What the read rules of issue 13 call "serving": an agent reads the history of the
    customers they are serving, not of everyone. Offers not answered yet are live only
    (routing's memory), so the web layer adds those.
    """
    since = (now or utcnow()) - window
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Interaction.customer_id == customer_id,
                    Interaction.agent_id == agent_id,
                    or_(Interaction.ended_at.is_(None), Interaction.ended_at >= since),
                )
            )
        )
    )


def checked_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The checked values of an update (times, texts, csat, IVR, routing); the ids
    (`customer_id`, `agent_id`) are left to the caller, who checks they exist. Shared by
    `update_interaction` and the store writer's batches, so both refuse the same."""
    unknown = set(fields) - UPDATABLE_FIELDS
    if unknown:
        raise InvalidData(
            f"unknown interaction field(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(UPDATABLE_FIELDS))})"
        )
    cleaned: dict[str, Any] = {}
    for field, value in fields.items():
        if field in TIME_FIELDS:
            cleaned[field] = check_aware(value, field)
        elif field in TEXT_FIELDS:
            cleaned[field] = clean_text(value, field, TEXT_FIELDS[field])
        elif field == "csat":
            cleaned[field] = None if value is None else check_int_range(value, "csat", 1, 5)
        elif field == "ivr_path":
            cleaned[field] = _check_ivr_path(value)
        elif field in ("ivr_inputs", "routing"):
            cleaned[field] = _check_mapping(value, field)
    return cleaned


async def update_interaction(
    session: AsyncSession, interaction_id: int, **fields: Any
) -> Interaction:
    """Set the given fields (times, queue, agent, routing, wrap-up, csat 1..5, IVR, customer)."""
    cleaned = checked_values(fields)
    interaction = await get_interaction(session, interaction_id)
    if fields.get("customer_id") is not None:
        cleaned["customer_id"] = await _check_exists(session, Customer, fields["customer_id"])
    elif "customer_id" in fields:
        cleaned["customer_id"] = None
    if fields.get("agent_id") is not None:
        cleaned["agent_id"] = await _check_exists(session, User, fields["agent_id"])
    elif "agent_id" in fields:
        cleaned["agent_id"] = None
    for field, value in cleaned.items():
        setattr(interaction, field, value)
    await flush_or_conflict(session, f"cannot update interaction {interaction_id}")
    return interaction


async def find_interaction_by_external_id(
    session: AsyncSession, channel: str, external_id: str
) -> Interaction | None:
    """The newest interaction of `channel` with this channel-side id, or None."""
    if "\x00" in external_id:
        return None  # never stored, and PostgreSQL refuses it even as a parameter
    return await session.scalar(
        select(Interaction)
        .where(Interaction.channel == channel, Interaction.external_id == external_id)
        .order_by(Interaction.id.desc())
        .limit(1)
    )


async def list_open_interactions(
    session: AsyncSession, channel: str | None = None
) -> list[Interaction]:
    """Interactions not yet ended (oldest first), of one channel when given."""
    statement = (
        select(Interaction)
        .where(Interaction.ended_at.is_(None))
        .order_by(Interaction.started_at, Interaction.id)
    )
    if channel is not None:
        statement = statement.where(
            Interaction.channel == _check_choice(channel, "channel", CHANNELS)
        )
    return list((await session.scalars(statement)).all())


async def add_message(
    session: AsyncSession,
    interaction_id: int,
    *,
    channel: str,
    direction: str,
    body: str,
    sender: str | None = None,
    subject: str | None = None,
    provider_id: str | None = None,
) -> Message:
    """Store a message; if (channel, provider_id) is already stored, return that one instead.

    The same provider id already stored on another interaction is refused (Conflict):
    handing back a message of someone else's conversation would hide an ingestion bug.
    Two writers racing on the same provider id: the loser gets Conflict, and its retry
    finds the stored message.
    """
    _check_choice(channel, "channel", CHANNELS)
    _check_choice(direction, "direction", DIRECTIONS)
    if not isinstance(body, str):
        raise InvalidData("message body must be text")
    if len(body) > MAX_BODY:
        raise InvalidData(f"message body is longer than {MAX_BODY} characters")
    if "\x00" in body:
        raise InvalidData("message body must not contain NUL characters")
    provider = clean_text(provider_id, "provider_id", 255)
    clean_sender = clean_text(sender, "sender", 320)
    clean_subject = clean_text(subject, "subject", 998)
    await get_interaction(session, interaction_id)
    if provider is not None:
        existing = await session.scalar(
            select(Message).where(Message.channel == channel, Message.provider_id == provider)
        )
        if existing is not None:
            if existing.interaction_id != interaction_id:
                raise Conflict(
                    f"{channel} message {provider} is already stored on interaction "
                    f"{existing.interaction_id}, not {interaction_id}"
                )
            return existing
    message = Message(
        interaction_id=interaction_id,
        channel=channel,
        direction=direction,
        body=body,
        sender=clean_sender,
        subject=clean_subject,
        provider_id=provider,
    )
    session.add(message)
    await flush_or_conflict(session, f"{channel} message {provider} is already stored")
    return message


async def list_messages(session: AsyncSession, interaction_id: int) -> list[Message]:
    """The interaction's messages in the order they were stored."""
    return list(
        (
            await session.scalars(
                select(Message)
                .where(Message.interaction_id == interaction_id)
                .order_by(Message.created_at, Message.id)
            )
        ).all()
    )
