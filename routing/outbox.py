"""The outbox: contacts and their updates held in memory while the store cannot be
written, and written in order once it can (see `routing.intake`).

A caller must never be lost because the store cannot be written (SQLite locked past its
busy timeout, PostgreSQL down): the contact gets its interaction id from the daemon, is
served and routed from memory, and its record waits here, bounded, with every update made
meanwhile. Data errors still raise: only an unavailable store is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store import contact_events, customers, outage
from crm_store.errors import StoreError
from crm_store.fast_intake import SqliteIntake, WritesHeld
from crm_store.models import Interaction

log = logging.getLogger(__name__)

# Contacts and updates the outbox keeps before it refuses more (about 5 KB each at most).
OUTBOX_LIMIT = 10_000
# A read done for a held contact (who is calling?) must not keep the caller waiting.
HELD_READ_SECONDS = 1.0
# How long shutdown waits for the store to take what is held.
STOP_FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class OpenedContact:
    """The stored interaction, and the customer found for its address (if any)."""

    interaction_id: int
    customer_id: int | None
    tier: str | None
    held: bool = False  # the record waits in the outbox (the store was unavailable)


class StoreUnavailable(StoreError):
    """The store cannot take the write and nothing can hold it (the outbox is full)."""

    error_id = "database.unavailable"


def store_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached or written now (locked, down,
    pool exhausted), as opposed to a write that is wrong in itself."""
    # WritesHeld: the SQLite writer is already holding; TimeoutError: a held read gave up.
    return isinstance(exc, WritesHeld | TimeoutError) or outage.is_unavailable(exc)


async def _find_customer(
    session: AsyncSession, kind: str, address: str | None, region: str, customer_id: int | None
) -> Any:
    if customer_id is not None:
        return await customers.get_customer(session, customer_id)
    if address:
        return await customers.find_customer_by_contact(session, kind, address, region)
    return None


