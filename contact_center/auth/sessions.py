"""Web sessions: an opaque cookie token mapped to the user, with a CSRF token.

Two places can keep them (`web.sessions`), behind one protocol, `SessionStore`:

- `store` (`contact_center/auth/stored_sessions.py`): a table in the CRM store, holding a
  digest of each token, never the token. Every daemon on the database accepts the same
  cookies, and a restart logs nobody out.
- `memory` (`MemorySessionStore`, here): this daemon's memory. A token never leaves the
  process except as the user's own cookie; the price is that a restart asks everyone to
  log in again and a second daemon does not know this one's sessions.

Each session remembers the user's `sessions_valid_after` as it was at login; a daemon
that sees it change in the store (the CLI or another daemon disabled the user, or set a
new password or role) ends the session: see `contact_center/auth/revocation.py`.
Sessions end after `auth.session_hours` whatever happens, and, when
`auth.session_idle_minutes` is set, after that long without a request.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

COOKIE_NAME = "cc_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class WebSession:
    """One logged-in browser."""

    token: str
    user_id: int
    username: str
    display_name: str
    role: str
    csrf_token: str
    created_at: float
    expires_at: float
    # The user's `sessions_valid_after` when this session was made (None: never set).
    valid_after: datetime | None = None

    def csrf_matches(self, presented: str | None) -> bool:
        """True when `presented` is this session's CSRF token (constant-time compare)."""
        return presented is not None and hmac.compare_digest(presented, self.csrf_token)

    def public(self) -> dict[str, object]:
        """What the browser may know about its own session."""
        return {
            "user": {
                "id": self.user_id,
                "username": self.username,
                "display_name": self.display_name,
                "role": self.role,
            },
            "csrf_token": self.csrf_token,
            "expires_at": self.expires_at,
        }


class SessionStore(Protocol):
    """Where sessions live; `now` (seconds since the epoch) is always a parameter."""

    @property
    def lifetime_seconds(self) -> float:
        """How long a session lasts at most (the cookie's max-age)."""
        ...

    def __len__(self) -> int:
        """Sessions this daemon has made or served (0: none to end here, nothing to poll)."""
        ...

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
        """A new session with fresh random tokens."""
        ...

    async def get(self, token: str | None, now: float) -> WebSession | None:
        """The live session for `token`, or None (unknown, expired, idle or revoked)."""
        ...

    async def revoke(self, token: str) -> None:
        """End one session (logout)."""
        ...

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, role changed); how many were ended."""
        ...

    async def revoke_stale(self, users: Mapping[int, tuple[bool, datetime]]) -> set[int]:
        """End the sessions voided by the store: `users` maps a user id to (active,
        sessions_valid_after) as stored; a session made under an older value, or of an
        inactive user, ends. The ids of the users who lost a session this daemon knows
        (their sockets here are closed)."""
        ...

    async def has_sessions(self, user_id: int, now: float) -> bool:
        """True when the user still has a live session (after a logout, say)."""
        ...

    async def maintain(self, now: float) -> None:
        """Periodic upkeep (every second or so): drop what has expired, write what waits."""
        ...


def is_voided(valid_after: datetime | None, active: bool, stamp: datetime) -> bool:
    """True when a session made under `valid_after` ends, its user now being (`active`,
    `stamp`): "older", not "other", so a poll answered just before a login read a newer
    value does not end that fresh session."""
    return not active or valid_after is None or valid_after < stamp


def new_tokens() -> tuple[str, str]:
    """A fresh (session token, CSRF token): 256 random bits each."""
    return secrets.token_urlsafe(32), secrets.token_urlsafe(32)


class MemorySessionStore:
    """Sessions by token in this daemon's memory (`web.sessions: memory`)."""

    def __init__(self, lifetime_seconds: float, idle_seconds: float | None = None) -> None:
        self.lifetime_seconds = lifetime_seconds
        self.idle_seconds = idle_seconds
        self._by_token: dict[str, WebSession] = {}
        self._last_seen: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._by_token)

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
        """A new session with fresh random tokens."""
        token, csrf = new_tokens()
        session = WebSession(
            token=token,
            user_id=user_id,
            username=username,
            display_name=display_name,
            role=role,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + self.lifetime_seconds,
            valid_after=valid_after,
        )
        self._by_token[session.token] = session
        self._last_seen[session.token] = now
        self._prune(now)
        return session

    async def get(self, token: str | None, now: float) -> WebSession | None:
        """The live session for `token`, or None (unknown, expired or idle)."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if self._ended(token, session, now):
            self._drop(token)
            return None
        self._last_seen[token] = max(now, self._last_seen.get(token, now))
        return session

    async def revoke(self, token: str) -> None:
        """End one session (logout)."""
        self._drop(token)

    async def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, role changed); how many were ended."""
        doomed = [t for t, s in self._by_token.items() if s.user_id == user_id]
        for token in doomed:
            self._drop(token)
        return len(doomed)

    async def revoke_stale(self, users: Mapping[int, tuple[bool, datetime]]) -> set[int]:
        """End the sessions voided by the store (see `SessionStore.revoke_stale`)."""
        if not users:
            return set()
        doomed: dict[str, int] = {}
        for token, session in self._by_token.items():
            state = users.get(session.user_id)
            if state is not None and is_voided(session.valid_after, *state):
                doomed[token] = session.user_id
        for token in doomed:
            self._drop(token)
        return set(doomed.values())

    async def has_sessions(self, user_id: int, now: float) -> bool:
        """True when the user still has a live session here."""
        return any(
            s.user_id == user_id and not self._ended(t, s, now) for t, s in self._by_token.items()
        )

    async def maintain(self, now: float) -> None:
        """Drop the sessions nobody came back for."""
        for token in [t for t, s in self._by_token.items() if self._ended(t, s, now)]:
            self._drop(token)

    def _ended(self, token: str, session: WebSession, now: float) -> bool:
        if session.expires_at <= now:
            return True
        if self.idle_seconds is None:
            return False
        return self._last_seen.get(token, session.created_at) + self.idle_seconds <= now

    def _drop(self, token: str) -> None:
        self._by_token.pop(token, None)
        self._last_seen.pop(token, None)

    def _prune(self, now: float) -> None:
        # Amortised clean-up between two `maintain` calls (a burst of logins).
        if len(self._by_token) % 64 == 0:
            for token in [t for t, s in self._by_token.items() if self._ended(t, s, now)]:
                self._drop(token)
