"""The contact-event log: append in batches, read back in the order written.

What the events mean (and which figures they make) is routing's business
(`routing.stats`); the store only keeps them and finds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store._common import check_aware
from crm_store.errors import InvalidData
from crm_store.models import ContactEvent

COLUMNS: Final = frozenset(
    {"interaction_id", "channel", "queue", "agent_id", "kind", "at", "details"}
)


async def append_events(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append events (column -> value, `at` timezone-aware) in one statement."""
    if not rows:
        return
    for row in rows:
        unknown = set(row) - COLUMNS
        if unknown:
            raise InvalidData(f"contact events have no {', '.join(sorted(unknown))}")
        if not row.get("kind"):
            raise InvalidData("a contact event needs a kind")
        if check_aware(row.get("at"), "at") is None:
            raise InvalidData("a contact event needs its time (at)")
    await session.execute(insert(ContactEvent), [dict(row) for row in rows])


async def events_between(
    session: AsyncSession, start: datetime, end: datetime | None = None
) -> list[ContactEvent]:
    """Events with start <= at <= end (no end: up to now), with every earlier event of the
    contacts they belong to (a call answered before `start` and ended after it is read
    whole), in the order they were written."""
    check_aware(start, "start")
    in_range = ContactEvent.at >= start
    if end is not None:
        check_aware(end, "end")
        in_range = in_range & (ContactEvent.at <= end)
    touched = (
        select(ContactEvent.interaction_id)
        .where(in_range, ContactEvent.interaction_id.is_not(None))
        .distinct()
    )
    query = select(ContactEvent).where(
        or_(in_range, ContactEvent.interaction_id.in_(touched.scalar_subquery()))
    )
    if end is not None:
        # Earlier events of the touched contacts, not their later ones.
        query = query.where(ContactEvent.at <= end)
    return list((await session.scalars(query.order_by(ContactEvent.id))).all())


async def latest_per_agent(
    session: AsyncSession, kinds: Iterable[str], before: datetime
) -> list[ContactEvent]:
    """Each agent's last event of one of `kinds` before `before` (what state they were in
    when an interval starts), in the order they were written."""
    check_aware(before, "before")
    last = (
        select(func.max(ContactEvent.id))
        .where(
            ContactEvent.kind.in_(list(kinds)),
            ContactEvent.agent_id.is_not(None),
            ContactEvent.at < before,
        )
        .group_by(ContactEvent.agent_id)
    )
    query = select(ContactEvent).where(ContactEvent.id.in_(last.scalar_subquery()))
    return list((await session.scalars(query.order_by(ContactEvent.id))).all())
