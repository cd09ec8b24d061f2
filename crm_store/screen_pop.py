"""The screen pop read path: customer, contact points, timeline and open requests in one go.

A pop happens on every offered contact, so this path is tuned separately from the
repository functions:

- SQLite: one hop to a dedicated single-thread executor that owns its own read-only
  `sqlite3` connection (WAL, so it reads while the daemon writes). The three statements run
  there inside one read transaction (one consistent snapshot) and the result is built there,
  so the event loop pays for one thread round trip instead of one per aiosqlite call, and no
  ORM identity map or unit of work is involved.
- PostgreSQL: one prepared statement on a few asyncpg connections of the reader's own, in
  autocommit, that returns the customer row with its contact points, timeline and open
  requests as arrays of records: one network round trip, one snapshot, and the records
  (decoded by asyncpg in C, timestamps included) go straight into the Pop* classes, with
  no SQLAlchemy layer and no JSON in between.

Nothing is cached except phone normalisation (a pure function): every pop sees the latest
committed write.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import asyncpg  # type: ignore[import-untyped]  # no stubs; used in one class
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_store.errors import InvalidData, StoreError
from crm_store.models import OPEN_SR_STATUSES
from crm_store.phones import normalize_email, try_normalize_phone

log = logging.getLogger(__name__)
DEFAULT_LIMIT: Final = 20
# PostgreSQL: the reader's own connections, at most this many. Pops are short (well under
# a millisecond on the server), so a few connections carry thousands per second; more
# would only compete with the daemon's writes for the server's CPUs.
POSTGRES_POOL_SIZE: Final = 4
# How long a pop waits for a connection, a connect or the server: then the offer goes
# out without the history (the same bound as SQLite's busy_timeout).
POSTGRES_TIMEOUT_SECONDS: Final = 5.0
POSTGRES_APPLICATION_NAME: Final = "contact-center screen pop"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class PopCustomer:
    """The customer record as the agent sees it when the phone rings."""

    id: int
    name: str
    company: str | None
    tier: str
    language: str | None
    segment: str | None
    notes: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "name": self.name,
            "company": self.company,
            "tier": self.tier,
            "language": self.language,
            "segment": self.segment,
            "notes": self.notes,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class PopContactPoint:
    """One way to reach the customer; `value` is normalised, `raw` as it was entered."""

    id: int
    kind: str
    value: str
    raw: str
    label: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "kind": self.kind,
            "value": self.value,
            "raw": self.raw,
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class PopInteraction:
    """One past contact in the timeline (any channel)."""

    id: int
    channel: str
    direction: str
    address: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    queue: str | None
    agent_id: int | None
    disposition: str | None
    notes: str | None
    csat: int | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "channel": self.channel,
            "direction": self.direction,
            "address": self.address,
            "started_at": _iso(self.started_at),
            "answered_at": _iso(self.answered_at),
            "ended_at": _iso(self.ended_at),
            "queue": self.queue,
            "agent_id": self.agent_id,
            "disposition": self.disposition,
            "notes": self.notes,
            "csat": self.csat,
        }


@dataclass(frozen=True, slots=True)
class PopServiceRequest:
    """A service request that is not archived yet."""

    id: int
    title: str
    status: str
    assigned_to_id: int | None
    interaction_id: int | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "assigned_to_id": self.assigned_to_id,
            "interaction_id": self.interaction_id,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """Everything the agent desktop shows for an offered contact; immutable, safe to share.

    `looked_up_by` is "phone", "email" or "customer_id"; `key` is the normalised value
    searched for (E.164, lower-case email, the id), None when the input could not be read
    (caller id "anonymous"). `customer` is None when nobody matched.
    """

    customer: PopCustomer | None
    contact_points: tuple[PopContactPoint, ...]
    interactions: tuple[PopInteraction, ...]
    open_requests: tuple[PopServiceRequest, ...]
    looked_up_by: str
    key: str | None = None

    @property
    def found(self) -> bool:
        """True when a customer matched."""
        return self.customer is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the agent desktop (times as ISO 8601 UTC)."""
        return {
            "customer": None if self.customer is None else self.customer.to_json(),
            "contact_points": [c.to_json() for c in self.contact_points],
            "interactions": [i.to_json() for i in self.interactions],
            "open_requests": [r.to_json() for r in self.open_requests],
            "looked_up_by": self.looked_up_by,
            "key": self.key,
        }


