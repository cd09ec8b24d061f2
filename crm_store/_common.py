"""Small helpers shared by the repository modules (not part of the public API)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store.errors import Conflict, InvalidData


async def flush_or_conflict(session: AsyncSession, what: str) -> None:
    """Flush, turning a uniqueness race lost at the database into `Conflict`.

    The SELECT pre-checks catch the ordinary cases with a readable message; this is
    for two writers racing between our check and our insert.
    """
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what}: {exc.orig}") from None


def clean_text(value: object, field: str, max_len: int, *, required: bool = False) -> str | None:
    """Trim a free-text field; empty becomes None (or InvalidData when `required`); no NUL."""
    if value is None:
        if required:
            raise InvalidData(f"{field} is required")
        return None
    if not isinstance(value, str):
        raise InvalidData(f"{field} must be text, not {type(value).__name__}")
    text = value.strip()
    if not text:
        if required:
            raise InvalidData(f"{field} must not be empty")
        return None
    if len(text) > max_len:
        raise InvalidData(f"{field} is longer than {max_len} characters")
    if "\x00" in text:
        # PostgreSQL cannot store NUL in text (SQLite can): refused on both, alike.
        raise InvalidData(f"{field} must not contain NUL characters")
    return text


def check_aware(value: object, field: str) -> datetime | None:
    """Accept None or a timezone-aware datetime; the store refuses naive times."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidData(f"{field} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidData(f"{field} must be timezone-aware (UTC)")
    return value


def check_int_range(value: object, field: str, low: int, high: int) -> int:
    """Accept an int (not a bool) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidData(f"{field} must be an integer {low}..{high}, not {value!r}")
    if not low <= value <= high:
        raise InvalidData(f"{field} must be {low}..{high}, not {value}")
    return value
