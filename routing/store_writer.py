"""The one writer of a database's hot-path rows, with a bounded queue.

Every new contact, every interaction update (the IVR's path and inputs, routing's times
and agents) and every contact event goes through one task per database, in the order made,
written in batches of one transaction each (crm_store.write_batch). Nothing on the hot
path competes for the store's write lock any more: 500 calls arriving at once used to
mean 500 transactions fighting over SQLite's, some waiting out the busy timeout, and
calls lost when their IVR handler raised.

- **Back-pressure.** Past `limit` queued writes, the async producers (a call opening its
  contact, the IVR recording its path) wait for room: under load the daemon answers
  slower, it does not fail calls. Routing's writes are made from bus handlers that cannot
  wait; they queue past the limit (never dropped) and the calls feeding them are slowed.
  Past `high_water` the writer says it is saturated (`watch`: /status, /metrics;
  a producer such as the AMI reader can pause while it is).
- **Never raised into a call.** A store that cannot take a batch (locked, busy, down) has
  it retried with back-off. New contacts waiting for their id then get one from the
  daemon (`held`): the highest id the store had plus one. Only this task inserts
  interactions for the daemon, and it decides between attempts, never while one is in
  flight, so no id it hands out can also be the store's answer to an insert still going.
  If another program took the id meanwhile, the contact is stored under the store's next
  id and every write queued or made later for it follows it (`rekeyed`).
- A write wrong in itself (a foreign key, a bad value) is written alone, and only it is
  given up (logged, counted in `lost_writes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_store.errors import NotFound, StoreError
from crm_store.fast_intake import SqliteIntake
from crm_store.write_batch import (
    BatchResult,
    EventRows,
    InteractionUpdate,
    NewInteraction,
    Op,
    Recorded,
    apply_batch,
)
from routing.store_state import (
    OpenedContact,
    StoreUnavailable,
    WriterStats,
    describe,
    held_customer,
    interaction_of,
    saturated,
    store_unavailable,
    stored_max_id,
)

log = logging.getLogger("routing.outbox")  # the name operators and tests know it by

# Queued writes before the async producers wait (about 1-5 KB each).
QUEUE_LIMIT = 5_000
# Operations written in one transaction at most.
BATCH_MAX = 500
# How long shutdown waits for the store to take what is queued.
STOP_FLUSH_SECONDS = 5.0


@dataclass
class _Entry:
    op: Op
    seq: int
    future: asyncio.Future[Recorded] | None = None


class StoreWriter:
    """Ordered, batched, bounded writes to one database; see the module docstring."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        fast: SqliteIntake | None = None,
        limit: int = QUEUE_LIMIT,
        high_water: int | None = None,
        batch_max: int = BATCH_MAX,
        first_retry: float = 0.2,
        max_retry: float = 5.0,
        on_state: Callable[[bool, str], None] | None = None,
    ) -> None:
        if limit < 1 or batch_max < 1:
            raise ValueError("the store writer needs limit >= 1 and batch_max >= 1")
        self.sessionmaker = sessionmaker
        self.fast = fast
        self.limit = limit
        self.high_water = high_water if high_water is not None else max(1, limit // 5)
        self.batch_max = batch_max
        self.first_retry = first_retry
        self.max_retry = max_retry
        self._watchers: list[Callable[[bool, str], None]] = [on_state] if on_state else []
        self.stats = WriterStats()
        self._queue: deque[_Entry] = deque()
        self._seq = 0  # operations queued so far
        self._written = 0  # seq of the last operation written (or given up)
        self._held_pending = 0  # contacts numbered by the daemon, not yet written
        self._last_id = 0  # highest interaction id the store had or this writer gave
        self._rekeyed: dict[int, int] = {}  # held id another writer took -> stored id
        self._down_since: float | None = None
        self._saturated = False
        self._changed = asyncio.Event()  # replaced by a fresh one on every change
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.held_contacts = 0  # this outage
        self.written_contacts = 0  # held contacts written
        self.lost_writes = 0

    # --- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task."""
        self.start_soon()

    def start_soon(self) -> None:
        """Start the writer task (from code that cannot await)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-writer")

    async def stop(self) -> None:
        """Give the store a last chance to take what is queued, then say what it did not."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained(), STOP_FLUSH_SECONDS)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            ids = sorted({i for e in self._queue if (i := interaction_of(e.op)) is not None})
            self.lost_writes += len(self._queue)
            log.error(
                "the store never came back: %d writes of interactions %s not stored",
                len(self._queue),
                ", ".join(map(str, ids[:50])) + (" ..." if len(ids) > 50 else ""),
            )
            for entry in self._queue:
                if entry.future is not None and not entry.future.done():
                    entry.future.set_exception(StoreUnavailable("the daemon is stopping"))
            self._queue.clear()

    # --- what producers call --------------------------------------------------------

    @property
    def depth(self) -> int:
        """Writes queued, not yet in the store."""
        return len(self._queue)

    @property
    def holding(self) -> bool:
        """True while the store is down or contacts numbered by the daemon wait for it
        (whoever inserts interactions beside this writer must wait: it could take their
        ids). `drained` waits for every write, held or not."""
        return self._down_since is not None or self._held_pending > 0

    @property
    def size(self) -> int:
        """Writes queued (the outbox's old name for `depth`)."""
        return len(self._queue)

    @property
    def down(self) -> bool:
        """True from a failed attempt until the store takes a batch again."""
        return self._down_since is not None

    def watch(self, callback: Callable[[bool, str], None]) -> None:
        """Call `callback(saturated, detail)` whenever the writer saturates or catches up."""
        self._watchers.append(callback)

    @property
    def saturated(self) -> bool:
        """True while the queue is over its high-water mark."""
        return self._saturated

    async def open_contact(
        self,
        row: dict[str, Any],
        *,
        kind: str | None,
        value: str | None,
        customer_id: int | None,
        region: str,
    ) -> OpenedContact:
        """Record a new contact; its id from the store, or from the daemon (`held`) when
        the store cannot be written. Waits while the queue is full."""
        await self.room()
        op = NewInteraction(row, kind, value, customer_id)
        if self.down:
            # Who is calling, before the id: a customer id that does not exist raises
            # here, and nothing is queued.
            found, tier = await self._customer(op, region)
            if self.down:  # still (the store may have come back meanwhile)
                op.id = self._next_id()  # behind the held ones: no need to wait
                self._put(op)
                return OpenedContact(op.id, found, tier, held=True)
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._put(op, future)
        recorded = await future
        if recorded.interaction_id == op.id:
            # The store failed while this one waited: numbered by the daemon, queued
            # already, so a wrong customer id makes an unlinked contact, not an error.
            try:
                found, tier = await self._customer(op, region)
            except StoreError:
                found, tier = None, None
            return OpenedContact(recorded.interaction_id, found, tier, held=True)
        return OpenedContact(recorded.interaction_id, recorded.customer_id, recorded.tier)

    async def update(self, interaction_id: int, fields: dict[str, Any]) -> None:
        """Queue an update (checked fields), waiting while the queue is full."""
        await self.room()
        self.update_nowait(interaction_id, fields)

    def update_nowait(self, interaction_id: int, fields: dict[str, Any]) -> None:
        """Queue an update now, over the limit if need be (for callers that cannot wait)."""
        self._put(InteractionUpdate(self._rekeyed.get(interaction_id, interaction_id), fields))

    def events_nowait(self, rows: list[dict[str, Any]]) -> None:
        """Queue contact-event rows now, over the limit if need be."""
        if rows:
            self._put(EventRows([self._follow(row) for row in rows]))

    async def room(self) -> None:
        """Wait until the queue is below its limit (back-pressure)."""
        if len(self._queue) < self.limit:
            return
        started = time.monotonic()
        self.stats.waits += 1
        await self._until(lambda: len(self._queue) < self.limit)
        self.stats.wait_seconds += time.monotonic() - started

    async def flush(self) -> None:
        """Wait until everything queued so far is stored, or held while the store is down."""
        target = self._seq
        await self._until(lambda: self._written >= target or self.down)

    async def drained(self) -> None:
        """Wait until nothing is queued."""
        await self._until(lambda: not self._queue)

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    # --- queue ----------------------------------------------------------------------

    def _put(self, op: Op, future: asyncio.Future[Recorded] | None = None) -> None:
        self._seq += 1
        self._queue.append(_Entry(op, self._seq, future))
        self.stats.max_depth = max(self.stats.max_depth, len(self._queue))
        self._check_saturation()
        self._wake.set()

    def _next_id(self) -> int:
        self._last_id += 1
        self.held_contacts += 1
        self._held_pending += 1
        return self._last_id

    def _follow(self, row: dict[str, Any]) -> dict[str, Any]:
        old = row.get("interaction_id")
        if old is not None and old in self._rekeyed:
            return {**row, "interaction_id": self._rekeyed[old]}
        return row

    async def _customer(self, op: NewInteraction, region: str) -> tuple[int | None, str | None]:
        return await held_customer(
            self.sessionmaker, op.kind or "phone", op.row.get("address"), region, op.customer_id
        )

    def _check_saturation(self) -> None:
        depth = len(self._queue)
        now = saturated(depth, self.high_water, was=self._saturated)
        if now == self._saturated:
            return
        self._saturated = now
        detail = f"{depth} writes queued (high water {self.high_water}, limit {self.limit})"
        if now:
            log.warning("the store writer is saturated: %s; producers are slowed", detail)
        else:
            log.info("the store writer keeps up again: %s", detail)
        for watcher in self._watchers:
            watcher(now, detail)

    # --- writing --------------------------------------------------------------------

    async def _run(self) -> None:
        with contextlib.suppress(Exception):  # read again after the first batch anyway
            self._last_id = max(self._last_id, await stored_max_id(self.sessionmaker))
        delay = self.first_retry
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [self._queue[i] for i in range(min(self.batch_max, len(self._queue)))]
                if await self._write(batch):
                    delay = self.first_retry
                    continue
                self.stats.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry)

    async def _write(self, batch: list[_Entry]) -> bool:
        """Write `batch` (the head of the queue); False when the store is unavailable."""
        try:
            result = await self._apply([e.op for e in batch])
        except Exception as exc:
            if store_unavailable(exc):
                self._went_down(exc)
                return False
            log.debug("a batch was refused (%s): written one by one", describe(exc))
            return await self._write_one_by_one(batch)
        self._done(batch, result)
        return True

    async def _write_one_by_one(self, batch: list[_Entry]) -> bool:
        for entry in batch:
            try:
                result = await self._apply([entry.op])
            except Exception as exc:
                if store_unavailable(exc):
                    self._went_down(exc)
                    return False
                self._give_up(entry, exc)
                continue
            self._done([entry], result)
        return True

    async def _apply(self, ops: list[Op]) -> BatchResult:
        if self.fast is not None:
            return await self.fast.apply(ops)
        async with self.sessionmaker.begin() as session:
            return await session.run_sync(lambda s: apply_batch(s.connection(), ops))

    def _done(self, batch: list[_Entry], result: BatchResult) -> None:
        for _ in batch:
            self._queue.popleft()
        self._last_id = max(self._last_id, result.max_id)
        for old, new in result.rekeyed.items():
            self._rekey(old, new)
        for entry, outcome in zip(batch, result.results, strict=True):
            op = entry.op
            if isinstance(op, NewInteraction) and op.id is not None:
                self.written_contacts += 1
                self._held_pending -= 1
                if isinstance(outcome, Recorded) and outcome.unlinked:
                    log.warning("held interaction %s stored unlinked: its customer is gone", op.id)
            if entry.future is not None and not entry.future.done():
                if isinstance(outcome, NotFound):
                    entry.future.set_exception(outcome)
                elif isinstance(outcome, Recorded):
                    entry.future.set_result(outcome)
        self.stats.batches += 1
        self.stats.ops_written += len(batch)
        self._written = batch[-1].seq
        if self._down_since is not None:
            log.info(
                "the store takes writes again after %.1f s: %d held contacts stored",
                time.monotonic() - self._down_since,
                self.held_contacts,
            )
            self._down_since = None
            self.held_contacts = 0
        self._progress()

    def _rekey(self, old: int, new: int) -> None:
        """Another writer took held id `old`: the contact is `new`; so are its writes."""
        self._rekeyed[old] = new
        self.stats.rekeyed += 1
        for entry in self._queue:
            op = entry.op
            if isinstance(op, InteractionUpdate) and op.interaction_id == old:
                op.interaction_id = new
            elif isinstance(op, EventRows):
                op.rows = [self._follow(row) for row in op.rows]
        log.warning(
            "held interaction id %s was taken by another writer while the store was away:"
            " the call is stored as %s, and its updates follow it",
            old,
            new,
        )

    def _give_up(self, entry: _Entry, exc: Exception) -> None:
        self._queue.remove(entry)
        if isinstance(entry.op, NewInteraction) and entry.op.id is not None:
            self._held_pending -= 1
        self._written = max(self._written, entry.seq)
        if entry.future is not None and not entry.future.done():
            entry.future.set_exception(exc)  # the caller's own mistake: it hears of it
        else:
            self.lost_writes += 1
            log.error(
                "write of interaction %s not stored: %s", interaction_of(entry.op), describe(exc)
            )
        self._progress()

    def _went_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "the store cannot be written (%s): contacts are served from memory and"
                " stored when it is back",
                describe(exc),
            )
        # Contacts waiting for their id get one now, in queue order: no attempt is in
        # flight, so none of these ids can also be an insert's answer.
        for entry in self._queue:
            op, future = entry.op, entry.future
            if isinstance(op, NewInteraction) and op.id is None and future is not None:
                op.id = self._next_id()
                entry.future = None
                future.set_result(Recorded(op.id, None, None))
        self._progress()

    def _progress(self) -> None:
        self._check_saturation()
        # Everyone waiting re-checks; later waiters wait on the fresh event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


__all__ = ["OpenedContact", "StoreError", "StoreUnavailable", "StoreWriter", "WriterStats"]
