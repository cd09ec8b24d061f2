"""Opening a contact on SQLite in one thread hop: the intake's hot path.

Through the async ORM over aiosqlite, recording a new contact took about two dozen round
trips to aiosqlite's thread (begin, select, load, insert, commit, reset), some 3-4 ms of
CPU per call: at 100 calls a second that alone loaded the event loop. Here one dedicated
connection on one worker thread does the look-up and the insert in a single call, the
way the screen pop reader reads. Same rows, same storage formats as the ORM writes.

The same connection and thread are the SQLite side of the daemon's one store writer
(routing.store_writer): `apply` writes a whole batch (new contacts, their updates, contact
events) in one `BEGIN IMMEDIATE` transaction and one thread hop, so the hot path's writes
never compete with each other for SQLite's single write lock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from crm_store.errors import NotFound
from crm_store.screen_pop import sqlite_file
from crm_store.write_batch import BatchResult, Op, apply_batch

_LOOKUP = (
    "SELECT c.id, c.tier FROM contact_points AS cp JOIN customers AS c ON c.id = cp.customer_id"
    " WHERE cp.kind = ? AND cp.value = ? LIMIT 1"
)
_INSERT = (
    "INSERT INTO interactions (customer_id, channel, direction, external_id, address,"
    " address_name, started_at, queue, ivr_path, ivr_inputs) VALUES (?,?,?,?,?,?,?,?,?,?)"
)


# How long an insert waits for another writer's lock. Past it, the daemon holds the
# contact in memory (routing.intake.StoreOutbox): a caller should not hear
# seconds of silence before the IVR because something else holds the database.
BUSY_TIMEOUT_MS = 1000


class WritesHeld(Exception):
    """The store is known to be unavailable: the write was not tried (it is being held)."""


def _text(moment: datetime) -> str:
    # SQLAlchemy's SQLite storage of a UTC timestamp (what UTCDateTime writes).
    return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class SqliteIntake:
    """One read-write connection on one thread, for `open` only."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cc-intake")
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._engine: Engine | None = None
        # Set while the outbox holds writes: calls already queued for this thread skip
        # their insert instead of each waiting out the busy timeout in turn.
        self.hold_writes = False

    @classmethod
    async def open(cls, url: str) -> SqliteIntake:
        """A writer for the SQLite store at `url` (the database must exist)."""
        intake = cls(sqlite_file(url))
        await asyncio.get_running_loop().run_in_executor(intake._executor, intake._connect)
        return intake

    def _connect(self) -> None:
        conn = sqlite3.connect(f"{self._path.as_uri()}?mode=rw", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._conn = conn
        # SQLAlchemy Core over this very connection (on this thread only), for `apply`:
        # the ORM's column types and storage formats without the async round trips.
        self._engine = create_engine("sqlite://", creator=lambda: conn, poolclass=StaticPool)

    async def apply(self, ops: list[Op]) -> BatchResult:
        """Write `ops` in one transaction (see crm_store.write_batch); all or nothing."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._apply, ops)

    def _apply(self, ops: list[Op]) -> BatchResult:
        assert self._engine is not None
        with self._engine.connect() as conn:
            # The write lock first: nothing is read that a competing writer could change.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                result = apply_batch(conn, ops)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return result

    async def open_contact(
        self,
        *,
        kind: str | None,
        value: str | None,
        customer_id: int | None,
        row: dict[str, Any],
    ) -> tuple[int, int | None, str | None]:
        """Look the customer up (by contact point, or by id) and insert the interaction."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._open, kind, value, customer_id, row
        )

    def _open(
        self, kind: str | None, value: str | None, customer_id: int | None, row: dict[str, Any]
    ) -> tuple[int, int | None, str | None]:
        conn = self._conn
        assert conn is not None
        if self.hold_writes:
            raise WritesHeld("writes are held until the store is back")
        conn.execute("BEGIN IMMEDIATE")
        try:
            found: tuple[int, str] | None = None
            if customer_id is not None:
                found = conn.execute(
                    "SELECT id, tier FROM customers WHERE id = ?", (customer_id,)
                ).fetchone()
                if found is None:
                    raise NotFound(f"no customer with id {customer_id}")
            elif kind is not None and value is not None:
                found = conn.execute(_LOOKUP, (kind, value)).fetchone()
            cursor = conn.execute(
                _INSERT,
                (
                    found[0] if found else None,
                    row["channel"],
                    row["direction"],
                    row["external_id"],
                    row["address"],
                    row.get("address_name"),
                    _text(row["started_at"]),
                    row["queue"],
                    _json(row["ivr_path"]),
                    _json(row["ivr_inputs"]),
                ),
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        new_id = cursor.lastrowid
        assert new_id is not None
        return int(new_id), (found[0] if found else None), (found[1] if found else None)

    async def close(self) -> None:
        """Close the connection and the thread."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.get_running_loop().run_in_executor(self._executor, engine.dispose)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)
