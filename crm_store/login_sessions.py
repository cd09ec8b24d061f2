"""Login sessions kept in the store, so every daemon on the database knows the same ones.

Every function takes the cookie's token and keeps, compares and deletes only its SHA-256
digest: the token never reaches the database. A plain hash is enough (no salt, no slow
hash): the token is 256 random bits, there is nothing to guess.

A session is void when its user is disabled or its `valid_after` is older than the user's
`sessions_valid_after` (disabled, new password, new role: see `users._void_sessions`);
`find_session` reports that, `prune_sessions` deletes such rows with the expired ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from crm_store.models import LoginSession, User


def token_digest(token: str) -> str:
    """What the store keeps of a session token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session row with what its user is now."""

    user_id: int
    username: str
    display_name: str
    role: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    valid_after: datetime | None
    user_active: bool
    user_valid_after: datetime | None

    @property
    def voided(self) -> bool:
        """True when the user was disabled or changed after this session was made."""
        if not self.user_active:
            return True
        if self.user_valid_after is None:
            return False
        # "Older", not "other", as in the daemon's poll: a login that read the newest
        # value keeps its session.
        return self.valid_after is None or self.valid_after < self.user_valid_after


async def add_session(
    db: AsyncSession,
    *,
    token: str,
    user_id: int,
    csrf_token: str,
    created_at: datetime,
    expires_at: datetime,
    valid_after: datetime | None,
) -> None:
    """Store a new session (only the digest of `token`)."""
    db.add(
        LoginSession(
            token_digest=token_digest(token),
            user_id=user_id,
            csrf_token=csrf_token,
            created_at=created_at,
            last_seen_at=created_at,
            expires_at=expires_at,
            valid_after=valid_after,
        )
    )
    await db.flush()


async def find_session(db: AsyncSession, token: str) -> StoredSession | None:
    """The session of `token` with its user as they are now, or None; expired and void
    rows are returned too (the caller decides, and writes nothing on a read)."""
    row = (
        await db.execute(
            select(
                LoginSession,
                User.username,
                User.display_name,
                User.role,
                User.is_active,
                User.sessions_valid_after,
            )
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_digest == token_digest(token))
        )
    ).one_or_none()
    if row is None:
        return None
    stored, username, display_name, role, active, user_valid_after = row
    return StoredSession(
        user_id=stored.user_id,
        username=username,
        display_name=display_name,
        role=role,
        csrf_token=stored.csrf_token,
        created_at=stored.created_at,
        last_seen_at=stored.last_seen_at,
        expires_at=stored.expires_at,
        valid_after=stored.valid_after,
        user_active=bool(active),
        user_valid_after=user_valid_after,
    )


async def touch_sessions(db: AsyncSession, seen: dict[str, datetime]) -> int:
    """Move `last_seen_at` forward (never back) for each token; how many rows moved."""
    moved = 0
    for token, at in seen.items():
        result = await db.execute(
            update(LoginSession)
            .where(LoginSession.token_digest == token_digest(token), LoginSession.last_seen_at < at)
            .values(last_seen_at=at)
            .execution_options(synchronize_session=False)
        )
        moved += _rowcount(result)
    return moved


async def delete_session(db: AsyncSession, token: str) -> bool:
    """End one session (logout); False when there was none."""
    result = await db.execute(
        delete(LoginSession)
        .where(LoginSession.token_digest == token_digest(token))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) > 0


async def delete_user_sessions(db: AsyncSession, user_id: int) -> int:
    """End every session of a user; how many there were."""
    result = await db.execute(
        delete(LoginSession)
        .where(LoginSession.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


def _alive(now: datetime, idle_since: datetime | None) -> ColumnElement[bool]:
    """Rows neither past their expiry nor idle since before `idle_since`."""
    live = LoginSession.expires_at > now
    if idle_since is not None:
        live = and_(live, LoginSession.last_seen_at > idle_since)
    return live


def _void() -> ColumnElement[bool]:
    """Rows of a disabled user, or made under an older `sessions_valid_after`."""
    return exists(
        select(User.id).where(
            User.id == LoginSession.user_id,
            or_(
                User.is_active.is_(False),
                and_(
                    User.sessions_valid_after.is_not(None),
                    or_(
                        LoginSession.valid_after.is_(None),
                        LoginSession.valid_after < User.sessions_valid_after,
                    ),
                ),
            ),
        )
    )


async def prune_sessions(db: AsyncSession, now: datetime, idle_since: datetime | None) -> int:
    """Delete the expired, idle and void sessions; how many."""
    result = await db.execute(
        delete(LoginSession)
        .where(or_(~_alive(now, idle_since), _void()))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def user_has_sessions(
    db: AsyncSession, user_id: int, now: datetime, idle_since: datetime | None
) -> bool:
    """True when the user has a live session (on any daemon)."""
    found = await db.scalar(
        select(LoginSession.token_digest)
        .where(LoginSession.user_id == user_id, _alive(now, idle_since), ~_void())
        .limit(1)
    )
    return found is not None


async def count_sessions(db: AsyncSession) -> int:
    """How many session rows there are, live or not."""
    return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


def _rowcount(result: object) -> int:
    # DML results carry a rowcount; the generic Result type does not declare it.
    count = getattr(result, "rowcount", 0)
    return int(count) if isinstance(count, int) and count > 0 else 0
