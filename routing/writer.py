"""Write-behind for the routing service's interaction updates.

Routing records times, agents and explanations on interactions as contacts move. Doing
each as its own ORM transaction on the bus path made every call wait for several
database round trips before the next event was handled. Here updates are queued in
order and a single task applies whatever has accumulated in one transaction of plain
UPDATE statements, usually within a millisecond or two. `flush()` waits until
everything queued so far is stored; shutdown flushes.

The contact life-cycle events (`routing.stats.LifeCycleEvent`) ride in the same batches,
appended to the store's contact-event log in the same transaction: recording them costs
no round trip of its own. `load_events` reads them back for the rebuild after a restart.

When the store cannot be written (locked, down), a batch is handed to the store's outbox
(routing.intake.StoreOutbox) instead of being dropped, and so is every batch after
it while the outbox holds anything, so updates reach the store in the order made and
never before the held contact they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import contact_events
from crm_store.models import ContactEvent, Interaction
from routing.intake import StoreOutbox, store_unavailable
from routing.stats import LifeCycleEvent

log = logging.getLogger(__name__)

# The columns routing writes; anything else goes through crm_store.interactions.
FIELDS = frozenset(
    {"queue", "offered_at", "answered_at", "ended_at", "agent_id", "routing", "end_cause"}
)


class InteractionWriter:
    """Ordered, batched interaction updates from the routing service."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], outbox: StoreOutbox | None = None
    ) -> None:
        self.sessionmaker = sessionmaker
        self.outbox = outbox
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._events: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.failures = 0

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="routing-writer")

    def write(self, interaction_id: int, **fields: Any) -> None:
        """Queue an update (returns at once)."""
        unknown = set(fields) - FIELDS
        if unknown:
            raise ValueError(f"routing does not write {', '.join(sorted(unknown))}")
        self._pending.append((interaction_id, fields))
        self._idle.clear()
        self._wake.set()

    def record(self, event: LifeCycleEvent) -> None:
        """Queue a life-cycle event for the contact-event log (returns at once)."""
        self._events.append(event_row(event))
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every update queued so far is committed (or handed to the outbox,
        while the store is unavailable: `StoreOutbox.drained` waits for that)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Flush, then stop the task."""
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            events, self._events = self._events, []
            if batch or events:
                await self._apply(batch, events)
            if not self._pending and not self._events:
                self._idle.set()

    async def _apply(
        self, batch: list[tuple[int, dict[str, Any]]], events: list[dict[str, Any]]
    ) -> None:
        outbox = self.outbox
        if outbox is not None and outbox.holding:
            self._hold(outbox, batch, events)
            return
        try:
            async with self.sessionmaker.begin() as session:
                for interaction_id, fields in batch:
                    await session.execute(
                        update(Interaction).where(Interaction.id == interaction_id).values(**fields)
                    )
                await contact_events.append_events(session, events)
            self.batches += 1
        except Exception as exc:
            if outbox is not None and store_unavailable(exc):
                outbox.went_down(exc)
                self._hold(outbox, batch, events)
                return
            # Keep the bus moving; the log says which contacts lost an update.
            self.failures += 1
            log.exception(
                "could not store routing updates for interactions %s",
                sorted({i for i, _ in batch} | {e["interaction_id"] for e in events} - {None}),
            )

    @staticmethod
    def _hold(
        outbox: StoreOutbox,
        batch: list[tuple[int, dict[str, Any]]],
        events: list[dict[str, Any]],
    ) -> None:
        for interaction_id, fields in batch:
            outbox.hold_update(interaction_id, fields)
        outbox.hold_events(events)


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
