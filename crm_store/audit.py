"""The audit log: who changed what, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store.actors import Actor
from crm_store.models import AuditEntry


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: int | str | None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction."""
    entry = AuditEntry(
        actor_id=actor.user_id,
        actor=actor.username,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        details=details,
    )
    session.add(entry)
    return entry


async def list_entries(
    session: AsyncSession,
    *,
    limit: int = 100,
    entity: str | None = None,
    entity_id: int | str | None = None,
) -> list[AuditEntry]:
    """Newest audit entries first, optionally for one entity (type, and id)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == str(entity_id))
    return list((await session.scalars(query)).all())
