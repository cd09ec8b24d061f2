"""Screen pop latency and CPU on a large CRM store, SQLite or PostgreSQL, 20 interactions each.

Run from the repository root:

    .venv/bin/python bench/screen_pop.py [--quick] [--customers N] [--interactions N]
        [--database-url URL] [--db PATH] [--rounds N] [--pops N] [--no-pin]

The store is SQLite by default: a file under bench/.data, built once and reused (--db
names another). With `--database-url postgresql+asyncpg://127.0.0.1:5432/test` it is a
scratch PostgreSQL database (cc_bench_<random>, created next to the one named, loaded with
COPY, dropped at the end). Defaults: 1M customers / 5M interactions on SQLite, 500k / 2.5M
on PostgreSQL; --quick 100k / 500k.

Every fifth customer, up to what the interactions allow, has exactly 20 interactions,
spread over the data set's two years (so on disk they are scattered, as a real history
is); the others get the rest, unevenly (5% go to 100 customers, 25% to the first
10,000). Every measured pop is of one of those customers: it shows the 20 interactions
the figure claims, and the bench prints what the pops returned (and fails if any pop
showed another number).

Measured, in --rounds rounds (medians of the rounds are quoted; each round interleaves
the reader and its baseline on the same numbers, so both see the same machine):

  (a) ScreenPopReader.by_phone, one pop at a time, phone numbers in random formats
      (parsing included): median and p99 latency, CPU per pop of the whole process
      (time.process_time, so the SQLite reader's worker thread counts) and of the event
      loop's thread alone (time.thread_time);
  (b) the floor, the same rows from a bare driver in this process, numbers already
      normalised: on SQLite the reader's three statements on sqlite3, on PostgreSQL the
      reader's one statement prepared once on a bare asyncpg connection. The ratios
      reader / floor are of the same round;
  (c) once: the reader with 16 concurrent pops on one event loop (pops/s, CPU per pop);
  (d) once: a naive async ORM pop (AsyncSession, selectinload, three selects).

The process is pinned to one CPU (unless --no-pin) because the target is "on one core";
the load average is printed beside the figures (the machine is small and shared). It
prints a table and ends with one line holding a JSON object of all figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # standalone from the repository root, installed or not
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.dialects import postgresql as postgresql_dialect  # noqa: E402
from sqlalchemy.dialects import sqlite as sqlite_dialect  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402
from sqlalchemy.schema import CreateIndex  # noqa: E402

from bench.scratch_db import (  # noqa: E402
    asyncpg_dsn,
    describe_load,
    is_postgres,
    load_average,
    scratch_database,
)
from crm_store.database import make_engine, make_sessionmaker  # noqa: E402
from crm_store.models import (  # noqa: E402
    CHANNELS,
    OPEN_SR_STATUSES,
    TIERS,
    Base,
    ContactPoint,
    Customer,
    Interaction,
    ServiceRequest,
)
from crm_store.phones import normalize_phone  # noqa: E402
from crm_store.screen_pop import (  # noqa: E402
    POSTGRES_POP_BY_CONTACT,
    SQLITE_CUSTOMER_BY_CONTACT,
    SQLITE_INTERACTIONS,
    SQLITE_OPEN_REQUESTS,
    ScreenPopReader,
)

FULL = {"sqlite": (1_000_000, 5_000_000), "postgresql": (500_000, 2_500_000)}
QUICK = (100_000, 500_000)
DATA_DIR = ROOT / "bench" / ".data"
DEFAULT_DB = DATA_DIR / "screen_pop.db"
FORMAT_VERSION = 2  # 2: the 20-interaction cohort
SEED = 20240301
CONCURRENCY = 16
HISTORY = 20  # interactions of every measured customer, and the pop's limit
COHORT_EVERY = 5  # every fifth customer is in the measured cohort
ROUNDS = 5
TARGET_MEDIAN_MS = 1.0
TARGET_P99_MS = 3.0
TARGET_CPU_MS = 1.0
TARGET_POPS_PER_S = 1000.0


# --- the data set ------------------------------------------------------------------------
#
# Phone numbers follow from the customer id, so the measurement knows every number without
# reading the database: a London number for everyone, a mobile for 3 in 10, an email for 4 in
# 10. Interactions: HISTORY each for the cohort (see cohort_size), the rest spread unevenly
# over the other customers.


def landline(cid: int) -> str:
    """E.164 London number of customer `cid`: +44 20 7xxx xxxx."""
    return f"+44207{cid:07d}"


def has_mobile(cid: int) -> bool:
    """Whether customer `cid` has a mobile number too."""
    return cid % 10 < 3


def mobile(cid: int) -> str:
    """E.164 mobile number of customer `cid`: +44 79xx xxxxxx."""
    return f"+4479{cid:08d}"


def has_email(cid: int) -> bool:
    """Whether customer `cid` has an email address."""
    return cid % 5 < 2


def cohort_size(customers: int, interactions: int) -> int:
    """How many customers have exactly HISTORY interactions: ids COHORT_EVERY, 2 x ...

    Every fifth customer, or fewer when the interactions do not stretch that far."""
    return min(customers // COHORT_EVERY, interactions // HISTORY)


def cohort_member(n: int) -> int:
    """The customer id of the cohort's n-th member (n from 0)."""
    return (n + 1) * COHORT_EVERY


