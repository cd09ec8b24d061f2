"""The screen pop read path: customer, contact points, timeline and open requests in one go.

A pop happens on every offered contact, so this path is tuned separately from the
repository functions:

- SQLite: one hop to a dedicated single-thread executor that owns its own read-only
  `sqlite3` connection (WAL, so it reads while the daemon writes). The three statements run
  there inside one read transaction (one consistent snapshot) and the result is built there,
  so the event loop pays for one thread round trip instead of one per aiosqlite call, and no
  ORM identity map or unit of work is involved.
- PostgreSQL: one SQLAlchemy Core statement on the daemon's async engine, in autocommit,
  that returns the customer row with its contact points, timeline and open requests
  aggregated as JSON: one network round trip, one snapshot.

Nothing is cached except phone normalisation (a pure function): every pop sees the latest
committed write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import JSON, ColumnElement, Select, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crm_store.errors import InvalidData, StoreError
from crm_store.models import (
    OPEN_SR_STATUSES,
    ContactPoint,
    Customer,
    Interaction,
    ServiceRequest,
)
from crm_store.phones import normalize_email, try_normalize_phone

DEFAULT_LIMIT: Final = 20


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


def _pg_json_text(column: Any) -> Any:
    # Times inside JSON become text; render them in UTC explicitly so the session's
    # TimeZone setting cannot change what is read back.
    if column.key in _TIME_COLUMNS:
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US')
    return column


def _pg_array(table: Any, columns: Sequence[str]) -> Any:
    return func.json_build_array(*(_pg_json_text(table.c[name]) for name in columns))


def _pg_statement(by: str) -> Select[Any]:
    customers = Customer.__table__
    points = ContactPoint.__table__.alias("p")
    interactions = Interaction.__table__
    requests = ServiceRequest.__table__
    empty: ColumnElement[Any] = literal_column("'[]'::json")

    contact_json = (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(_pg_array(points, _CONTACT_COLUMNS), points.c.id)),
                empty,
                type_=JSON,
            )
        )
        .where(points.c.customer_id == customers.c.id)
        .correlate(customers)
        .scalar_subquery()
    )
    newest = (
        select(*(interactions.c[name] for name in _INTERACTION_COLUMNS))
        .where(interactions.c.customer_id == customers.c.id)
        .order_by(interactions.c.started_at.desc(), interactions.c.id.desc())
        .limit(bindparam("limit"))
        .correlate(customers)
        .subquery("i")
    )
    interaction_json = (
        select(
            func.coalesce(
                func.json_agg(
                    aggregate_order_by(
                        _pg_array(newest, _INTERACTION_COLUMNS),
                        newest.c.started_at.desc(),
                        newest.c.id.desc(),
                    )
                ),
                empty,
                type_=JSON,
            )
        )
        .correlate(customers)
        .scalar_subquery()
    )
    request_json = (
        select(
            func.coalesce(
                func.json_agg(
                    aggregate_order_by(
                        _pg_array(requests, _REQUEST_COLUMNS),
                        requests.c.created_at.desc(),
                        requests.c.id.desc(),
                    )
                ),
                empty,
                type_=JSON,
            )
        )
        .where(
            requests.c.customer_id == customers.c.id,
            requests.c.status.in_(OPEN_SR_STATUSES),
        )
        .correlate(customers)
        .scalar_subquery()
    )
    stmt = select(
        *(customers.c[name] for name in _CUSTOMER_COLUMNS),
        contact_json.label("contact_points"),
        interaction_json.label("interactions"),
        request_json.label("open_requests"),
    )
    if by == "customer_id":
        return stmt.where(customers.c.id == bindparam("customer_id"))
    matched = (
        select(ContactPoint.customer_id)
        .where(ContactPoint.kind == bindparam("kind"), ContactPoint.value == bindparam("value"))
        .scalar_subquery()
    )
    return stmt.where(customers.c.id == matched)


def _decode(value: Any) -> list[Any]:
    # asyncpg hands json back as text unless the column is typed; accept both.
    if isinstance(value, str):
        result: list[Any] = json.loads(value)
        return result
    return list(value)


class _PostgresBackend:
    """One Core statement per pop; autocommit so no BEGIN/ROLLBACK round trips."""

    def __init__(self, engine: AsyncEngine, owns_engine: bool) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._owned = engine if owns_engine else None
        self._by_contact = _pg_statement("contact")
        self._by_id = _pg_statement("customer_id")

    async def pop(
        self, looked_up_by: str, key: str, params: tuple[Any, ...], limit: int
    ) -> ScreenPop:
        if looked_up_by == "customer_id":
            stmt, binds = self._by_id, {"customer_id": params[0], "limit": limit}
        else:
            stmt, binds = self._by_contact, {"kind": params[0], "value": params[1], "limit": limit}
        row = None
        for attempt in (1, 2):
            try:
                async with self._engine.connect() as conn:
                    row = (await conn.execute(stmt, binds)).first()
                break
            except DBAPIError as exc:
                # A pooled connection the server dropped (restart): the read is safe to retry
                # once, which saves a pre-ping round trip on every pop.
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise StoreError(f"screen pop failed: {exc.orig}") from exc
        if row is None:
            return _empty(looked_up_by, key)
        n = _N_CUSTOMER
        customer = PopCustomer(*row[:n])
        points, history, requests = (_decode(v) for v in row[n : n + 3])
        return ScreenPop(
            customer,
            tuple(_build_contact(r) for r in points),
            tuple(_build_interaction(r) for r in history),
            tuple(_build_request(r) for r in requests),
            looked_up_by,
            key,
        )

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.dispose()


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
        """A reader for the store at `url`; on PostgreSQL it shares `engine`'s pool if given.

        On SQLite the reader opens its own read-only connection to the file (the daemon's
        engine, if passed, is left alone), so the database must already exist.
        `default_region` ("GB") reads national phone numbers.
        """
        backend: _Backend
        if make_url(url).get_backend_name() == "sqlite":
            backend = await _SqliteBackend.open(sqlite_file(url))
        elif engine is not None:
            backend = _PostgresBackend(engine, owns_engine=False)
        else:
            # No pre-ping: the pop retries once on a dropped connection instead, which keeps
            # a pop at one round trip.
            backend = _PostgresBackend(create_async_engine(url), owns_engine=True)
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
