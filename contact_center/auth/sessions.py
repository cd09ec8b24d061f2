"""Web sessions: an opaque cookie token mapped to the user, with a CSRF token.

Kept in memory on purpose: a disabled user or a logout is effective at once, and a
token never leaves the daemon except as the user's own cookie. The price is that a
daemon restart asks everyone to log in again.

Each session remembers the user's `sessions_valid_after` as it was at login; a daemon
that sees it change in the store (the CLI or another daemon disabled the user, or set a
new password or role) ends the session: see `contact_center/auth/revocation.py`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

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


class SessionStore:
    """Sessions by token; `now` (seconds, any monotonic-enough clock) is always a parameter."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._by_token: dict[str, WebSession] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def create(
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
        session = WebSession(
            token=secrets.token_urlsafe(32),
            user_id=user_id,
            username=username,
            display_name=display_name,
            role=role,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self.lifetime_seconds,
            valid_after=valid_after,
        )
        self._by_token[session.token] = session
        self._prune(now)
        return session

    def get(self, token: str | None, now: float) -> WebSession | None:
        """The live session for `token`, or None (unknown or expired)."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._by_token[token]
            return None
        return session

    def revoke(self, token: str) -> None:
        """End one session (logout)."""
        self._by_token.pop(token, None)

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user (disabled, role changed); how many were ended."""
        doomed = [t for t, s in self._by_token.items() if s.user_id == user_id]
        for token in doomed:
            del self._by_token[token]
        return len(doomed)

    def revoke_stale(self, users: Mapping[int, tuple[bool, datetime]]) -> set[int]:
        """End the sessions voided by the store: `users` maps a user id to (active,
        sessions_valid_after) as stored; a session made under an older value, or of an
        inactive user, ends. The ids of the users who lost a session."""
        if not users:
            return set()
        doomed: dict[str, int] = {}
        for token, session in self._by_token.items():
            state = users.get(session.user_id)
            if state is None:
                continue
            active, valid_after = state
            # "Older", not "other": a poll answered just before a login read a newer value
            # must not end that fresh session.
            if not active or session.valid_after is None or session.valid_after < valid_after:
                doomed[token] = session.user_id
        for token in doomed:
            del self._by_token[token]
        return set(doomed.values())

    def live(self, now: float) -> list[WebSession]:
        """Every unexpired session."""
        return [s for s in self._by_token.values() if s.expires_at > now]

    def _prune(self, now: float) -> None:
        # Amortised clean-up of sessions nobody came back for.
        if len(self._by_token) % 64 == 0:
            for token in [t for t, s in self._by_token.items() if s.expires_at <= now]:
                del self._by_token[token]