def _names(cls: type[Any]) -> tuple[str, ...]:
    # The Pop* field names are the column names: one list drives both backends' SQL.
    return tuple(f.name for f in fields(cls))


_CUSTOMER_COLUMNS: Final = _names(PopCustomer)
_CONTACT_COLUMNS: Final = _names(PopContactPoint)
_INTERACTION_COLUMNS: Final = _names(PopInteraction)
_REQUEST_COLUMNS: Final = _names(PopServiceRequest)
_TIME_COLUMNS: Final = frozenset(
    {"created_at", "updated_at", "started_at", "answered_at", "ended_at"}
)


def _time_positions(columns: Sequence[str]) -> tuple[int, ...]:
    return tuple(i for i, name in enumerate(columns) if name in _TIME_COLUMNS)


def _utc_from_text(text: str | None) -> datetime | None:
    """Read a stored timestamp as aware UTC, the way `UTCDateTime` does for the ORM."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _RowBuilder:
    """Turns a row of text timestamps into a Pop* instance (shared by both backends)."""

    __slots__ = ("_cls", "_times")

    def __init__(self, cls: Callable[..., Any], columns: Sequence[str]) -> None:
        self._cls = cls
        self._times = _time_positions(columns)

    def __call__(self, row: Sequence[Any]) -> Any:
        values = list(row)
        for i in self._times:
            text = values[i]
            if text is not None:
                values[i] = _utc_from_text(text)
        return self._cls(*values)


_build_customer: Final = _RowBuilder(PopCustomer, _CUSTOMER_COLUMNS)
_build_contact: Final = _RowBuilder(PopContactPoint, _CONTACT_COLUMNS)
_build_interaction: Final = _RowBuilder(PopInteraction, _INTERACTION_COLUMNS)
_build_request: Final = _RowBuilder(PopServiceRequest, _REQUEST_COLUMNS)


def _empty(looked_up_by: str, key: str | None) -> ScreenPop:
    return ScreenPop(None, (), (), (), looked_up_by, key)


# --- SQLite ---------------------------------------------------------------------------
#
# Public so that bench/screen_pop.py measures exactly these statements as its floor.
# The indexes they rely on: uq_contact_points_kind_value, ix_contact_points_customer_id,
# ix_interactions_customer_started (customer_id, started_at, id: read backwards, no sort),
# ix_service_requests_customer_status.


def _cols(alias: str, columns: Sequence[str]) -> str:
    return ", ".join(f"{alias}.{name}" for name in columns)


_SELECT_CUSTOMER: Final = f"SELECT {_cols('c', _CUSTOMER_COLUMNS)}, {_cols('p', _CONTACT_COLUMNS)}"

SQLITE_CUSTOMER_BY_CONTACT: Final = (
    f"{_SELECT_CUSTOMER} FROM contact_points AS k"
    " JOIN customers AS c ON c.id = k.customer_id"
    " JOIN contact_points AS p ON p.customer_id = c.id"
    " WHERE k.kind = ? AND k.value = ? ORDER BY p.id"
)
SQLITE_CUSTOMER_BY_ID: Final = (
    f"{_SELECT_CUSTOMER} FROM customers AS c"
    " LEFT JOIN contact_points AS p ON p.customer_id = c.id"
    " WHERE c.id = ? ORDER BY p.id"
)
SQLITE_INTERACTIONS: Final = (
    f"SELECT {_cols('i', _INTERACTION_COLUMNS)} FROM interactions AS i"
    " WHERE i.customer_id = ? ORDER BY i.started_at DESC, i.id DESC LIMIT ?"
)
SQLITE_OPEN_REQUESTS: Final = (
    f"SELECT {_cols('s', _REQUEST_COLUMNS)} FROM service_requests AS s"
    f" WHERE s.customer_id = ? AND s.status IN ({', '.join(repr(s) for s in OPEN_SR_STATUSES)})"
    " ORDER BY s.created_at DESC, s.id DESC"
)

_N_CUSTOMER: Final = len(_CUSTOMER_COLUMNS)


def sqlite_file(url: str) -> Path:
    """The database file of a SQLite URL; the reader needs a file another connection shares."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise InvalidData(f"the screen pop reader needs a SQLite file path, not {database!r}")
    return Path(database).expanduser().resolve()


