"""Where each channel adapter is in its provider's stream (e.g. an IMAP mailbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_store._common import clean_text
from crm_store.models import ChannelCursor, utcnow


async def load_cursor(session: AsyncSession, name: str) -> dict[str, Any] | None:
    """The cursor saved under `name`, or None when the adapter starts afresh."""
    row = await session.get(ChannelCursor, name)
    return None if row is None else dict(row.value)


async def save_cursor(session: AsyncSession, name: str, value: dict[str, Any]) -> None:
    """Save (replace) the cursor `name`."""
    key = clean_text(name, "cursor name", 200, required=True) or ""
    row = await session.get(ChannelCursor, key)
    if row is None:
        session.add(ChannelCursor(name=key, value=dict(value), updated_at=utcnow()))
    else:
        row.value, row.updated_at = dict(value), utcnow()
    await session.flush()
