"""Login rate limit: failed attempts counted per username and per client address.

Only failures count, so a floor of agents behind one NAT address logging in at the
start of a shift is never throttled; the per-address allowance is wider than the
per-user one for the same reason.
"""

from __future__ import annotations

from collections import deque

WINDOW_SECONDS = 60.0
ADDRESS_FACTOR = 10


class LoginRateLimiter:
    """Sliding one-minute windows of failures; `now` in seconds is always a parameter."""

    def __init__(self, per_user_per_minute: int, per_address_per_minute: int | None = None):
        self.per_user = per_user_per_minute
        self.per_address = per_address_per_minute or per_user_per_minute * ADDRESS_FACTOR
        self._users: dict[str, deque[float]] = {}
        self._addresses: dict[str, deque[float]] = {}

    def retry_after(self, username: str, address: str, now: float) -> float | None:
        """Seconds to wait before another attempt is allowed, or None when allowed now."""
        waits = [
            self._wait(self._users, username.lower(), self.per_user, now),
            self._wait(self._addresses, address, self.per_address, now),
        ]
        longest = max((w for w in waits if w is not None), default=None)
        return longest

    def failed(self, username: str, address: str, now: float) -> None:
        """Count one failed attempt."""
        self._users.setdefault(username.lower(), deque()).append(now)
        self._addresses.setdefault(address, deque()).append(now)

    def succeeded(self, username: str) -> None:
        """A good password clears the user's failures (not the address's)."""
        self._users.pop(username.lower(), None)

    @staticmethod
    def _wait(table: dict[str, deque[float]], key: str, limit: int, now: float) -> float | None:
        failures = table.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - WINDOW_SECONDS:
            failures.popleft()
        if not failures:
            del table[key]
            return None
        if len(failures) < limit:
            return None
        return max(0.0, failures[0] + WINDOW_SECONDS - now)
