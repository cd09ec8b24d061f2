"""Screen pop latency and throughput on a large SQLite CRM store.

Run from the repository root:

    .venv/bin/python bench/screen_pop.py [--quick] [--customers N] [--interactions N] [--db PATH]

It builds (or reuses) a SQLite file with the CRM schema, then measures:

  (a) ScreenPopReader.by_phone, one pop at a time, phone numbers in random formats;
  (b) the same with 16 concurrent pops on one event loop (pops/s);
  (c) the reader's three SQL statements on bare sqlite3 in this process: the floor;
  (d) a naive async ORM pop (AsyncSession, selectinload) for comparison.

The process is pinned to one CPU (unless --no-pin) because the target is "on one core".
It prints a table and ends with one line holding a JSON object of all figures.
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
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # standalone from the repository root, installed or not
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.dialects import sqlite as sqlite_dialect  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402
from sqlalchemy.schema import CreateIndex  # noqa: E402

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
    SQLITE_CUSTOMER_BY_CONTACT,
    SQLITE_INTERACTIONS,
    SQLITE_OPEN_REQUESTS,
    ScreenPopReader,
)

FULL = (1_000_000, 5_000_000)
QUICK = (100_000, 500_000)
DATA_DIR = ROOT / "bench" / ".data"
DEFAULT_DB = DATA_DIR / "screen_pop.db"
FORMAT_VERSION = 1
SEED = 20240301
CONCURRENCY = 16
TARGET_MEDIAN_MS = 1.0
TARGET_P99_MS = 3.0
TARGET_POPS_PER_S = 1000.0


# --- the data set ------------------------------------------------------------------------
#
# Phone numbers follow from the customer id, so the measurement knows every number without
# reading the database: a London number for everyone, a mobile for 3 in 10, an email for 4 in
# 10. Interactions are spread unevenly: 5% go to 100 customers (about 2,500 each at full
# size), 25% to the first 10,000, the rest uniformly.


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


def skewed_customer(rnd: Callable[[], float], customers: int) -> int:
    """A customer id drawn with the uneven spread of the interactions."""
    r = rnd()
    if r < 0.05:
        return 1 + int(rnd() * min(100, customers))
    if r < 0.30:
        return 1 + int(rnd() * min(10_000, customers))
    return 1 + int(rnd() * customers)


class Clock:
    """Fast text timestamps in SQLAlchemy's SQLite storage format (naive UTC)."""

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


def _interaction_rows(customers: int, interactions: int, clock: Clock) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(SEED)
    rnd = rng.random
    span = SPAN_DAYS * 86400
    step = span / interactions
    channels = CHANNELS
    queues = ("billing", "support", "sales", "retention")
    dispositions = ("resolved", "callback", "escalated", "no_answer")
    for n in range(interactions):
        cid = skewed_customer(rnd, customers)
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


