"""Where password hashes are checked: a few threads of their own, and a cap on logins.

argon2 is slow on purpose (tens of milliseconds and tens of megabytes per check). On the
loop's default executor a flood of logins would take every thread and, worse, hold a
database connection each while waiting: everyone else's requests would queue behind them.
Here a login checks its hash on a small dedicated pool, with no connection held, and only
`max_in_flight` logins are admitted at once; the rest are refused at once (503), never queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

HASH_WORKERS = 2
MAX_LOGINS_IN_FLIGHT = 16
RETRY_AFTER_SECONDS = 1


class LoginGate:
    """Admission of logins and the threads their password hashes run on."""

    def __init__(
        self, workers: int = HASH_WORKERS, max_in_flight: int = MAX_LOGINS_IN_FLIGHT
    ) -> None:
        self.workers = workers
        self.max_in_flight = max_in_flight
        self.refused = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def in_flight(self) -> int:
        """Logins admitted and not yet answered."""
        return self._in_flight

    def try_enter(self) -> bool:
        """Admit one login if there is room; the caller must `leave()` when done."""
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                self.refused += 1
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        """One admitted login is answered."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run `work(*args)` (a hash check) on the gate's threads."""
        if self._pool is None:
            # Made on first use: an app that never serves a login starts no threads.
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="password-hash")
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    def close(self) -> None:
        """Stop the threads (daemon shutdown); checks not started yet are dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
