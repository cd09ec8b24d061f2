"""Ending the sessions the store has voided, whoever voided them.

A user disabled (or given a new password or role) through this daemon's API loses their
sessions there and then. `contact-center users disable` and a second daemon on the same
database are other processes: all they change is `users.sessions_valid_after`. So every
daemon polls that column (one index range scan a second, none while nobody is logged in)
and ends the sessions made under an older value, and closes the user's sockets. With
`web.sessions: store` every look-up refuses such sessions at once; the poll is then what
closes this daemon's sockets of the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contact_center.auth.passwords import LoginGate
from contact_center.auth.sessions import SessionStore
from crm_store import users
from crm_store.models import utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# Users voided this recently are looked at on every poll: the window absorbs transactions
# that commit late and writers (CLI hosts, other daemons) whose clocks run a little behind.
LOOK_BACK = timedelta(minutes=10)


class _Hub(Protocol):
    def end_user(self, user_id: int) -> int: ...


class DaemonParts(Protocol):
    """What revocation needs of the daemon."""

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def hub(self) -> _Hub: ...

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession] | None: ...

    @property
    def login_gate(self) -> LoginGate: ...


async def revoke_voided(daemon: DaemonParts, now: datetime) -> set[int]:
    """End the sessions and sockets the store voided; the ids of the users concerned."""
    if len(daemon.sessions) == 0 or daemon.sessionmaker is None:
        return set()
    async with daemon.sessionmaker() as db:
        rows = await users.sessions_voided_since(db, now - LOOK_BACK)
    ended = await daemon.sessions.revoke_stale({uid: (active, at) for uid, active, at in rows})
    for user_id in sorted(ended):
        sockets = daemon.hub.end_user(user_id)
        log.info(
            "user %d was disabled or changed elsewhere: sessions ended, %d socket(s) closed",
            user_id,
            sockets,
        )
    return ended


async def watch(daemon: DaemonParts, interval: float = POLL_SECONDS) -> None:
    """Poll for voided sessions until cancelled; a database outage only delays it."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await revoke_voided(daemon, utcnow())
        except Exception as exc:  # the watch must outlive any one failure
            if not failing:
                log.warning("cannot check the store for ended sessions: %s", exc, exc_info=True)
            failing = True
        else:
            if failing:
                log.info("checking the store for ended sessions again")
            failing = False


async def upkeep(sessions: SessionStore, interval: float = POLL_SECONDS) -> None:
    """The session store's upkeep (expired rows, "last seen") until cancelled; its own
    task, so a slow write there never delays the revocation watch."""
    failing = False
    while True:
        await asyncio.sleep(interval)
        try:
            await sessions.maintain(time.time())
        except Exception as exc:  # the upkeep must outlive any one failure
            if not failing:
                log.warning("cannot tidy the login sessions: %s", exc, exc_info=True)
            failing = True
        else:
            if failing:
                log.info("tidying the login sessions again")
            failing = False


def component(daemon: DaemonParts) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run the revocation watch and the sessions' upkeep; on stop, also stop the
    password-hash threads."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(watch(daemon), name="session-revocation"),
            asyncio.create_task(upkeep(daemon.sessions), name="session-upkeep"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        daemon.login_gate.close()

    return ctx
