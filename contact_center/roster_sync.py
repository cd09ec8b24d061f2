"""Users changed outside this daemon reach its router: skills, device, role, activation.

An admin's change through this daemon's API is applied to the router at once. The CLI
(`contact-center users set ...`) and a second daemon on the same database are other
processes: all they change is the `users` row (and its `updated_at`). So the daemon polls
for rows changed since its last look, once a second, and re-reads each into the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import users
from crm_store.models import utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# Rows stamped a little before the last look are read again: a transaction that commits
# late, or a writer whose clock runs behind, is not missed (re-reading one is harmless).
OVERLAP = timedelta(seconds=30)


class _Router(Protocol):
    def sync_user(self, user_id: int) -> Awaitable[None]: ...


class RosterSync:
    """Remembers what it has applied; `poll` applies what changed since."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], now: datetime) -> None:
        self.sessionmaker = sessionmaker
        self.since = now
        self.applied: dict[int, datetime] = {}

    async def poll(self, router: _Router) -> list[int]:
        """Re-read into the router every user changed since the last poll; their ids."""
        async with self.sessionmaker() as db:
            rows = await users.changed_since(db, self.since - OVERLAP)
        synced = []
        for user_id, stamp in rows:
            if self.applied.get(user_id) == stamp:
                continue
            await router.sync_user(user_id)
            self.applied[user_id] = stamp
            self.since = max(self.since, stamp)
            synced.append(user_id)
        if synced:
            log.info("users changed in the store, re-read: %s", ", ".join(map(str, synced)))
        return synced


async def watch(sync: RosterSync, router: _Router, interval: float = POLL_SECONDS) -> None:
    """Poll until cancelled; a database outage only delays it (logged once)."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await sync.poll(router)
        except Exception as exc:  # the watch must outlive any one failure
            if not failing:
                log.warning("cannot check the store for changed users: %s", exc)
            failing = True
        else:
            if failing:
                log.info("checking the store for changed users again")
            failing = False


def component(
    sessionmaker: Callable[[], async_sessionmaker[AsyncSession] | None],
    router: Callable[[], _Router | None],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run the watch while the daemon runs (after routing has started)."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        made, live = sessionmaker(), router()
        if made is None or live is None:
            yield
            return
        task = asyncio.create_task(watch(RosterSync(made, utcnow()), live), name="roster-sync")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
