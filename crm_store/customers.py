"""Customers and their contact points: creation, updates, look-ups, search, timeline."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import phonenumbers
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, selectinload

from crm_store import audit
from crm_store._common import check_int_range, clean_text, flush_or_conflict
from crm_store.actors import SYSTEM, Actor
from crm_store.errors import Conflict, InvalidData, NotFound
from crm_store.models import CONTACT_KINDS, TIERS, ContactPoint, Customer, Interaction
from crm_store.phones import (
    normalize_chat_handle,
    normalize_email,
    normalize_phone,
    try_normalize_phone,
)

# Field -> maximum length; the fields `update_customer` accepts.
CUSTOMER_FIELDS: Final[Mapping[str, int]] = {
    "name": 200,
    "company": 200,
    "tier": 16,
    "language": 16,
    "segment": 64,
    "notes": 20_000,
}
MAX_RAW_CONTACT: Final = 320
MAX_LABEL: Final = 64
# The most customers or interactions one search or timeline page returns; a negative
# LIMIT would mean "all" to SQLite and an error to PostgreSQL.
MAX_LIMIT: Final = 10_000
_PHONE_FRAGMENT: Final = re.compile(r"^[+\d\s().-]+$")


def _clean_field(field: str, value: Any) -> Any:
    if field not in CUSTOMER_FIELDS:
        raise InvalidData(f"unknown customer field {field!r} (known: {', '.join(CUSTOMER_FIELDS)})")
    if field == "tier":
        if value not in TIERS:
            raise InvalidData(f"tier {value!r} is not one of {', '.join(TIERS)}")
        return value
    return clean_text(value, field, CUSTOMER_FIELDS[field], required=field == "name")


def normalize_contact(kind: str, raw: str, region: str) -> str:
    """The normalised value of a contact point (E.164, lower-case email, trimmed handle)."""
    if not isinstance(raw, str):
        raise InvalidData(f"{kind} must be text")
    if len(raw.strip()) > MAX_RAW_CONTACT:
        raise InvalidData(f"{kind} is longer than {MAX_RAW_CONTACT} characters")
    if "\x00" in raw:
        raise InvalidData(f"{kind} must not contain NUL characters")
    if kind == "phone":
        return normalize_phone(raw, region)
    if kind == "email":
        return normalize_email(raw)
    if kind == "chat":
        return normalize_chat_handle(raw)
    raise InvalidData(f"contact kind {kind!r} is not one of {', '.join(CONTACT_KINDS)}")


def normalize_contacts(
    region: str,
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    chat_handles: Iterable[str] = (),
) -> list[tuple[str, str, str]]:
    """(kind, value, raw) for each contact, normalised, duplicates dropped (first raw kept)."""
    seen: set[tuple[str, str]] = set()
    result: list[tuple[str, str, str]] = []
    for kind, raws in (("phone", phones), ("email", emails), ("chat", chat_handles)):
        if isinstance(raws, str):
            raise InvalidData(f"{kind}s must be a list of values, not a single string")
        for raw in raws:
            value = normalize_contact(kind, raw, region)
            if (kind, value) not in seen:
                seen.add((kind, value))
                result.append((kind, value, raw.strip()))
    return result


async def find_contact_owners(
    session: AsyncSession, contacts: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """For normalised (kind, value) pairs, the id of the customer owning each one stored."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in contacts:
        by_kind.setdefault(kind, set()).add(value)
    if not by_kind:
        return {}
    query = select(ContactPoint.kind, ContactPoint.value, ContactPoint.customer_id).where(
        or_(
            *(
                and_(ContactPoint.kind == kind, ContactPoint.value.in_(sorted(values)))
                for kind, values in by_kind.items()
            )
        )
    )
    return {(kind, value): owner for kind, value, owner in (await session.execute(query)).all()}


def _describe_taken(taken: Mapping[tuple[str, str], int]) -> str:
    return "; ".join(
        f"{kind} {value} already belongs to customer {owner}"
        for (kind, value), owner in sorted(taken.items())
    )


async def create_customer(
    session: AsyncSession,
    *,
    name: str,
    company: str | None = None,
    tier: str = "bronze",
    language: str | None = None,
    segment: str | None = None,
    notes: str | None = None,
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    chat_handles: Iterable[str] = (),
    region: str,
    actor: Actor = SYSTEM,
) -> Customer:
    """Create a customer with contact points; Conflict if one already belongs to another."""
    given = {
        "name": name,
        "company": company,
        "tier": tier,
        "language": language,
        "segment": segment,
        "notes": notes,
    }
    fields = {field: _clean_field(field, value) for field, value in given.items()}
    contacts = normalize_contacts(region, phones, emails, chat_handles)
    taken = await find_contact_owners(session, [(kind, value) for kind, value, _ in contacts])
    if taken:
        raise Conflict(_describe_taken(taken))
    customer = Customer(
        **fields,
        contact_points=[ContactPoint(kind=k, value=v, raw=raw) for k, v, raw in contacts],
    )
    session.add(customer)
    await flush_or_conflict(session, "a contact point already belongs to another customer")
    await audit.record(
        session,
        actor,
        "customer.created",
        "customer",
        customer.id,
        {"name": customer.name, "contacts": [f"{k}:{v}" for k, v, _ in contacts]},
    )
    return customer