def skewed_customer(rnd: Callable[[], float], customers: int) -> int:
    """A customer id drawn with the uneven spread of the other interactions."""
    r = rnd()
    if r < 0.05:
        return 1 + int(rnd() * min(100, customers))
    if r < 0.30:
        return 1 + int(rnd() * min(10_000, customers))
    return 1 + int(rnd() * customers)


class Clock:
    """Fast text timestamps in SQLAlchemy's SQLite storage format (naive UTC).

    PostgreSQL reads the same text as timestamptz in a UTC session."""

    def __init__(self, start: datetime, days: int) -> None:
        self.days = [(start + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(days + 2)]
        self.tods = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
        self.micros = [f".{(n * 7919) % 1_000_000:06d}" for n in range(1024)]

    def text(self, seconds: int, micro: int = 0) -> str:
        """The storage text of `start + seconds`."""
        day, tod = divmod(seconds, 86400)
        return self.days[day] + " " + self.tods[tod] + self.micros[micro & 1023]


START = datetime(2023, 1, 1, tzinfo=UTC)
SPAN_DAYS = 700
CUSTOMER_COLUMNS = [
    "id",
    "name",
    "company",
    "tier",
    "language",
    "segment",
    "notes",
    "created_at",
    "updated_at",
]
CONTACT_COLUMNS = ["customer_id", "kind", "value", "raw", "label", "created_at"]
INTERACTION_COLUMNS = [
    "customer_id",
    "channel",
    "direction",
    "external_id",
    "address",
    "started_at",
    "answered_at",
    "ended_at",
    "queue",
    "disposition",
    "notes",
    "csat",
]
REQUEST_COLUMNS = ["customer_id", "title", "status", "created_at", "updated_at"]


def _customer_rows(customers: int, clock: Clock) -> Iterator[tuple[Any, ...]]:
    first = ("Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Edsger")
    last = ("Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton")
    companies = (None, None, "Initech", "Globex", "Umbrella", "Hooli", "Vandelay")
    segments = (None, "retail", "smb", "enterprise")
    languages = ("en", "en", "en", "fr", "de", "es")
    span = SPAN_DAYS * 86400
    for cid in range(1, customers + 1):
        created = clock.text(cid * 7919 % span, cid)
        yield (
            cid,
            f"{first[cid % 9]} {last[cid % 7]} {cid}",
            companies[cid % 7],
            TIERS[cid % 4],
            languages[cid % 6],
            segments[cid % 4],
            None,
            created,
            created,
        )


def _contact_rows(customers: int, clock: Clock) -> Iterator[tuple[Any, ...]]:
    # Sorted by (kind, value) so the unique index grows at its right edge during the load.
    created = clock.text(0)
    for cid in range(1, customers + 1):
        number = landline(cid)
        national = f"020 {number[6:10]} {number[10:]}"
        yield (cid, "phone", number, national, "home", created)
    for cid in range(1, customers + 1):
        if has_mobile(cid):
            yield (cid, "phone", mobile(cid), "0" + mobile(cid)[3:], "mobile", created)
    for cid in range(1, customers + 1):
        if has_email(cid):
            address = f"c{cid:08d}@example.com"
            yield (cid, "email", address, address.upper(), None, created)


def interaction_owners(customers: int, interactions: int) -> array[int]:
    """The customer of each interaction, in time order: the cohort's HISTORY each, the
    rest to others, shuffled so that one customer's history is spread over the years."""
    cohort = cohort_size(customers, interactions)
    owners = array("l")
    members = range(COHORT_EVERY, cohort * COHORT_EVERY + 1, COHORT_EVERY)
    for _ in range(HISTORY):
        owners.extend(members)
    rng = random.Random(SEED)
    rnd = rng.random
    last_member = cohort * COHORT_EVERY
    for _ in range(interactions - len(owners)):
        cid = skewed_customer(rnd, customers)
        if cid % COHORT_EVERY == 0 and cid <= last_member:
            # Not a member's: their count stays exactly HISTORY. A neighbour takes it.
            cid = cid - 1
        owners.append(cid)
    rng.shuffle(owners)  # type: ignore[arg-type]
    return owners


def _interaction_rows(customers: int, interactions: int, clock: Clock) -> Iterator[tuple[Any, ...]]:
    owners = interaction_owners(customers, interactions)
    rng = random.Random(SEED + 3)
    rnd = rng.random
    span = SPAN_DAYS * 86400
    step = span / max(1, interactions)
    channels = CHANNELS
    queues = ("billing", "support", "sales", "retention")
    dispositions = ("resolved", "callback", "escalated", "no_answer")
    for n, cid in enumerate(owners):
        channel = channels[int(rnd() * 4)]
        t = int(n * step)
        answered = t + 3 + (n % 57)
        ended = answered + 30 + (n % 1777)
        yield (
            cid,
            channel,
            "inbound" if n % 5 else "outbound",
            f"{1_700_000_000 + n}.{n % 97}",
            landline(cid) if channel in ("voice", "sms") else None,
            clock.text(t, n),
            clock.text(answered, n) if n % 7 else None,
            clock.text(ended, n),
            queues[n % 4],
            dispositions[n % 4],
            None,
            (n % 5) + 1 if n % 3 == 0 else None,
        )


def _request_rows(customers: int, count: int, clock: Clock) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED + 1)
    rnd = rng.random
    statuses = ("archived",) * 6 + OPEN_SR_STATUSES
    span = SPAN_DAYS * 86400
    for n in range(count):
        cid = skewed_customer(rnd, customers)
        created = clock.text(int(n * span / count), n)
        yield (cid, f"Request {n}", statuses[n % len(statuses)], created, created)