class StoreOutbox:
    """Interaction writes the store could not take: kept in order, retried with back-off.

    New contacts get ids following the highest the store holds (read, when it can be, or
    the highest this daemon saw): nothing else in the daemon inserts interactions while
    contacts are held, since `open_contact` queues every new one here until the outbox
    is empty. Updates to held contacts are merged into their rows; updates to stored ones
    are applied after the held rows are in, and contact events (the life-cycle log) are
    appended after both, in the order made. One warning when the store goes, one line
    when it is back.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        fast: SqliteIntake | None = None,
        limit: int = OUTBOX_LIMIT,
        first_retry: float = 0.2,
        max_retry: float = 5.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.fast = fast
        self.limit = limit
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._rows: dict[int, dict[str, Any]] = {}  # held contact id -> its columns
        self._updates: dict[int, dict[str, Any]] = {}  # stored id -> fields to set
        self._events: list[dict[str, Any]] = []  # contact-event rows, in order
        self._in_flight: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]] | None = None
        self._last_id = 0  # highest interaction id handed out or seen
        self._down_since: float | None = None
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self.held_contacts = 0
        self.written_contacts = 0
        self.lost_writes = 0

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the retry task (the composition root hands this outbox to whoever
        opens or updates contacts)."""
        with contextlib.suppress(Exception):
            self._last_id = await self._stored_max_id()
        self._task = asyncio.create_task(self._run(), name="store-outbox")

    async def stop(self) -> None:
        """One last try to store what is held, then say what could not be."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.holding:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_FLUSH_SECONDS):
                    while self.holding:
                        if not await self._flush():
                            await asyncio.sleep(self.first_retry)
        if self.holding:
            ids = sorted({*self._rows, *self._updates})
            self.lost_writes += len(ids) + len(self._events)
            log.error(
                "the store never came back: %d held interactions (ids %s) and %d contact"
                " events not stored",
                len(ids),
                ", ".join(map(str, ids[:50])) + (" ..." if len(ids) > 50 else ""),
                len(self._events),
            )

    # --- what the intake and the writers call ----------------------------------------

    @property
    def holding(self) -> bool:
        """True while anything waits for the store (new writes must queue behind it)."""
        return bool(self._rows or self._updates or self._events or self._in_flight)

    @property
    def size(self) -> int:
        """Held contacts, updates and contact events."""
        return len(self._rows) + len(self._updates) + len(self._events)

    async def drained(self) -> None:
        """Wait until nothing is held (tests, shutdown paths that must know)."""
        await self._empty.wait()

    def seen(self, interaction_id: int) -> None:
        """An id the store gave: held contacts are numbered after it."""
        self._last_id = max(self._last_id, interaction_id)

    def went_down(self, exc: BaseException) -> None:
        """A write failed because the store is unavailable (logged once per outage)."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "the store cannot be written (%s): contacts are served from memory and"
                " stored when it is back",
                _describe(exc),
            )
        if self.fast is not None:
            # Calls already waiting for the SQLite thread skip their write at once.
            self.fast.hold_writes = True

    async def hold_contact(
        self, row: dict[str, Any], *, kind: str, region: str, customer_id: int | None
    ) -> OpenedContact:
        """Keep a new contact's row; its id is the next after the highest known."""
        if self.size >= self.limit:
            self.lost_writes += 1
            raise StoreUnavailable(
                f"the store is unavailable and {self.size} writes are already held"
            )
        found_id, tier = await self._who(row["address"], kind, region, customer_id)
        if not self._rows and not self._in_flight:
            # First of an outage: the store may still be readable (an SQLite write lock).
            with contextlib.suppress(Exception):
                self._last_id = max(self._last_id, await self._stored_max_id())
        # No await from here on: the id is taken and held in one step.
        self._last_id += 1
        new_id = self._last_id
        self._rows[new_id] = {**row, "id": new_id, "customer_id": found_id}
        self.held_contacts += 1
        self._empty.clear()
        self._wake.set()
        return OpenedContact(new_id, found_id, tier, held=True)

    def hold_update(self, interaction_id: int, fields: dict[str, Any]) -> None:
        """Keep an update; merged into the held row, or applied after the held rows."""
        row = self._rows.get(interaction_id)
        if row is not None:
            row.update(fields)
        else:
            self._updates.setdefault(interaction_id, {}).update(fields)
        self._empty.clear()
        self._wake.set()

    def hold_events(self, events: list[dict[str, Any]]) -> None:
        """Keep contact-event rows; appended after the held contacts and updates."""
        if not events:
            return
        self._events.extend(events)
        self._empty.clear()
        self._wake.set()

    # --- storing ------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.first_retry
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.holding:
                if await self._flush():
                    delay = self.first_retry
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry)

    async def _flush(self) -> bool:
        """Try to store everything held now; True when it all went in (or was given up)."""
        rows, updates, events = self._rows, self._updates, self._events
        self._rows, self._updates, self._events = {}, {}, []
        self._in_flight = (rows, updates)
        try:
            try:
                await self._write(rows, updates, events)
            except Exception as exc:
                if store_unavailable(exc):
                    self._put_back(rows, updates, events)
                    log.debug("the store still cannot be written: %s", _describe(exc))
                    return False
                # One bad entry (a customer deleted meanwhile) must not hold up the rest.
                if not await self._write_one_by_one(rows, updates, events):
                    return False
            except BaseException:
                # Cancelled: the transaction was rolled back.
                self._put_back(rows, updates, events)
                raise
        finally:
            self._in_flight = None
        if not self.holding:
            self._recovered()
        return True

    async def _write(
        self,
        rows: dict[int, dict[str, Any]],
        updates: dict[int, dict[str, Any]],
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        async with self.sessionmaker.begin() as session:
            for row in rows.values():
                await session.execute(insert(Interaction).values(**row))
            for interaction_id, fields in updates.items():
                await session.execute(
                    update(Interaction).where(Interaction.id == interaction_id).values(**fields)
                )
            await contact_events.append_events(session, events or [])
            if rows and session.get_bind().dialect.name == "postgresql":
                # Explicit ids do not move the sequence: the next insert must not reuse one.
                await session.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('interactions', 'id'),"
                        " (SELECT max(id) FROM interactions))"
                    )
                )
        self.written_contacts += len(rows)

    async def _write_one_by_one(
        self,
        rows: dict[int, dict[str, Any]],
        updates: dict[int, dict[str, Any]],
        events: list[dict[str, Any]],
    ) -> bool:
        """Each entry on its own; False (the rest put back) if the store goes meanwhile."""
        Entry = tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]], list[dict[str, Any]]]
        entries: list[Entry] = [
            *(({i: row}, {}, []) for i, row in rows.items()),
            *(({}, {i: fields}, []) for i, fields in updates.items()),
            *([({}, {}, events)] if events else []),
        ]
        for n, (row, fields, logged) in enumerate(entries):
            try:
                await self._write_entry(row, fields, logged)
            except BaseException as exc:
                for later_rows, later_updates, later_events in reversed(entries[n:]):
                    self._put_back(later_rows, later_updates, later_events)
                if isinstance(exc, Exception) and store_unavailable(exc):
                    return False
                raise
        return True

    async def _write_entry(
        self,
        rows: dict[int, dict[str, Any]],
        updates: dict[int, dict[str, Any]],
        events: list[dict[str, Any]],
    ) -> None:
        """One entry the store refused in a batch: stored as well as it can be, or logged."""
        try:
            await self._write(rows, updates, events)
            return
        except Exception as exc:
            if store_unavailable(exc):
                raise
            reason = _describe(exc)
        for interaction_id, row in rows.items():
            # The customer went meanwhile: keep the contact, unlinked.
            unlinked = {**row, "customer_id": None, "agent_id": None}
            try:
                await self._write({interaction_id: unlinked}, {})
                log.warning("held interaction %s stored unlinked: %s", interaction_id, reason)
                continue
            except Exception as exc:
                if store_unavailable(exc):
                    raise
            # Another program inserted interactions during the outage and took the id.
            del unlinked["id"]
            try:
                await self._write({0: unlinked}, {})
                log.error(
                    "interaction id %s was taken while the store was away: the call is"
                    " stored under a new id, later updates to it are lost (%s)",
                    interaction_id,
                    reason,
                )
            except Exception as exc:
                if store_unavailable(exc):
                    raise
                log.error("held interaction %s not stored: %s", interaction_id, _describe(exc))
            self.lost_writes += 1
        for interaction_id in updates:
            self.lost_writes += 1
            log.error("held update of interaction %s not stored: %s", interaction_id, reason)
        if events:
            self.lost_writes += len(events)
            log.error("%d held contact events not stored: %s", len(events), reason)

    def _put_back(
        self,
        rows: dict[int, dict[str, Any]],
        updates: dict[int, dict[str, Any]],
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        # What arrived during the attempt goes on top of what was being written.
        merged_rows = {i: {**row, **self._updates.pop(i, {})} for i, row in rows.items()}
        merged_rows.update(self._rows)
        merged_updates = {i: dict(fields) for i, fields in updates.items()}
        for i, fields in self._updates.items():
            merged_updates.setdefault(i, {}).update(fields)
        self._rows, self._updates = merged_rows, merged_updates
        self._events = [*(events or []), *self._events]

    def _recovered(self) -> None:
        self._empty.set()
        if self.fast is not None:
            self.fast.hold_writes = False
        if self._down_since is not None:
            log.info(
                "the store takes writes again after %.1f s: %d held contacts stored",
                time.monotonic() - self._down_since,
                self.held_contacts,
            )
            self._down_since = None
            self.held_contacts = 0

    async def _stored_max_id(self) -> int:
        async with asyncio.timeout(HELD_READ_SECONDS), self.sessionmaker() as session:
            return int(await session.scalar(select(func.max(Interaction.id))) or 0)

    async def _who(
        self, address: str | None, kind: str, region: str, customer_id: int | None
    ) -> tuple[int | None, str | None]:
        """The customer, if the store can still be read (a write lock lets readers in)."""
        try:
            async with asyncio.timeout(HELD_READ_SECONDS), self.sessionmaker() as session:
                customer = await _find_customer(session, kind, address, region, customer_id)
        except StoreError:
            raise  # a customer id that does not exist is the caller's mistake
        except Exception:
            # Served as an unknown caller; a given customer id is kept as it was asked.
            return customer_id, None
        return (customer.id, customer.tier) if customer is not None else (None, None)


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {orig or exc}"