def generate(path: Path, customers: int, interactions: int) -> float:
    """Build the data set into `path`; return the seconds it took."""
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
    clock = Clock(START, SPAN_DAYS)
    requests = max(1, customers // 5)
    steps: list[tuple[str, str, Iterator[tuple[Any, ...]]]] = [
        (
            "customers",
            "INSERT INTO customers (id, name, company, tier, language, segment, notes,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            _customer_rows(customers, clock),
        ),
        (
            "contact_points",
            "INSERT INTO contact_points (customer_id, kind, value, raw, label, created_at)"
            " VALUES (?,?,?,?,?,?)",
            _contact_rows(customers, clock),
        ),
        (
            "interactions",
            "INSERT INTO interactions (customer_id, channel, direction, external_id, address,"
            " started_at, answered_at, ended_at, queue, disposition, notes, csat)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            _interaction_rows(customers, interactions, clock),
        ),
        (
            "service_requests",
            "INSERT INTO service_requests (customer_id, title, status, created_at, updated_at)"
            " VALUES (?,?,?,?,?)",
            _request_rows(customers, requests, clock),
        ),
    ]
    for name, sql, rows in steps:
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        print(f"  loaded {name:<16} {time.perf_counter() - t:6.1f} s", flush=True)
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


@dataclass
class Figures:
    """Latencies (ms) of one measured series."""

    median_ms: float
    p99_ms: float
    count: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Figures:
        """Median and p99 of per-pop times in seconds."""
        ordered = sorted(seconds)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(statistics.median(ordered) * 1000, p99 * 1000, len(ordered))


async def sequential(pop: Callable[[str], Awaitable[Any]], numbers: Sequence[str]) -> Figures:
    """Pop one number at a time; time each."""
    times = []
    clock = time.perf_counter
    for raw in numbers:
        t = clock()
        await pop(raw)
        times.append(clock() - t)
    return Figures.of(times)


async def concurrent(
    pop: Callable[[str], Awaitable[Any]], numbers: Sequence[str], workers: int
) -> tuple[Figures, float, float]:
    """Pop `numbers` with `workers` tasks; return latencies, pops/s and CPU ms per pop."""
    it = iter(numbers)
    times: list[float] = []
    clock = time.perf_counter

    async def worker() -> None:
        for raw in it:
            t = clock()
            await pop(raw)
            times.append(clock() - t)

    cpu = time.process_time()
    began = clock()
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    wall = clock() - began
    cpu = time.process_time() - cpu
    return Figures.of(times), len(numbers) / wall, cpu / len(numbers) * 1000


def bare_sqlite(path: Path, numbers: Sequence[str], region: str) -> Figures:
    """The reader's three statements on a plain sqlite3 connection: the floor."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    conn.execute("PRAGMA mmap_size=1073741824")
    conn.execute("PRAGMA cache_size=-16384")
    keys = [normalize_phone(raw, region) for raw in numbers]  # the floor excludes parsing
    times = []
    clock = time.perf_counter
    for key in keys:
        t = clock()
        rows = conn.execute(SQLITE_CUSTOMER_BY_CONTACT, ("phone", key)).fetchall()
        cid = rows[0][0]
        conn.execute(SQLITE_INTERACTIONS, (cid, 20)).fetchall()
        conn.execute(SQLITE_OPEN_REQUESTS, (cid,)).fetchall()
        times.append(clock() - t)
    conn.close()
    return Figures.of(times)


class NaiveOrm:
    """What a plain repository function would do: AsyncSession, selectinload, three selects."""

    def __init__(self, url: str, region: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.region = region

    async def pop(self, raw: str) -> Any:
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
                return None
            history = list(
                await session.scalars(
                    select(Interaction)
                    .where(Interaction.customer_id == customer.id)
                    .order_by(Interaction.started_at.desc(), Interaction.id.desc())
                    .limit(20)
                )
            )
            requests = list(
                await session.scalars(
                    select(ServiceRequest).where(
                        ServiceRequest.customer_id == customer.id,
                        ServiceRequest.status.in_(OPEN_SR_STATUSES),
                    )
                )
            )
            return customer, customer.contact_points, history, requests

    async def close(self) -> None:
        """Dispose of the engine."""
        await self.engine.dispose()


async def measure(path: Path, customers: int, quick: bool) -> dict[str, Any]:
    """Run (a) to (d) and return the figures."""
    region = "GB"
    url = f"sqlite+aiosqlite:///{path}"
    rng = random.Random(SEED + 2)
    rnd = rng.random
    n_seq, n_conc, n_naive = (3_000, 5_000, 600) if quick else (20_000, 40_000, 3_000)

    def numbers(n: int) -> list[str]:
        return [phone_formats(skewed_customer(rnd, customers), rng) for _ in range(n)]

    reader = await ScreenPopReader.open(url, default_region=region)
    try:
        warm = numbers(2_000)
        for raw in warm:
            await reader.by_phone(raw)
        sample = numbers(n_seq)
        # How much a pop carries, for the record.
        shown = [len((await reader.by_phone(raw)).interactions) for raw in sample[:500]]
        normalize_phone.cache_clear()  # parsing is part of the measured pop
        gc.collect()
        seq = await sequential(reader.by_phone, sample)
        normalize_phone.cache_clear()
        conc, pops_per_s, cpu_ms = await concurrent(reader.by_phone, numbers(n_conc), CONCURRENCY)
    finally:
        await reader.close()

    bare = bare_sqlite(path, numbers(n_seq), region)

    naive = NaiveOrm(url, region)
    try:
        for raw in numbers(200):
            await naive.pop(raw)
        normalize_phone.cache_clear()
        naive_seq = await sequential(naive.pop, numbers(n_naive))
        naive_conc, naive_pops, naive_cpu = await concurrent(
            naive.pop, numbers(n_naive), CONCURRENCY
        )
    finally:
        await naive.close()
    return {
        "avg_interactions_per_pop": statistics.fmean(shown),
        "reader": seq,
        "reader_concurrent": conc,
        "reader_pops_per_s": pops_per_s,
        "reader_cpu_ms_per_pop": cpu_ms,
        "bare": bare,
        "naive": naive_seq,
        "naive_concurrent": naive_conc,
        "naive_pops_per_s": naive_pops,
        "naive_cpu_ms_per_pop": naive_cpu,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, build or reuse the data set, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k customers, a few thousand pops")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--interactions", type=int)
    parser.add_argument("--db", type=Path, help=f"SQLite file (default {DEFAULT_DB})")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args(argv)

    customers, interactions = QUICK if args.quick else FULL
    customers = args.customers or customers
    interactions = args.interactions or interactions
    if args.db is not None:
        path = args.db
    elif (customers, interactions) == FULL:
        path = DEFAULT_DB
    else:
        # Another size gets its own file, so --quick does not throw the full set away.
        path = DATA_DIR / f"screen_pop_{customers}_{interactions}.db"
    path = path.resolve()

    pinned = False
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = True

    generation = existing_generation(path, customers, interactions)
    generated = generation is None
    if generation is None:
        print(f"generating {customers:,} customers, {interactions:,} interactions into {path}")
        generation = generate(path, customers, interactions)
        print(f"generation took {generation:.1f} s")
    else:
        print(f"reusing {path} (generated in {generation:.1f} s)")

    r = asyncio.run(measure(path, customers, args.quick))
    reader, conc, bare, naive = r["reader"], r["reader_concurrent"], r["bare"], r["naive"]
    ratio_bare = reader.median_ms / bare.median_ms
    ratio_naive = naive.median_ms / reader.median_ms
    targets = {
        "median_lt_1ms": reader.median_ms < TARGET_MEDIAN_MS,
        "p99_lt_3ms": reader.p99_ms < TARGET_P99_MS,
        "pops_per_s_ge_1000": r["reader_pops_per_s"] >= TARGET_POPS_PER_S,
    }

    print()
    print(
        f"screen pop, SQLite, {customers:,} customers, {interactions:,} interactions, "
        f"{'pinned to 1 CPU' if pinned else 'not pinned'}, "
        f"{r['avg_interactions_per_pop']:.1f} interactions shown per pop on average"
    )
    print(f"{'series':<44}{'pops':>8}{'median ms':>11}{'p99 ms':>9}{'pops/s':>9}")
    rows = [
        ("(a) reader, sequential", reader, ""),
        (
            f"(b) reader, {CONCURRENCY} concurrent",
            conc,
            f"{r['reader_pops_per_s']:9.0f}",
        ),
        ("(c) bare sqlite3, same 3 statements (floor)", bare, ""),
        ("(d) naive async ORM, sequential", naive, ""),
        (
            f"(d) naive async ORM, {CONCURRENCY} concurrent",
            r["naive_concurrent"],
            f"{r['naive_pops_per_s']:9.0f}",
        ),
    ]
    for name, fig, rate in rows:
        print(f"{name:<44}{fig.count:>8}{fig.median_ms:>11.3f}{fig.p99_ms:>9.3f}{rate}")
    print(
        f"CPU per pop under load: reader {r['reader_cpu_ms_per_pop']:.3f} ms, "
        f"naive ORM {r['naive_cpu_ms_per_pop']:.3f} ms"
    )
    print(f"reader / bare median: {ratio_bare:.2f}x    naive / reader median: {ratio_naive:.2f}x")
    print(
        f"targets: median < {TARGET_MEDIAN_MS} ms {targets['median_lt_1ms']}, "
        f"p99 < {TARGET_P99_MS} ms {targets['p99_lt_3ms']}, "
        f">= {TARGET_POPS_PER_S:.0f} pops/s {targets['pops_per_s_ge_1000']}"
    )
    figures = {
        "bench": "screen_pop",
        "backend": "sqlite",
        "customers": customers,
        "interactions": interactions,
        "quick": args.quick,
        "pinned_one_cpu": pinned,
        "generated": generated,
        "generation_seconds": round(generation, 2),
        "avg_interactions_per_pop": round(r["avg_interactions_per_pop"], 2),
        "reader_median_ms": round(reader.median_ms, 4),
        "reader_p99_ms": round(reader.p99_ms, 4),
        "reader_concurrent_median_ms": round(conc.median_ms, 4),
        "reader_concurrent_p99_ms": round(conc.p99_ms, 4),
        "reader_pops_per_s": round(r["reader_pops_per_s"], 1),
        "reader_cpu_ms_per_pop": round(r["reader_cpu_ms_per_pop"], 4),
        "bare_median_ms": round(bare.median_ms, 4),
        "bare_p99_ms": round(bare.p99_ms, 4),
        "naive_median_ms": round(naive.median_ms, 4),
        "naive_p99_ms": round(naive.p99_ms, 4),
        "naive_concurrent_median_ms": round(r["naive_concurrent"].median_ms, 4),
        "naive_concurrent_p99_ms": round(r["naive_concurrent"].p99_ms, 4),
        "naive_pops_per_s": round(r["naive_pops_per_s"], 1),
        "naive_cpu_ms_per_pop": round(r["naive_cpu_ms_per_pop"], 4),
        "ratio_reader_vs_bare": round(ratio_bare, 3),
        "ratio_naive_vs_reader": round(ratio_naive, 3),
        "targets_met": targets,
        "all_targets_met": all(targets.values()),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