def _tables(customers: int, interactions: int) -> list[tuple[str, list[str], Iterator[Any]]]:
    """(table, columns, rows) in load order."""
    clock = Clock(START, SPAN_DAYS)
    requests = max(1, customers // 5)
    return [
        ("customers", CUSTOMER_COLUMNS, _customer_rows(customers, clock)),
        ("contact_points", CONTACT_COLUMNS, _contact_rows(customers, clock)),
        ("interactions", INTERACTION_COLUMNS, _interaction_rows(customers, interactions, clock)),
        ("service_requests", REQUEST_COLUMNS, _request_rows(customers, requests, clock)),
    ]


def generate_sqlite(path: Path, customers: int, interactions: int) -> float:
    """Build the data set into the SQLite file `path`; return the seconds it took."""
    began = time.perf_counter()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    indexes = [idx for table in Base.metadata.sorted_tables for idx in table.indexes]

    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode=OFF",
        "synchronous=OFF",
        "locking_mode=EXCLUSIVE",
        "temp_store=MEMORY",
        "cache_size=-1000000",
    ):
        conn.execute(f"PRAGMA {pragma}")
    # Indexes are built after the load: one sort each instead of millions of random inserts.
    for idx in indexes:
        conn.execute(f'DROP INDEX "{idx.name}"')
    for table, columns, rows in _tables(customers, interactions):
        t = time.perf_counter()
        marks = ",".join("?" * len(columns))
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        conn.execute("COMMIT")
        print(f"  loaded {table:<16} {time.perf_counter() - t:6.1f} s", flush=True)
    t = time.perf_counter()
    dialect = sqlite_dialect.dialect()
    for idx in indexes:
        conn.execute(str(CreateIndex(idx).compile(dialect=dialect)))
    print(f"  built {len(indexes)} indexes     {time.perf_counter() - t:6.1f} s", flush=True)
    seconds = time.perf_counter() - began
    conn.execute(
        "CREATE TABLE bench_meta (version INTEGER, customers INTEGER, interactions INTEGER,"
        " generation_seconds REAL)"
    )
    conn.execute(
        "INSERT INTO bench_meta VALUES (?,?,?,?)",
        (FORMAT_VERSION, customers, interactions, seconds),
    )
    conn.close()
    # The daemon's mode; the reader relies on it to read alongside a writer.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return time.perf_counter() - began


