"""Login rate limit: failed attempts counted per username and per client address.

Only failures count, so a floor of agents behind one NAT address logging in at the
start of a shift is never throttled; the per-address allowance is wider than the
per-user one for the same reason.

An attempt is counted as a failure the moment it is let through (`reserve`), before
its password is hashed, and refunded if it turns out good: concurrent tries cannot
slip past the limit while the first ones are still being checked. Users are keyed by
`crm_store.users.canonical_username`, the very form the look-up uses, so no spelling
of a name that finds the user escapes the user's limit.
"""

from __future__ import annotations

import contextlib
from collections import deque

from crm_store.users import canonical_username

WINDOW_SECONDS = 60.0
ADDRESS_FACTOR = 10
# Past this many tracked names or addresses, expired windows are swept on the next attempt:
# names nobody ever retries would otherwise stay forever.
_SWEEP_ABOVE = 10_000


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
            self._wait(self._users, canonical_username(username), self.per_user, now),
            self._wait(self._addresses, address, self.per_address, now),
        ]
        return max((w for w in waits if w is not None), default=None)

    def reserve(self, username: str, address: str, now: float) -> float | None:
        """Let one attempt through, counted as failed until `succeeded` or `refund`.

        None when it may go ahead; otherwise the seconds to wait, and nothing is counted.
        """
        wait = self.retry_after(username, address, now)
        if wait is not None:
            return wait
        if len(self._users) > _SWEEP_ABOVE or len(self._addresses) > _SWEEP_ABOVE:
            self._sweep(now)
        self._users.setdefault(canonical_username(username), deque()).append(now)
        self._addresses.setdefault(address, deque()).append(now)
        return None

    def succeeded(self, username: str, address: str, reserved_at: float) -> None:
        """A good password: clears the user's failures and refunds the address's attempt."""
        self._users.pop(canonical_username(username), None)
        self._forget(self._addresses, address, reserved_at)

    def refund(self, username: str, address: str, reserved_at: float) -> None:
        """The attempt was never checked (the server was busy): it does not count."""
        self._forget(self._users, canonical_username(username), reserved_at)
        self._forget(self._addresses, address, reserved_at)

    @staticmethod
    def _forget(table: dict[str, deque[float]], key: str, at: float) -> None:
        window = table.get(key)
        if window is None:
            return
        with contextlib.suppress(ValueError):
            window.remove(at)  # any entry of that instant will do: they are alike
        if not window:
            del table[key]

    def _sweep(self, now: float) -> None:
        for table in (self._users, self._addresses):
            for key in [k for k, w in table.items() if not w or w[-1] <= now - WINDOW_SECONDS]:
                del table[key]

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
