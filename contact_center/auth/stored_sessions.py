"""Sessions in the CRM store (`web.sessions: store`): one table that every daemon on the
database reads, so a cookie from one daemon works on the others and survives a restart.

Each look-up reads the session's row with its user as they are now, so a logout, a
disabled user or a new password (`users.sessions_valid_after`) is refused at once, by
every daemon, without waiting for the revocation poll. The poll is still what closes
this daemon's sockets of such a user; for that the store remembers which sessions this
daemon has made or served (`_known`).

No request waits on a write but login and logout: "last seen" is kept in memory and
written by `maintain` (once a second, at most once a minute per session), which also
deletes the expired, idle and void rows, once a minute. So a write-locked SQLite file or
a slow disk does not slow down reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contact_center.auth.sessions import WebSession, is_voided, new_tokens
from crm_store import login_sessions

# "Last seen" moves at most this often per session: the idle expiry is this precise.
TOUCH_SECONDS = 60.0
# Expired, idle and void rows are deleted this often (by each daemon; deleting twice is
# harmless). Until then a look-up refuses them anyway.
PRUNE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Known:
    user_id: int
    valid_after: datetime | None
    expires_at: float


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class StoreSessionStore:
    """Sessions as rows of `login_sessions` (only a digest of each token is stored)."""

    def __init__(
        self,
        sessionmaker: Callable[[], async_sessionmaker[AsyncSession] | None],
        lifetime_seconds: float,
        idle_seconds: float | None = None,
    ) -> None:
        # A callable: the store is opened after the daemon is built.
        self._sessionmaker = sessionmaker
        self.lifetime_seconds = lifetime_seconds
        self.idle_seconds = idle_seconds
        self._known: dict[str, _Known] = {}
        # Token -> when it was last used, not yet written; "last seen" as last written.
        self._unwritten: dict[str, float] = {}
        self._written: dict[str, float] = {}
        self._next_prune = 0.0

    def __len__(self) -> int:
        return len(self._known)

    def _db(self) -> async_sessionmaker[AsyncSession]:
        maker = self._sessionmaker()
        # The database component opens the store before the server takes any request.
        assert maker is not None, "the CRM store is not open yet"
        return maker

    def _idle_since(self, now: float) -> datetime | None:
        return None if self.idle_seconds is None else _at(now - self.idle_seconds)

    async def create(
        self,
        *,
        user_id: int,
        username: str,
        display_name: str,
        role: str,
        now: float,
        valid_after: datetime | None = None,
    ) -> WebSession:
        """A new session with fresh random tokens, stored before the cookie is sent."""
        token, csrf = new_tokens()
        created, expires = _at(now), _at(now + self.lifetime_seconds)
        async with self._db().begin() as db:
            await login_sessions.add_session(
                db,
                token=token,
                user_id=user_id,
                csrf_token=csrf,
                created_at=created,
                expires_at=expires,
                valid_after=valid_after,
            )
        # The times as every daemon reads them back (to the microsecond).
        created_at, expires_at = created.timestamp(), expires.timestamp()
        self._remember(token, user_id, valid_after, expires_at, created_at)
        return WebSession(
            token=token,
            user_id=user_id,
            username=username,
            display_name=display_name,
            role=role,
            csrf_token=csrf,
            created_at=created_at,
            expires_at=expires_at,
            valid_after=valid_after,
        )

    async def get(self, token: str | None, now: float) -> WebSession | None:
        """The live session for `token`, or None (unknown, expired, idle, void)."""
        if not token:
            return None
        async with self._db()() as db:
            row = await login_sessions.find_session(db, token)
        # A refused session stays known until the poll or its expiry: the poll must still
        # close this daemon's sockets of a voided user after a look-up refused them.
        if row is None or row.voided or row.expires_at <= _at(now):
            self._unwritten.pop(token, None)
            return None
        last_seen = max(row.last_seen_at.timestamp(), self._unwritten.get(token, 0.0))
        if self.idle_seconds is not None and last_seen + self.idle_seconds <= now:
            self._unwritten.pop(token, None)
            return None
        expires_at = row.expires_at.timestamp()
        if token not in self._known:  # made by another daemon, or before a restart
            self._remember(token, row.user_id, row.valid_after, expires_at, last_seen)
        if now - max(last_seen, self._written.get(token, 0.0)) >= TOUCH_SECONDS:
            self._unwritten[token] = now
        return WebSession(
            token=token,
            user_id=row.user_id,
            username=row.username,
            display_name=row.display_name,
            role=row.role,
            csrf_token=row.csrf_token,
            created_at=row.created_at.timestamp(),
            expires_at=expires_at,
            valid_after=row.valid_after,
        )

    async def revoke(self, token: str) -> None:
        """End one session (logout), for every daemon."""
        async with self._db().begin() as db:
            await login_sessions.delete_session(db, token)
        self._forget(token)

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user, for every daemon; how many there were."""
        async with self._db().begin() as db:
            ended = await login_sessions.delete_user_sessions(db, user_id)
        for token in [t for t, k in self._known.items() if k.user_id == user_id]:
            self._forget(token)
        return ended

    async def revoke_stale(self, users: Mapping[int, tuple[bool, datetime]]) -> set[int]:
        """The users who lost a session this daemon knows (see `SessionStore`). Nothing is
        written: look-ups refuse the void rows already, and `maintain` deletes them."""
        if not users:
            return set()
        doomed: dict[str, int] = {}
        for token, known in self._known.items():
            state = users.get(known.user_id)
            if state is not None and is_voided(known.valid_after, *state):
                doomed[token] = known.user_id
        for token in doomed:
            self._forget(token)
        return set(doomed.values())

    async def has_sessions(self, user_id: int, now: float) -> bool:
        """True when the user has a live session on any daemon."""
        async with self._db()() as db:
            return await login_sessions.user_has_sessions(
                db, user_id, _at(now), self._idle_since(now)
            )

    async def maintain(self, now: float) -> None:
        """Write the "last seen" times that wait; once a minute, delete the dead rows."""
        if self._unwritten:
            pending = dict(self._unwritten)
            async with self._db().begin() as db:
                await login_sessions.touch_sessions(db, {t: _at(s) for t, s in pending.items()})
            for token, seen in pending.items():
                if self._unwritten.get(token) == seen:
                    del self._unwritten[token]
                if token in self._known:
                    self._written[token] = seen
        if now >= self._next_prune:
            async with self._db().begin() as db:
                await login_sessions.prune_sessions(db, _at(now), self._idle_since(now))
            self._next_prune = now + PRUNE_SECONDS
            for token in [t for t, k in self._known.items() if k.expires_at <= now]:
                self._forget(token)

    def _remember(
        self,
        token: str,
        user_id: int,
        valid_after: datetime | None,
        expires_at: float,
        last_seen: float,
    ) -> None:
        self._known[token] = _Known(user_id, valid_after, expires_at)
        self._written[token] = last_seen

    def _forget(self, token: str) -> None:
        self._known.pop(token, None)
        self._unwritten.pop(token, None)
        self._written.pop(token, None)