async def get_customer(session: AsyncSession, customer_id: int) -> Customer:
    """The customer with its contact points; NotFound otherwise."""
    customer = await session.scalar(
        select(Customer)
        .where(Customer.id == customer_id)
        .options(selectinload(Customer.contact_points))
    )
    if customer is None:
        raise NotFound(f"no customer with id {customer_id}")
    return customer


async def _require_customer_id(session: AsyncSession, customer_id: int) -> None:
    found = await session.scalar(select(Customer.id).where(Customer.id == customer_id))
    if found is None:
        raise NotFound(f"no customer with id {customer_id}")


async def update_customer(
    session: AsyncSession, customer_id: int, *, actor: Actor, **fields: Any
) -> Customer:
    """Change the given fields (name, company, tier, language, segment, notes)."""
    cleaned = {field: _clean_field(field, value) for field, value in fields.items()}
    customer = await get_customer(session, customer_id)
    changes = {
        field: {"from": getattr(customer, field), "to": value}
        for field, value in cleaned.items()
        if getattr(customer, field) != value
    }
    if changes:
        for field, change in changes.items():
            setattr(customer, field, change["to"])
        await flush_or_conflict(session, f"cannot update customer {customer_id}")
        await audit.record(session, actor, "customer.updated", "customer", customer.id, changes)
    return customer


async def add_contact_point(
    session: AsyncSession,
    customer_id: int,
    kind: str,
    raw: str,
    *,
    region: str,
    label: str | None = None,
    actor: Actor,
) -> ContactPoint:
    """Add a contact point; the existing one if the customer has it, Conflict if another does."""
    value = normalize_contact(kind, raw, region)
    label = clean_text(label, "label", MAX_LABEL)
    customer = await get_customer(session, customer_id)
    for point in customer.contact_points:
        if point.kind == kind and point.value == value:
            return point
    taken = await find_contact_owners(session, [(kind, value)])
    if taken:
        raise Conflict(_describe_taken(taken))
    point = ContactPoint(kind=kind, value=value, raw=raw.strip(), label=label)
    customer.contact_points.append(point)
    await flush_or_conflict(session, f"{kind} {value} already belongs to another customer")
    await audit.record(
        session, actor, "customer.contact_added", "customer", customer.id, {kind: value}
    )
    return point


async def remove_contact_point(
    session: AsyncSession, customer_id: int, contact_point_id: int, *, actor: Actor
) -> None:
    """Delete one of the customer's contact points; NotFound if it is not theirs."""
    customer = await get_customer(session, customer_id)
    point = next((p for p in customer.contact_points if p.id == contact_point_id), None)
    if point is None:
        raise NotFound(f"customer {customer_id} has no contact point {contact_point_id}")
    customer.contact_points.remove(point)
    await flush_or_conflict(session, f"cannot remove contact point {contact_point_id}")
    await audit.record(
        session,
        actor,
        "customer.contact_removed",
        "customer",
        customer.id,
        {point.kind: point.value},
    )


async def _customer_by_contact(session: AsyncSession, kind: str, value: str) -> Customer | None:
    return await session.scalar(
        select(Customer)
        .join(ContactPoint, ContactPoint.customer_id == Customer.id)
        .where(ContactPoint.kind == kind, ContactPoint.value == value)
        .options(selectinload(Customer.contact_points))
    )


async def find_customer_by_phone(session: AsyncSession, raw: str, region: str) -> Customer | None:
    """The customer owning this phone number written in any format; None if none or unreadable."""
    value = try_normalize_phone(raw, region) if isinstance(raw, str) else None
    if value is None:
        return None
    return await _customer_by_contact(session, "phone", value)


async def find_customer_by_email(session: AsyncSession, raw: str) -> Customer | None:
    """The customer owning this email address (case-insensitive); None if none or malformed."""
    try:
        value = normalize_contact("email", raw, "ZZ")
    except InvalidData:
        return None
    return await _customer_by_contact(session, "email", value)


async def find_customer_by_contact(
    session: AsyncSession, kind: str, raw: str, region: str
) -> Customer | None:
    """The customer owning a phone, email or chat handle; None if none or malformed."""
    if kind not in CONTACT_KINDS:
        raise InvalidData(f"contact kind {kind!r} is not one of {', '.join(CONTACT_KINDS)}")
    try:
        value = normalize_contact(kind, raw, region)
    except InvalidData:
        return None
    return await _customer_by_contact(session, kind, value)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _glob_char(char: str) -> str:
    """`char` in any case as a GLOB character class; GLOB's own specials made literal."""
    variants = sorted({v for v in (char, char.lower(), char.upper()) if len(v) == 1})
    if len(variants) == 1 and char not in "*?[]":
        return char
    # Inside brackets "]" must come first to be literal; "*", "?" and "[" are literal.
    return "[" + "".join(sorted(variants, key=lambda v: v != "]")) + "]"