def _open_sqlite(path: Path) -> sqlite3.Connection:
    # mode=rw: a reader must never create an empty database where the real one is missing.
    # Autocommit (isolation_level=None) so BEGIN/COMMIT are ours: one snapshot per pop, and
    # no transaction left open between pops to pin an old snapshot (that would be staleness).
    conn = sqlite3.connect(
        f"{path.as_uri()}?mode=rw", uri=True, isolation_level=None, cached_statements=32
    )
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            # Same mode make_engine sets; without it this reader would block the writer.
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA query_only=ON")
        # Reads through mmap skip a read() syscall per page and, unlike the page cache,
        # survive another connection's commit.
        conn.execute("PRAGMA mmap_size=1073741824")
        conn.execute("PRAGMA cache_size=-16384")
    except BaseException:
        conn.close()
        raise
    return conn


class _SqlitePopper:
    """Runs a whole pop on the worker thread that owns the connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def pop(self, looked_up_by: str, key: str, params: tuple[Any, ...], limit: int) -> ScreenPop:
        conn = self._conn
        sql = SQLITE_CUSTOMER_BY_ID if looked_up_by == "customer_id" else SQLITE_CUSTOMER_BY_CONTACT
        conn.execute("BEGIN")
        try:
            rows = conn.execute(sql, params).fetchall()
            if not rows:
                return _empty(looked_up_by, key)
            customer_id = rows[0][0]
            interactions = conn.execute(SQLITE_INTERACTIONS, (customer_id, limit)).fetchall()
            requests = conn.execute(SQLITE_OPEN_REQUESTS, (customer_id,)).fetchall()
        finally:
            conn.execute("COMMIT")
        n = _N_CUSTOMER
        return ScreenPop(
            _build_customer(rows[0][:n]),
            # LEFT JOIN (by id) yields one row of NULLs for a customer without contact points.
            tuple(_build_contact(r[n:]) for r in rows if r[n] is not None),
            tuple(map(_build_interaction, interactions)),
            tuple(map(_build_request, requests)),
            looked_up_by,
            key,
        )

    def close(self) -> None:
        self._conn.close()


class _Backend(Protocol):
    async def pop(
        self, looked_up_by: str, key: str, params: tuple[Any, ...], limit: int
    ) -> ScreenPop: ...

    async def close(self) -> None: ...


class _SqliteBackend:
    """A single-thread executor owning one sqlite3 connection (check_same_thread holds)."""

    def __init__(self, executor: ThreadPoolExecutor, popper: _SqlitePopper) -> None:
        self._executor = executor
        self._popper = popper

    @classmethod
    async def open(cls, path: Path) -> _SqliteBackend:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="screen-pop")
        loop = asyncio.get_running_loop()
        try:
            # Created on the worker thread, so sqlite3's same-thread check stays on as a guard.
            conn = await loop.run_in_executor(executor, _open_sqlite, path)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise StoreError(f"cannot open {path} for screen pops: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, _SqlitePopper(conn))

    async def pop(
        self, looked_up_by: str, key: str, params: tuple[Any, ...], limit: int
    ) -> ScreenPop:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, self._popper.pop, looked_up_by, key, params, limit
            )
        except sqlite3.Error as exc:
            raise StoreError(f"screen pop failed: {exc}") from exc

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._popper.close)
        finally:
            # The queue is empty once close ran, so this only joins an idle thread.
            self._executor.shutdown(wait=True)


# --- PostgreSQL -----------------------------------------------------------------------
#
# One statement per pop: the customer's columns, then its contact points, newest
# interactions and open requests as arrays of anonymous records. asyncpg decodes those in
# C, timestamps included (timestamptz arrives as aware UTC whatever the session's
# TimeZone), so no JSON is built on the server nor parsed here. Public so that
# bench/screen_pop.py runs exactly these statements on a bare asyncpg connection.


def _pg_rows(alias: str, columns: Sequence[str]) -> str:
    return f"ROW({_cols(alias, columns)})"


_PG_SELECT: Final = (
    f"SELECT {_cols('c', _CUSTOMER_COLUMNS)},"
    f" ARRAY(SELECT {_pg_rows('p', _CONTACT_COLUMNS)} FROM contact_points AS p"
    " WHERE p.customer_id = c.id ORDER BY p.id) AS contact_points,"
    f" ARRAY(SELECT {_pg_rows('i', _INTERACTION_COLUMNS)} FROM interactions AS i"
    " WHERE i.customer_id = c.id ORDER BY i.started_at DESC, i.id DESC LIMIT $LIMIT)"
    " AS interactions,"
    f" ARRAY(SELECT {_pg_rows('s', _REQUEST_COLUMNS)} FROM service_requests AS s"
    f" WHERE s.customer_id = c.id AND s.status IN ({', '.join(repr(s) for s in OPEN_SR_STATUSES)})"
    " ORDER BY s.created_at DESC, s.id DESC) AS open_requests"
)
# $1 kind, $2 normalised value, $3 limit. The unique (kind, value) index finds the contact.
POSTGRES_POP_BY_CONTACT: Final = (
    _PG_SELECT.replace("$LIMIT", "$3")
    + " FROM contact_points AS k JOIN customers AS c ON c.id = k.customer_id"
    " WHERE k.kind = $1 AND k.value = $2"
)
# $1 customer id, $2 limit.
POSTGRES_POP_BY_ID: Final = (
    _PG_SELECT.replace("$LIMIT", "$2") + " FROM customers AS c WHERE c.id = $1"
)


class _Connections:
    """Up to POSTGRES_POOL_SIZE asyncpg connections of the reader's own, made as pops need
    them and kept while they work.

    Not asyncpg's Pool: that one shields every release in a task of its own and resets
    the session (a second round trip) on each, which together cost a quarter of a pop's
    CPU. A pop takes an idle connection without suspending, and gives it back the same
    way; one that failed or was interrupted mid-statement is closed, never handed out
    again (asyncpg leaves such a connection unusable), and the next pop makes a new one.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)  # connections in use or being made
        self._open: set[Any] = set()

    async def acquire(self) -> Any:
        """An idle connection, or a new one; waits (bounded) while all are in use."""
        if self._slots.locked():
            async with asyncio.timeout(POSTGRES_TIMEOUT_SECONDS):
                await self._slots.acquire()
        else:
            await self._slots.acquire()  # free: returns at once
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._open.discard(conn)  # the server closed it while it was idle
        try:
            conn = await asyncpg.connect(
                self._dsn,
                timeout=POSTGRES_TIMEOUT_SECONDS,
                command_timeout=POSTGRES_TIMEOUT_SECONDS,
                # Named, so pg_stat_activity tells the reader's connections from the rest.
                server_settings={"application_name": POSTGRES_APPLICATION_NAME},
            )
        except BaseException:
            self._slots.release()
            raise
        self._open.add(conn)
        return conn

    def release(self, conn: Any, *, broken: bool = False) -> None:
        """Give `conn` back; a broken one is closed instead."""
        if broken or conn.is_closed():
            conn.terminate()
            self._open.discard(conn)
        else:
            self._idle.append(conn)
        self._slots.release()

    async def close(self) -> None:
        """Close every connection (the reader is closed once pops have stopped)."""
        conns, self._idle = list(self._open), []
        self._open.clear()
        for conn in conns:
            try:
                await asyncio.wait_for(conn.close(), POSTGRES_TIMEOUT_SECONDS)
            except (*_PG_ERRORS, TimeoutError):
                conn.terminate()