def existing_generation(path: Path, customers: int, interactions: int) -> float | None:
    """Seconds the reusable data set at `path` took to build, or None to rebuild it."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT version, customers, interactions, generation_seconds FROM bench_meta"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if row is None or tuple(row[:3]) != (FORMAT_VERSION, customers, interactions):
        return None
    return float(row[3])


def _copy_text(value: Any) -> str:
    # COPY's text format; the generated values hold no tab, newline or backslash.
    return "\\N" if value is None else str(value)


async def _copy_chunks(rows: Iterator[tuple[Any, ...]]) -> AsyncIterator[bytes]:
    lines: list[str] = []
    for row in rows:
        lines.append("\t".join(map(_copy_text, row)))
        if len(lines) == 20_000:
            yield ("\n".join(lines) + "\n").encode()
            lines.clear()
    if lines:
        yield ("\n".join(lines) + "\n").encode()


async def generate_postgres(url: str, customers: int, interactions: int) -> float:
    """Build the data set into the (empty, scratch) PostgreSQL database at `url` with COPY."""
    began = time.perf_counter()
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()
    indexes = [idx for table in Base.metadata.sorted_tables for idx in table.indexes]
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings={"timezone": "UTC"})
    try:
        # A scratch database: no foreign-key triggers during the load, no fsync per COPY.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for idx in indexes:
            await conn.execute(f'DROP INDEX "{idx.name}"')
        for table, columns, rows in _tables(customers, interactions):
            t = time.perf_counter()
            await conn.copy_to_table(
                table, source=_copy_chunks(rows), columns=columns, format="text"
            )
            print(f"  copied {table:<16} {time.perf_counter() - t:6.1f} s", flush=True)
        t = time.perf_counter()
        dialect = postgresql_dialect.dialect()
        for idx in indexes:
            await conn.execute(str(CreateIndex(idx).compile(dialect=dialect)))
        # Ids were given explicitly for customers: the sequence must follow.
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('customers', 'id'), max(id)) FROM customers"
        )
        await conn.execute("VACUUM ANALYZE")
        print(
            f"  indexed, analysed    {time.perf_counter() - t:6.1f} s ({len(indexes)} indexes)",
            flush=True,
        )
    finally:
        await conn.close()
    return time.perf_counter() - began


# --- the measurements --------------------------------------------------------------------


def phone_formats(cid: int, rng: random.Random) -> str:
    """One of the customer's numbers, written the way a caller id or an agent might."""
    number = mobile(cid) if has_mobile(cid) and rng.random() < 0.5 else landline(cid)
    digits = number[3:]  # national significant number
    if digits.startswith("20"):
        groups = f"{digits[:2]} {digits[2:6]} {digits[6:]}"
    else:
        groups = f"{digits[:4]} {digits[4:]}"
    style = rng.randrange(4)
    if style == 0:
        return f"0{groups}"
    if style == 1:
        return f"+44 {groups}"
    if style == 2:
        return f"0044 {groups}"
    return number


