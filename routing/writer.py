"""Write-behind for the routing service's interaction updates.

Routing records times, agents and explanations on interactions as contacts move. Doing
each as its own ORM transaction on the bus path made every call wait for several
database round trips before the next event was handled. Here updates are queued in
order and written in batches, one transaction each, usually within a millisecond or two.
`flush()` waits until everything queued so far is stored; shutdown flushes.

The contact life-cycle events (`routing.stats.LifeCycleEvent`) ride in the same batches,
appended to the store's contact-event log in the same transaction: recording them costs
no round trip of its own. `load_events` reads them back for the rebuild after a restart.

All of it now goes through the daemon's one store writer per database
(routing.store_writer), in the same queue as the contacts themselves: updates reach the
store in the order made, never before the contact they belong to, and are held and
retried when the store cannot take them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import contact_events
from crm_store.models import ContactEvent
from routing.stats import LifeCycleEvent
from routing.store_writer import StoreWriter

log = logging.getLogger(__name__)

# The columns routing writes; anything else goes through crm_store.interactions.
FIELDS = frozenset(
    {"queue", "offered_at", "answered_at", "ended_at", "agent_id", "routing", "end_cause"}
)


class InteractionWriter:
    """Routing's interaction updates and life-cycle events, handed to the store writer.

    Routing makes them from bus handlers that must not wait, so they are queued at once
    (past the writer's limit if need be: never dropped); the calls that feed routing are
    the ones slowed when the writer falls behind. Without a store writer of the daemon's
    (tools, tests), this one runs its own.
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], outbox: StoreWriter | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self._own = outbox is None
        self.outbox = outbox if outbox is not None else StoreWriter(sessionmaker)
        self._started = False

    @property
    def batches(self) -> int:
        """Transactions the store writer committed."""
        return self.outbox.stats.batches

    @property
    def failures(self) -> int:
        """Writes given up (wrong in themselves)."""
        return self.outbox.lost_writes

    def start(self) -> None:
        """Start the writer task (when this writer runs its own)."""
        if self._own and not self._started:
            self._started = True
            self.outbox.start_soon()

    def write(self, interaction_id: int, **fields: Any) -> None:
        """Queue an update (returns at once)."""
        unknown = set(fields) - FIELDS
        if unknown:
            raise ValueError(f"routing does not write {', '.join(sorted(unknown))}")
        self.outbox.update_nowait(interaction_id, fields)

    def record(self, event: LifeCycleEvent) -> None:
        """Queue a life-cycle event for the contact-event log (returns at once)."""
        self.outbox.events_nowait([event_row(event)])

    async def flush(self) -> None:
        """Wait until every update queued so far is committed (or held, while the store
        is unavailable: `StoreWriter.drained` waits for that)."""
        await self.outbox.flush()

    async def stop(self) -> None:
        """Flush; stop the store writer if it is this one's own."""
        await self.flush()
        if self._own and self._started:
            await self.outbox.stop()
            self._started = False


def event_row(event: LifeCycleEvent) -> dict[str, Any]:
    """A life-cycle event as a row of the contact-event log."""
    return {
        "interaction_id": event.interaction_id,
        "channel": event.channel,
        "queue": event.queue,
        "agent_id": event.agent_id,
        "kind": event.kind,
        "at": stored_time(event.at),
        "details": dict(event.details) or None,
    }


def stored_time(epoch: float) -> datetime:
    """`epoch` as the store keeps it (to the microsecond)."""
    return datetime.fromtimestamp(epoch, UTC)


def as_stored(epoch: float) -> float:
    """`epoch` as it reads back from the store: the live figures use the same times as the
    ones rebuilt after a restart, to the last digit."""
    return stored_time(epoch).timestamp()


def life_cycle_event(row: ContactEvent) -> LifeCycleEvent:
    """A stored row of the contact-event log as a life-cycle event."""
    return LifeCycleEvent(
        kind=row.kind,
        at=row.at.timestamp(),
        interaction_id=row.interaction_id,
        channel=row.channel,
        queue=row.queue,
        agent_id=row.agent_id,
        details=dict(row.details or {}),
    )


async def load_events(
    sessionmaker: async_sessionmaker[AsyncSession], since: float, status_kinds: Iterable[str]
) -> list[LifeCycleEvent]:
    """The stored events from `since` on, with the earlier events of the contacts they
    concern and each agent's last event of `status_kinds` before `since`, as written."""
    start = stored_time(since)
    async with sessionmaker() as session:
        rows = await contact_events.events_between(session, start)
        before = await contact_events.latest_per_agent(session, status_kinds, start)
    merged = {row.id: row for row in (*before, *rows)}
    return [life_cycle_event(merged[i]) for i in sorted(merged)]