class _PostgresBackend:
    """Connections of the reader's own: one statement, one round trip per pop.

    They are apart from the daemon's engine so that a pop neither waits behind the
    routing writes for a pooled connection nor pays SQLAlchemy's checkout (a pre-ping
    round trip on the daemon's engine), execution and result layers: the statement's
    records are shaped into the Pop* classes directly. asyncpg prepares each statement
    once per connection (its statement cache) and runs it in autocommit: no BEGIN or
    ROLLBACK round trips, one snapshot per statement.
    """

    def __init__(self, connections: _Connections) -> None:
        self._connections = connections

    @classmethod
    async def open(cls, url: str) -> _PostgresBackend:
        # No connection is required at open (the daemon starts, and pops fail over to
        # "unavailable", while the database is down); one is made now if it can be, so the
        # first offered contact does not pay for the connect.
        connections = _Connections(_asyncpg_dsn(url), POSTGRES_POOL_SIZE)
        try:
            connections.release(await connections.acquire())
        except (*_PG_ERRORS, TimeoutError) as exc:
            log.warning("screen pop reader: no PostgreSQL connection yet (%s)", exc)
        return cls(connections)

    async def pop(
        self, looked_up_by: str, key: str, params: tuple[Any, ...], limit: int
    ) -> ScreenPop:
        sql = POSTGRES_POP_BY_ID if looked_up_by == "customer_id" else POSTGRES_POP_BY_CONTACT
        row = None
        for attempt in (1, 2):
            try:
                row = await self._fetch(sql, (*params, limit))
                break
            except TimeoutError:
                raise
            except _PG_RETRY as exc:
                # A connection the server dropped (restart, terminated backend) or a
                # statement a schema change invalidated: the read is safe to retry once.
                if attempt == 2:
                    raise StoreError(f"screen pop failed: {exc}") from exc
            except _PG_ERRORS as exc:
                raise StoreError(f"screen pop failed: {exc}") from exc
        if row is None:
            return _empty(looked_up_by, key)
        n = _N_CUSTOMER
        return ScreenPop(
            PopCustomer(*row[:n]),
            tuple(PopContactPoint(*r) for r in row[n]),
            tuple(PopInteraction(*r) for r in row[n + 1]),
            tuple(PopServiceRequest(*r) for r in row[n + 2]),
            looked_up_by,
            key,
        )

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> Any:
        conn = await self._connections.acquire()
        try:
            row = await conn.fetchrow(sql, *args)
        except BaseException:
            # Failed or cancelled mid-statement: not handed out again.
            self._connections.release(conn, broken=True)
            raise
        self._connections.release(conn)
        return row

    async def close(self) -> None:
        await self._connections.close()