def _contains_ci(column: QueryableAttribute[Any], text: str, dialect: str) -> ColumnElement[bool]:
    """`column` contains `text`, ignoring case the same way on both backends.

    SQLite's LIKE and lower() fold ASCII letters only, so "ZOË" would miss "Zoë" there;
    for non-ASCII text on SQLite, GLOB with per-letter classes folds every letter.
    """
    if dialect == "sqlite" and not text.isascii():
        glob = f"*{''.join(map(_glob_char, text))}*"
        return column.op("GLOB", is_comparison=True)(glob)
    return column.ilike(_like_pattern(text), escape="\\")


def _phone_prefix_patterns(text: str, digits: str, region: str | None) -> list[str]:
    """LIKE patterns for the start of a number typed in part: "020 7946", "0044 20 79"."""
    if "+" in text:
        return []
    if digits.startswith("00"):
        return [f"+{digits[2:]}%"]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region or "ZZ")
    national_prefix = metadata.national_prefix if metadata is not None else None
    if national_prefix and digits.startswith(national_prefix):
        country_code = phonenumbers.country_code_for_region(region or "ZZ")
        return [f"+{country_code}{digits[len(national_prefix) :]}%"]
    return []


async def search_customers(
    session: AsyncSession, query: str, *, limit: int = 20, region: str | None = None
) -> list[Customer]:
    """Customers whose name, company or a contact point contains `query` (case-insensitive).

    A query that reads as a phone number (in `region`, or international) also matches
    that number however it was stored. An empty query lists customers by name.
    """
    check_int_range(limit, "limit", 1, MAX_LIMIT)
    # NUL cannot be in any stored text, and PostgreSQL refuses it even as a parameter.
    text = (query or "").replace("\x00", "").strip()[:MAX_RAW_CONTACT]
    statement = (
        select(Customer)
        .options(selectinload(Customer.contact_points))
        .order_by(Customer.name, Customer.id)
        .limit(limit)
    )
    if text:
        dialect = session.get_bind().dialect.name
        contact_match = _contains_ci(ContactPoint.value, text, dialect)
        phone = try_normalize_phone(text, region or "ZZ")
        if phone is not None:
            contact_match = or_(
                contact_match, and_(ContactPoint.kind == "phone", ContactPoint.value == phone)
            )
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= 4 and _PHONE_FRAGMENT.match(text):
            # "7946 0018" is part of "+442079460018" once the spaces are gone, and
            # "020 7946" is its start once the national prefix is swapped for +44.
            patterns = [f"%{digits}%", *_phone_prefix_patterns(text, digits, region)]
            contact_match = or_(
                contact_match,
                and_(
                    ContactPoint.kind == "phone",
                    or_(*(ContactPoint.value.like(p) for p in patterns)),
                ),
            )
        statement = statement.where(
            or_(
                _contains_ci(Customer.name, text, dialect),
                _contains_ci(Customer.company, text, dialect),
                Customer.id.in_(select(ContactPoint.customer_id).where(contact_match)),
            )
        )
    return list((await session.scalars(statement)).all())


async def customer_timeline(
    session: AsyncSession,
    customer_id: int,
    *,
    limit: int = 20,
    before_id: int | None = None,
    agent_id: int | None = None,
) -> list[Interaction]:
    """The customer's interactions on all channels, newest first (started_at, then id).

    Paging is by key, not offset: pass the id of the last interaction of a page as
    `before_id` to get the next, older page; rows added meanwhile do not shift pages.
    `agent_id`: only the interactions that agent handled.
    """
    check_int_range(limit, "limit", 1, MAX_LIMIT)
    await _require_customer_id(session, customer_id)
    statement = (
        select(Interaction)
        .where(Interaction.customer_id == customer_id)
        .order_by(Interaction.started_at.desc(), Interaction.id.desc())
        .limit(limit)
    )
    if agent_id is not None:
        statement = statement.where(Interaction.agent_id == agent_id)
    if before_id is not None:
        anchor = await session.get(Interaction, before_id)
        if anchor is None or anchor.customer_id != customer_id:
            raise NotFound(f"customer {customer_id} has no interaction {before_id}")
        statement = statement.where(
            or_(
                Interaction.started_at < anchor.started_at,
                and_(Interaction.started_at == anchor.started_at, Interaction.id < anchor.id),
            )
        )
    return list((await session.scalars(statement)).all())


async def count_customers(session: AsyncSession) -> int:
    """How many customers are stored."""
    return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)