def _p99(ordered: Sequence[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@dataclass
class Series:
    """One measured series: latencies and CPU per pop, in ms."""

    count: int
    median_ms: float
    p99_ms: float
    cpu_ms: float  # whole process (time.process_time) per pop
    loop_cpu_ms: float  # the event loop's thread (time.thread_time) per pop

    @classmethod
    def of(cls, seconds: Sequence[float], cpu: float, loop_cpu: float) -> Series:
        """From per-pop times and the CPU seconds the whole series took."""
        ordered = sorted(seconds)
        n = len(ordered)
        return cls(
            n,
            statistics.median(ordered) * 1000,
            _p99(ordered) * 1000,
            cpu / n * 1000,
            loop_cpu / n * 1000,
        )


Pop = Callable[[Any], Awaitable[int]]  # one pop; returns how many interactions it showed


async def timed(pop: Pop, items: Sequence[Any]) -> tuple[Series, list[int]]:
    """Pop `items` one at a time; time each, and the CPU of the whole series."""
    times: list[float] = []
    shown: list[int] = []
    clock = time.perf_counter
    cpu, loop_cpu = time.process_time(), time.thread_time()
    for item in items:
        t = clock()
        n = await pop(item)
        times.append(clock() - t)
        shown.append(n)
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    return Series.of(times, cpu, loop_cpu), shown


async def concurrent(pop: Pop, items: Sequence[Any], workers: int) -> tuple[Series, float]:
    """Pop `items` with `workers` tasks; the series and pops/s."""
    it = iter(items)
    times: list[float] = []
    clock = time.perf_counter

    async def worker() -> None:
        for item in it:
            t = clock()
            await pop(item)
            times.append(clock() - t)

    cpu, loop_cpu = time.process_time(), time.thread_time()
    began = clock()
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    wall = clock() - began
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    return Series.of(times, cpu, loop_cpu), len(items) / wall


class SqliteFloor:
    """The reader's three statements on a plain sqlite3 connection: the floor."""

    name = "bare sqlite3, the reader's 3 statements"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA query_only=ON")
        self.conn.execute("PRAGMA mmap_size=1073741824")
        self.conn.execute("PRAGMA cache_size=-16384")

    async def pop(self, key: str) -> int:
        """The rows of one pop for a normalised number."""
        conn = self.conn
        rows = conn.execute(SQLITE_CUSTOMER_BY_CONTACT, ("phone", key)).fetchall()
        cid = rows[0][0]
        shown = conn.execute(SQLITE_INTERACTIONS, (cid, HISTORY)).fetchall()
        conn.execute(SQLITE_OPEN_REQUESTS, (cid,)).fetchall()
        return len(shown)

    async def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class AsyncpgFloor:
    """The reader's one statement, prepared once on a bare asyncpg connection: the floor."""

    name = "bare asyncpg, the reader's statement"

    def __init__(self, conn: asyncpg.Connection, statement: Any) -> None:
        self.conn = conn
        self.statement = statement

    @classmethod
    async def open(cls, url: str) -> AsyncpgFloor:
        """Connect and prepare."""
        conn = await asyncpg.connect(asyncpg_dsn(url))
        return cls(conn, await conn.prepare(POSTGRES_POP_BY_CONTACT))

    async def pop(self, key: str) -> int:
        """The row of one pop for a normalised number."""
        row = await self.statement.fetchrow("phone", key, HISTORY)
        return len(row["interactions"])

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()


class NaiveOrm:
    """What a plain repository function would do: AsyncSession, selectinload, three selects."""

    def __init__(self, url: str, region: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.region = region

    async def pop(self, raw: str) -> int:
        """The customer, contact points, last 20 interactions and open requests."""
        number = normalize_phone(raw, self.region)
        async with self.sessions() as session:
            customer = await session.scalar(
                select(Customer)
                .join(ContactPoint, ContactPoint.customer_id == Customer.id)
                .where(ContactPoint.kind == "phone", ContactPoint.value == number)
                .options(selectinload(Customer.contact_points))
            )
            if customer is None:
                return 0
            history = list(
                await session.scalars(
                    select(Interaction)
                    .where(Interaction.customer_id == customer.id)
                    .order_by(Interaction.started_at.desc(), Interaction.id.desc())
                    .limit(HISTORY)
                )
            )
            list(
                await session.scalars(
                    select(ServiceRequest).where(
                        ServiceRequest.customer_id == customer.id,
                        ServiceRequest.status.in_(OPEN_SR_STATUSES),
                    )
                )
            )
            return len(history)

    async def close(self) -> None:
        """Dispose of the engine."""
        await self.engine.dispose()


@dataclass
class Plan:
    """How much to measure."""

    rounds: int
    pops: int  # per round and series
    concurrent_pops: int
    naive_pops: int
    warm_pops: int


def _spread(values: Sequence[int]) -> dict[str, float]:
    return {"min": min(values), "max": max(values), "mean": round(statistics.fmean(values), 2)}


async def measure(url: str, backend: str, cohort: int, plan: Plan) -> dict[str, Any]:
    """Run (a) to (d) on the store at `url`; the figures."""
    region = "GB"
    rng = random.Random(SEED + 2)
    rnd = rng.random

    def numbers(n: int) -> list[str]:
        return [phone_formats(cohort_member(int(rnd() * cohort)), rng) for _ in range(n)]

    engine = make_engine(url)  # the daemon's engine, which the reader shares on PostgreSQL
    reader = await ScreenPopReader.open(url, engine, default_region=region)
    floor: SqliteFloor | AsyncpgFloor
    if backend == "postgresql":
        floor = await AsyncpgFloor.open(url)
    else:
        floor = SqliteFloor(Path(url.split(":///", 1)[1]))

    async def reader_pop(raw: str) -> int:
        return len((await reader.by_phone(raw)).interactions)

    try:
        for raw in numbers(plan.warm_pops):
            await reader.by_phone(raw)
            await floor.pop(normalize_phone(raw, region))
        # What a pop carries, for the record (and the check that it is what we claim).
        inspected = [await reader.by_phone(raw) for raw in numbers(min(500, plan.pops))]
        returned = {
            "found": sum(p.found for p in inspected) / len(inspected),
            "interactions": _spread([len(p.interactions) for p in inspected]),
            "contact_points": _spread([len(p.contact_points) for p in inspected]),
            "open_requests": _spread([len(p.open_requests) for p in inspected]),
        }
        rounds: list[dict[str, Any]] = []
        shown_all: list[int] = []
        for r in range(plan.rounds):
            sample = numbers(plan.pops)
            keys = [normalize_phone(raw, region) for raw in sample]
            gc.collect()
            load = load_average()[0]
            results: dict[str, Series] = {}
            # Alternate which goes first, so neither always runs on a warmer cache.
            order = ("reader", "floor") if r % 2 == 0 else ("floor", "reader")
            for which in order:
                normalize_phone.cache_clear()  # parsing is part of the measured pop
                if which == "reader":
                    results[which], shown = await timed(reader_pop, sample)
                else:
                    results[which], shown = await timed(floor.pop, keys)
                shown_all.extend(shown)
            rounds.append({"load_1m": load, **results})

        normalize_phone.cache_clear()
        conc, pops_per_s = await concurrent(reader.by_phone, numbers(plan.concurrent_pops), 16)
    finally:
        await reader.close()
        await floor.close()
        await engine.dispose()

    naive = NaiveOrm(url, region)
    try:
        for raw in numbers(min(200, plan.warm_pops)):
            await naive.pop(raw)
        normalize_phone.cache_clear()
        naive_seq, naive_shown = await timed(naive.pop, numbers(plan.naive_pops))
        shown_all.extend(naive_shown)
    finally:
        await naive.close()
    return {
        "returned": returned,
        "shown_min": min(shown_all),
        "shown_max": max(shown_all),
        "rounds": rounds,
        "concurrent": conc,
        "concurrent_pops_per_s": pops_per_s,
        "naive": naive_seq,
    }


def _median(rounds: list[dict[str, Any]], which: str, field: str) -> float:
    return statistics.median(getattr(r[which], field) for r in rounds)


def _ratio(rounds: list[dict[str, Any]], field: str) -> float:
    """Median over the rounds of reader / floor, each ratio within one round."""
    return statistics.median(
        getattr(r["reader"], field) / getattr(r["floor"], field) for r in rounds
    )


def _plan(args: argparse.Namespace, quick: bool) -> Plan:
    pops = args.pops or (2_000 if quick else 10_000)
    return Plan(
        rounds=args.rounds,
        pops=pops,
        concurrent_pops=2 * pops,
        naive_pops=max(1, pops // 5),
        warm_pops=min(2_000, pops),
    )


async def _run(
    args: argparse.Namespace, backend: str, customers: int, interactions: int, plan: Plan
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build or reuse the data set, measure; (figures, facts about the data set)."""
    cohort = cohort_size(customers, interactions)
    if backend == "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            async with scratch_database(args.database_url, Path(tmp)) as url:
                print(
                    f"generating {customers:,} customers, {interactions:,} interactions with"
                    f" COPY into a scratch PostgreSQL database (dropped at the end)",
                    flush=True,
                )
                generation = await generate_postgres(url, customers, interactions)
                print(f"generation took {generation:.1f} s", flush=True)
                figures = await measure(url, backend, cohort, plan)
        database = make_url(url).database
        return figures, {"generated": True, "generation_seconds": generation, "database": database}

    path = _sqlite_path(args, customers, interactions)
    generation = existing_generation(path, customers, interactions)
    generated = generation is None
    if generation is None:
        print(f"generating {customers:,} customers, {interactions:,} interactions into {path}")
        generation = generate_sqlite(path, customers, interactions)
        print(f"generation took {generation:.1f} s")
    else:
        print(f"reusing {path} (generated in {generation:.1f} s)")
    figures = await measure(f"sqlite+aiosqlite:///{path}", backend, cohort, plan)
    return figures, {
        "generated": generated,
        "generation_seconds": generation,
        "database": str(path),
    }


def _sqlite_path(args: argparse.Namespace, customers: int, interactions: int) -> Path:
    if args.database_url is not None:
        path = Path(args.database_url.split(":///", 1)[1])
    elif args.db is not None:
        path = args.db
    elif (customers, interactions) == FULL["sqlite"]:
        path = DEFAULT_DB
    else:
        # Another size gets its own file, so --quick does not throw the full set away.
        path = DATA_DIR / f"screen_pop_{customers}_{interactions}.db"
    return path.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, build or reuse the data set, measure, print; 1 if a pop did
    not show the HISTORY interactions it should."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k customers, fewer pops")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--interactions", type=int)
    parser.add_argument(
        "--database-url",
        help="a SQLite URL (that file) or a PostgreSQL URL (a scratch database beside it);"
        " default: a SQLite file under bench/.data",
    )
    parser.add_argument("--db", type=Path, help=f"SQLite file (default {DEFAULT_DB})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds ({ROUNDS})")
    parser.add_argument("--pops", type=int, help="pops per round and series")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.pops is not None and args.pops < 1):
        parser.error("--rounds and --pops must be positive")

    backend = "postgresql" if is_postgres(args.database_url) else "sqlite"
    customers, interactions = QUICK if args.quick else FULL[backend]
    customers = args.customers or customers
    interactions = args.interactions or interactions
    cohort = cohort_size(customers, interactions)
    if cohort < 1:
        parser.error(f"{interactions} interactions cannot give one customer {HISTORY}")
    plan = _plan(args, args.quick)

    pinned = False
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = True

    r, data = asyncio.run(_run(args, backend, customers, interactions, plan))
    report(r, data, backend, customers, interactions, cohort, plan, pinned, args.quick)
    return 0 if r["shown_min"] == r["shown_max"] == HISTORY else 1


def report(
    r: dict[str, Any],
    data: dict[str, Any],
    backend: str,
    customers: int,
    interactions: int,
    cohort: int,
    plan: Plan,
    pinned: bool,
    quick: bool,
) -> None:
    """Print the table and the JSON line."""
    rounds = r["rounds"]
    floor_name = SqliteFloor.name if backend == "sqlite" else AsyncpgFloor.name
    median = {
        which: Series(
            count=sum(x[which].count for x in rounds),
            **{
                f: _median(rounds, which, f)
                for f in ("median_ms", "p99_ms", "cpu_ms", "loop_cpu_ms")
            },
        )
        for which in ("reader", "floor")
    }
    ratios = {f: _ratio(rounds, f) for f in ("median_ms", "p99_ms", "cpu_ms", "loop_cpu_ms")}
    reader = median["reader"]
    targets = {
        "median_lt_1ms": reader.median_ms < TARGET_MEDIAN_MS,
        "p99_lt_3ms": reader.p99_ms < TARGET_P99_MS,
        "cpu_lt_1ms": reader.cpu_ms < TARGET_CPU_MS,
        "pops_per_s_ge_1000": r["concurrent_pops_per_s"] >= TARGET_POPS_PER_S,
    }
    returned = r["returned"]
    print()
    print(
        f"screen pop, {backend}, {customers:,} customers, {interactions:,} interactions,"
        f" {cohort:,} measured customers with exactly {HISTORY} each;"
        f" {'pinned to 1 CPU' if pinned else 'not pinned'}; {describe_load()}"
    )
    print(
        f"a pop returned: found {returned['found']:.0%}, interactions"
        f" {returned['interactions']['min']}-{returned['interactions']['max']}"
        f" (every measured pop: {r['shown_min']}-{r['shown_max']}), contact points"
        f" {returned['contact_points']['mean']:.1f}, open requests"
        f" {returned['open_requests']['mean']:.1f} on average"
    )
    print(
        f"{'round':<7}{'series':<40}{'pops':>7}{'median ms':>11}{'p99 ms':>9}"
        f"{'CPU ms':>9}{'loop ms':>9}{'load':>7}"
    )

    def line(name: str, series_name: str, s: Series, load: str) -> None:
        print(
            f"{name:<7}{series_name:<40}{s.count:>7}{s.median_ms:>11.3f}{s.p99_ms:>9.3f}"
            f"{s.cpu_ms:>9.3f}{s.loop_cpu_ms:>9.3f}{load:>7}"
        )

    for n, rnd in enumerate(rounds, 1):
        line(str(n), "(a) reader, sequential", rnd["reader"], f"{rnd['load_1m']:.2f}")
        line("", f"(b) {floor_name}", rnd["floor"], "")
    line("median", "(a) reader, sequential", reader, "")
    line("", f"(b) {floor_name}", median["floor"], "")
    line("once", f"(c) reader, {CONCURRENCY} concurrent", r["concurrent"], "")
    line("once", "(d) naive async ORM, sequential", r["naive"], "")
    print(
        f"reader / floor (median of per-round ratios): latency {ratios['median_ms']:.2f}x,"
        f" p99 {ratios['p99_ms']:.2f}x, CPU {ratios['cpu_ms']:.2f}x,"
        f" loop-thread CPU {ratios['loop_cpu_ms']:.2f}x;"
        f" {CONCURRENCY} concurrent: {r['concurrent_pops_per_s']:.0f} pops/s"
    )
    print(
        f"targets: median < {TARGET_MEDIAN_MS} ms {targets['median_lt_1ms']},"
        f" p99 < {TARGET_P99_MS} ms {targets['p99_lt_3ms']},"
        f" CPU < {TARGET_CPU_MS} ms {targets['cpu_lt_1ms']},"
        f" >= {TARGET_POPS_PER_S:.0f} pops/s {targets['pops_per_s_ge_1000']}"
    )
    print(
        "CPU ms: process CPU per pop (time.process_time: on SQLite the reader's worker"
        " thread and sqlite3 count); loop ms: the event loop's thread only. The floor gets"
        " numbers already normalised; the reader parses each one."
    )

    def rounded(s: Series) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(s).items()}

    figures = {
        "bench": "screen_pop",
        "backend": backend,
        "customers": customers,
        "interactions": interactions,
        "measured_customers": cohort,
        "history": HISTORY,
        "quick": quick,
        "rounds": plan.rounds,
        "pops_per_round": plan.pops,
        "pinned_one_cpu": pinned,
        "load_average": [round(x, 2) for x in load_average()],
        "cpus": os.cpu_count(),
        **data,
        "generation_seconds": round(data["generation_seconds"], 2),
        "returned": returned,
        "interactions_per_measured_pop": {"min": r["shown_min"], "max": r["shown_max"]},
        "reader": rounded(reader),
        "floor": {"name": floor_name, **rounded(median["floor"])},
        "ratio_reader_vs_floor": {k: round(v, 3) for k, v in ratios.items()},
        "concurrent": rounded(r["concurrent"]),
        "concurrent_pops_per_s": round(r["concurrent_pops_per_s"], 1),
        "naive": rounded(r["naive"]),
        "per_round": [
            {
                "load_1m": round(x["load_1m"], 2),
                "reader": rounded(x["reader"]),
                "floor": rounded(x["floor"]),
            }
            for x in rounds
        ],
        "targets_met": targets,
        "all_targets_met": all(targets.values()),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    raise SystemExit(main())