# A dropped connection, or a prepared statement a schema change made stale: worth one retry.
_PG_RETRY: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.InvalidCachedStatementError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)
# Anything else the driver or the network raises; TimeoutError is let through as it is
# (the routing treats it as the store being unavailable, see routing.intake).
_PG_ERRORS: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


def _asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from a SQLAlchemy URL (its driver name dropped)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- the reader -----------------------------------------------------------------------


class ScreenPopReader:
    """Builds screen pops; open one per process with `open`, and `close` it at shut-down."""

    def __init__(self, backend: _Backend, *, default_region: str) -> None:
        self._backend = backend
        self._region = default_region
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, engine: AsyncEngine | None = None, *, default_region: str
    ) -> ScreenPopReader:
        """A reader for the store at `url`.

        It reads through connections of its own, never the daemon's pool: on SQLite a
        read-only connection to the file (so the database must already exist), on
        PostgreSQL up to POSTGRES_POOL_SIZE asyncpg connections (made as pops need
        them; the database may be down at open). `engine` is accepted so callers can pass
        the daemon's and is left alone. `default_region` ("GB") reads national numbers.
        """
        backend: _Backend
        if make_url(url).get_backend_name() == "sqlite":
            backend = await _SqliteBackend.open(sqlite_file(url))
        else:
            backend = await _PostgresBackend.open(url)
        return cls(backend, default_region=default_region)

    async def by_phone(self, raw: str, *, limit: int = DEFAULT_LIMIT) -> ScreenPop:
        """The pop for a phone number in any format; empty for "anonymous" and the like."""
        number = try_normalize_phone(raw, self._region)
        if number is None:
            return _empty("phone", None)
        return await self._pop("phone", number, ("phone", number), limit)

    async def by_email(self, raw: str, *, limit: int = DEFAULT_LIMIT) -> ScreenPop:
        """The pop for an email address, whatever its case; empty if it is not an address."""
        try:
            address = normalize_email(raw)
        except InvalidData:
            return _empty("email", None)
        return await self._pop("email", address, ("email", address), limit)

    async def by_customer_id(self, customer_id: int, *, limit: int = DEFAULT_LIMIT) -> ScreenPop:
        """The pop for a known customer (a callback, a chat from a logged-in customer)."""
        return await self._pop("customer_id", str(customer_id), (customer_id,), limit)

    async def by_contact(
        self, kind: str, raw: str | None, *, limit: int = DEFAULT_LIMIT
    ) -> ScreenPop:
        """The pop for an address of the contact-point kind `kind` (a channel's: phone,
        email); empty for a kind no customer is found by (a chat visitor's handle)."""
        if kind == "email" and raw:
            return await self.by_email(raw, limit=limit)
        if kind == "phone":
            return await self.by_phone(raw or "", limit=limit)
        return _empty(kind, None)

    async def close(self) -> None:
        """Release the connection (and the worker thread on SQLite); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._backend.close()

    async def _pop(
        self, looked_up_by: str, key: str, params: tuple[Any, ...], limit: int
    ) -> ScreenPop:
        if self._closed:
            raise RuntimeError("the screen pop reader is closed")
        if limit < 0:
            raise InvalidData(f"limit must be zero or more, not {limit}")
        return await self._backend.pop(looked_up_by, key, params, limit)
