"""The screen pop reader against real databases: a SQLite file and a throwaway PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from crm_store import screen_pop
from crm_store.database import make_engine, make_sessionmaker
from crm_store.errors import InvalidData, StoreError
from crm_store.models import (
    Base,
    ContactPoint,
    Customer,
    Interaction,
    ServiceRequest,
)
from crm_store.outage import is_unavailable
from crm_store.screen_pop import (
    POSTGRES_APPLICATION_NAME,
    POSTGRES_POOL_SIZE,
    POSTGRES_POP_BY_CONTACT,
    POSTGRES_POP_BY_ID,
    SQLITE_CUSTOMER_BY_CONTACT,
    SQLITE_CUSTOMER_BY_ID,
    SQLITE_INTERACTIONS,
    SQLITE_OPEN_REQUESTS,
    ScreenPop,
    ScreenPopReader,
)
from tests.conftest import POSTGRES_URL, postgres_available, require_server

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
ADA_E164 = "+442079460018"


@dataclass
class Store:
    """A fresh, empty CRM schema and how to reach it."""

    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    backend: str


async def _postgres_store() -> AsyncIterator[Store]:
    if not postgres_available():
        require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    name = f"cc_pop_{secrets.token_hex(6)}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, DBAPIError) as exc:
        await admin.dispose()
        require_server(f"PostgreSQL at {POSTGRES_URL} refused CREATE DATABASE: {exc}")
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield Store(url, engine, make_sessionmaker(engine), "postgresql")
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _sqlite_store(path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield Store(url, engine, make_sessionmaker(engine), "sqlite")
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store on each backend."""
    if request.param == "sqlite":
        async for s in _sqlite_store(tmp_path / "crm.db"):
            yield s
    else:
        async for s in _postgres_store():
            yield s


@dataclass
class Seed:
    """Ids of the rows the tests look for."""

    ada: int
    bob: int
    loner: int
    ada_points: list[int]
    ada_open: set[int]
    ada_history: list[int]  # all of Ada's interactions, newest first


async def _seed(store: Store) -> Seed:
    channels = ("voice", "email", "sms", "chat")
    async with store.sessions() as session, session.begin():
        ada = Customer(
            name="Ada Lovelace",
            company="Analytical Engines",
            tier="gold",
            language="en",
            contact_points=[
                ContactPoint(kind="phone", value=ADA_E164, raw="020 7946 0018", label="work"),
                ContactPoint(
                    kind="email", value="ada.lovelace@example.com", raw="Ada.Lovelace@Example.com"
                ),
                ContactPoint(kind="phone", value="+447700900123", raw="07700 900123"),
            ],
        )
        bob = Customer(
            name="Bob",
            contact_points=[ContactPoint(kind="phone", value="+442079460019", raw="x")],
        )
        loner = Customer(name="No Contact Points", tier="platinum")
        session.add_all([ada, bob, loner])
        await session.flush()
        # 25 interactions over all channels; the two at index 10/11 share a start time,
        # so the id must break the tie (newest id first).
        for n in range(25):
            started = T0 + timedelta(minutes=n if n != 11 else 10)
            session.add(
                Interaction(
                    customer_id=ada.id,
                    channel=channels[n % 4],
                    address=ADA_E164,
                    started_at=started,
                    answered_at=started + timedelta(seconds=5) if n % 3 else None,
                    ended_at=started + timedelta(minutes=3),
                    queue="billing",
                    disposition="resolved",
                    csat=n % 5 + 1,
                )
            )
            session.add(Interaction(customer_id=bob.id, channel="voice", started_at=started))
        for status in ("new", "assigned", "in_progress", "feedback", "archived"):
            session.add(ServiceRequest(customer_id=ada.id, title=f"Ada {status}", status=status))
        session.add(ServiceRequest(customer_id=bob.id, title="Bob's", status="new"))
    async with store.sessions() as session:
        ada_points = list(
            await session.scalars(
                select(ContactPoint.id)
                .where(ContactPoint.customer_id == ada.id)
                .order_by(ContactPoint.id)
            )
        )
        ada_open = set(
            await session.scalars(
                select(ServiceRequest.id).where(
                    ServiceRequest.customer_id == ada.id, ServiceRequest.status != "archived"
                )
            )
        )
        ada_history = list(
            await session.scalars(
                select(Interaction.id)
                .where(Interaction.customer_id == ada.id)
                .order_by(Interaction.started_at.desc(), Interaction.id.desc())
            )
        )
    return Seed(ada.id, bob.id, loner.id, ada_points, ada_open, ada_history)


@pytest.fixture
async def seed(store: Store) -> Seed:
    """The seeded customers."""
    return await _seed(store)


@pytest.fixture
async def reader(store: Store, seed: Seed) -> AsyncIterator[ScreenPopReader]:
    """A reader opened after the seed, closed after the test."""
    r = await ScreenPopReader.open(store.url, store.engine, default_region="GB")
    try:
        yield r
    finally:
        await r.close()


def _assert_empty(pop: ScreenPop) -> None:
    assert pop.customer is None
    assert not pop.found
    assert pop.contact_points == ()
    assert pop.interactions == ()
    assert pop.open_requests == ()


@pytest.mark.parametrize(
    "raw",
    ["020 7946 0018", "+44 20 7946 0018", "0044 20 7946 0018", "+442079460018", "(020) 7946-0018"],
)
async def test_phone_in_any_format_finds_the_customer(
    reader: ScreenPopReader, seed: Seed, raw: str
) -> None:
    pop = await reader.by_phone(raw)
    assert pop.customer is not None
    assert pop.customer.id == seed.ada
    assert pop.customer.name == "Ada Lovelace"
    assert pop.customer.tier == "gold"
    assert pop.looked_up_by == "phone"
    assert pop.key == ADA_E164
    assert [p.id for p in pop.contact_points] == seed.ada_points
    assert [p.kind for p in pop.contact_points] == ["phone", "email", "phone"]
    assert pop.contact_points[0].raw == "020 7946 0018"
    assert pop.contact_points[0].label == "work"


async def test_second_phone_finds_the_same_customer(reader: ScreenPopReader, seed: Seed) -> None:
    pop = await reader.by_phone("07700 900123")
    assert pop.customer is not None and pop.customer.id == seed.ada


async def test_email_ignores_case_and_spaces(reader: ScreenPopReader, seed: Seed) -> None:
    pop = await reader.by_email("  ADA.Lovelace@EXAMPLE.com ")
    assert pop.customer is not None and pop.customer.id == seed.ada
    assert pop.looked_up_by == "email"
    assert pop.key == "ada.lovelace@example.com"


async def test_unknown_number_gives_an_empty_pop(reader: ScreenPopReader) -> None:
    pop = await reader.by_phone("+44 20 7946 0999")
    _assert_empty(pop)
    assert pop.key == "+442079460999"


@pytest.mark.parametrize("raw", ["anonymous", "", "   ", "unknown", "+", "Restricted"])
async def test_unreadable_caller_id_gives_an_empty_pop(reader: ScreenPopReader, raw: str) -> None:
    pop = await reader.by_phone(raw)
    _assert_empty(pop)
    assert pop.looked_up_by == "phone"
    assert pop.key is None


async def test_unknown_or_malformed_email_gives_an_empty_pop(reader: ScreenPopReader) -> None:
    _assert_empty(await reader.by_email("nobody@example.com"))
    _assert_empty(await reader.by_email("not an address"))


async def test_by_customer_id(reader: ScreenPopReader, seed: Seed) -> None:
    pop = await reader.by_customer_id(seed.ada)
    assert pop.customer is not None and pop.customer.id == seed.ada
    assert [p.id for p in pop.contact_points] == seed.ada_points
    assert pop.key == str(seed.ada)
    _assert_empty(await reader.by_customer_id(999_999))


async def test_customer_without_contact_points(reader: ScreenPopReader, seed: Seed) -> None:
    pop = await reader.by_customer_id(seed.loner)
    assert pop.customer is not None
    assert pop.customer.tier == "platinum"
    assert pop.contact_points == ()
    assert pop.interactions == ()
    assert pop.open_requests == ()


async def test_timeline_is_newest_first_across_channels(
    reader: ScreenPopReader, seed: Seed
) -> None:
    pop = await reader.by_phone("020 7946 0018")
    assert [i.id for i in pop.interactions] == seed.ada_history[:20]
    assert {i.channel for i in pop.interactions} == {"voice", "email", "sms", "chat"}
    starts = [i.started_at for i in pop.interactions]
    assert starts == sorted(starts, reverse=True)
    # Equal start times: the later id comes first.
    tied = [i for i in pop.interactions if i.started_at == T0 + timedelta(minutes=10)]
    assert len(tied) == 2
    assert tied[0].id > tied[1].id


async def test_limit(reader: ScreenPopReader, seed: Seed) -> None:
    assert [i.id for i in (await reader.by_phone(ADA_E164, limit=3)).interactions] == (
        seed.ada_history[:3]
    )
    assert (await reader.by_phone(ADA_E164, limit=0)).interactions == ()
    assert [i.id for i in (await reader.by_phone(ADA_E164, limit=100)).interactions] == (
        seed.ada_history
    )
    with pytest.raises(InvalidData):
        await reader.by_phone(ADA_E164, limit=-1)


async def test_only_open_service_requests(reader: ScreenPopReader, seed: Seed) -> None:
    pop = await reader.by_phone(ADA_E164)
    assert {r.id for r in pop.open_requests} == seed.ada_open
    assert {r.status for r in pop.open_requests} == {"new", "assigned", "in_progress", "feedback"}
    assert all(r.title.startswith("Ada") for r in pop.open_requests)
    ids = [r.id for r in pop.open_requests]
    assert ids == sorted(ids, reverse=True)  # same created_at second: newest id first


async def test_times_are_utc_and_match_the_orm(
    store: Store, reader: ScreenPopReader, seed: Seed
) -> None:
    pop = await reader.by_phone(ADA_E164, limit=100)
    async with store.sessions() as session:
        rows = {
            i.id: i
            for i in await session.scalars(
                select(Interaction).where(Interaction.customer_id == seed.ada)
            )
        }
        customer = await session.get(Customer, seed.ada)
        requests = {
            r.id: r
            for r in await session.scalars(
                select(ServiceRequest).where(ServiceRequest.customer_id == seed.ada)
            )
        }
    assert customer is not None and pop.customer is not None
    assert pop.customer.created_at == customer.created_at
    assert pop.customer.created_at.tzinfo is UTC
    for got in pop.interactions:
        stored = rows[got.id]
        assert got.started_at == stored.started_at
        assert got.answered_at == stored.answered_at
        assert got.ended_at == stored.ended_at
        assert got.started_at.utcoffset() == timedelta(0)
        assert got.started_at.microsecond == stored.started_at.microsecond
    assert pop.interactions[-1].started_at == T0
    for req in pop.open_requests:
        assert req.created_at == requests[req.id].created_at
        assert req.updated_at.utcoffset() == timedelta(0)


async def test_to_json_is_json(reader: ScreenPopReader, seed: Seed) -> None:
    pop = await reader.by_phone(ADA_E164)
    data = json.loads(json.dumps(pop.to_json()))
    assert data["customer"]["id"] == seed.ada
    assert data["looked_up_by"] == "phone"
    assert len(data["interactions"]) == 20
    started = datetime.fromisoformat(data["interactions"][-1]["started_at"])
    assert started.utcoffset() == timedelta(0)
    assert data["interactions"][0]["started_at"].endswith("+00:00")
    empty = (await reader.by_phone("anonymous")).to_json()
    assert json.loads(json.dumps(empty))["customer"] is None


async def test_reads_writes_committed_after_the_reader_opened(
    store: Store, reader: ScreenPopReader, seed: Seed
) -> None:
    before = await reader.by_phone(ADA_E164)
    assert before.customer is not None
    newest = T0 + timedelta(days=1)
    async with store.sessions() as session, session.begin():
        session.add(Interaction(customer_id=seed.ada, channel="chat", started_at=newest))
        session.add(ServiceRequest(customer_id=seed.ada, title="fresh", status="new"))
        await session.execute(
            update(ServiceRequest)
            .where(ServiceRequest.customer_id == seed.ada, ServiceRequest.status == "feedback")
            .values(status="archived")
        )
        await session.execute(
            update(Customer).where(Customer.id == seed.ada).values(name="Ada King")
        )
        session.add(
            Customer(
                name="Newcomer",
                contact_points=[ContactPoint(kind="phone", value="+442079460077", raw="x")],
            )
        )
    after = await reader.by_phone(ADA_E164)
    assert after.customer is not None and after.customer.name == "Ada King"
    assert after.interactions[0].started_at == newest
    assert after.interactions[0].channel == "chat"
    titles = {r.title for r in after.open_requests}
    assert "fresh" in titles
    assert "Ada feedback" not in titles
    newcomer = await reader.by_phone("020 7946 0077")
    assert newcomer.customer is not None and newcomer.customer.name == "Newcomer"
    # The pop taken before the write is an immutable value: it did not change.
    assert before.customer.name == "Ada Lovelace"


async def test_concurrent_pops(reader: ScreenPopReader, seed: Seed) -> None:
    formats = ["020 7946 0018", "+44 20 7946 0018", "0044 20 7946 0018", "anonymous"]
    pops = await asyncio.gather(
        *(reader.by_phone(formats[n % 4]) for n in range(60)),
        *(reader.by_customer_id(seed.bob) for _ in range(20)),
        *(reader.by_email("ADA.LOVELACE@example.com") for _ in range(20)),
    )
    for n, pop in enumerate(pops[:60]):
        if n % 4 == 3:
            assert pop.customer is None
        else:
            assert pop.customer is not None and pop.customer.id == seed.ada
            assert [i.id for i in pop.interactions] == seed.ada_history[:20]
    assert all(p.customer is not None and p.customer.id == seed.bob for p in pops[60:80])
    assert all(p.customer is not None and p.customer.id == seed.ada for p in pops[80:])


async def test_close_is_clean(store: Store, seed: Seed) -> None:
    before = {t.ident for t in threading.enumerate()}
    # Without an engine: on PostgreSQL the reader makes (and must dispose) its own.
    reader = await ScreenPopReader.open(store.url, default_region="GB")
    assert (await reader.by_customer_id(seed.ada)).found
    await reader.close()
    await reader.close()  # twice is fine
    with pytest.raises(RuntimeError):
        await reader.by_phone(ADA_E164)
    leftover = [
        t for t in threading.enumerate() if t.ident not in before and t.name.startswith("screen")
    ]
    assert leftover == []
    # The store is still usable by everyone else.
    async with store.sessions() as session:
        assert await session.get(Customer, seed.ada) is not None


async def test_postgres_times_ignore_the_session_time_zone(store: Store, seed: Seed) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL session time zones only")
    engine = create_async_engine(
        store.url, connect_args={"server_settings": {"timezone": "America/New_York"}}
    )
    reader = await ScreenPopReader.open(store.url, engine, default_region="GB")
    try:
        pop = await reader.by_phone(ADA_E164, limit=100)
    finally:
        await reader.close()
        await engine.dispose()
    assert pop.interactions[-1].started_at == T0
    assert pop.interactions[-1].started_at.tzinfo is UTC


async def test_postgres_pop_survives_a_terminated_connection(
    store: Store, seed: Seed, reader: ScreenPopReader
) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL connections only")
    assert (await reader.by_phone(ADA_E164)).found
    async with store.engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": POSTGRES_APPLICATION_NAME},
        )
    assert killed == 1  # one pop at a time needs one connection
    # The pooled connection is dead: the pop notices, retries once on a new one.
    pop = await reader.by_phone(ADA_E164)
    assert pop.customer is not None and pop.customer.id == seed.ada
    assert [i.id for i in pop.interactions] == seed.ada_history[:20]


async def _reader_connections(store: Store) -> int:
    async with store.engine.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": POSTGRES_APPLICATION_NAME},
        )
    return int(count or 0)


async def test_postgres_reader_keeps_a_few_connections_and_closes_them(
    store: Store, seed: Seed
) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL connections only")
    reader = await ScreenPopReader.open(store.url, default_region="GB")
    try:
        pops = await asyncio.gather(*(reader.by_phone(ADA_E164) for _ in range(40)))
        assert all(p.customer is not None and p.customer.id == seed.ada for p in pops)
        assert 1 <= await _reader_connections(store) <= POSTGRES_POOL_SIZE
    finally:
        await reader.close()
    assert await _reader_connections(store) == 0


async def test_postgres_pop_gives_up_when_no_connection_comes_free(
    store: Store, seed: Seed, reader: ScreenPopReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL connections only")
    monkeypatch.setattr(screen_pop, "POSTGRES_TIMEOUT_SECONDS", 0.2)
    connections = reader._backend._connections  # type: ignore[attr-defined]
    held = [await connections.acquire() for _ in range(POSTGRES_POOL_SIZE)]
    try:
        # The routing takes a TimeoutError as the store being unavailable (no history).
        with pytest.raises(TimeoutError):
            await reader.by_phone(ADA_E164)
    finally:
        for conn in held:
            connections.release(conn)
    assert (await reader.by_phone(ADA_E164)).found


async def test_postgres_pop_cancelled_mid_statement_leaves_the_reader_usable(
    store: Store, seed: Seed, reader: ScreenPopReader
) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL connections only")
    for delay in (0, 1, 2, 3):
        task = asyncio.create_task(reader.by_phone(ADA_E164))
        for _ in range(delay):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pop = await reader.by_phone(ADA_E164)
        assert pop.customer is not None and pop.customer.id == seed.ada
    assert await _reader_connections(store) <= POSTGRES_POOL_SIZE


async def test_postgres_reader_opens_while_the_database_is_down(store: Store) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL connections only")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = make_url(store.url).set(host="127.0.0.1", port=port).render_as_string(False)
    reader = await ScreenPopReader.open(down, default_region="GB")
    try:
        with pytest.raises(StoreError) as caught:
            await reader.by_phone(ADA_E164)
        # An outage, which the routing answers with a pop without history.
        assert is_unavailable(caught.value)
    finally:
        await reader.close()


async def test_postgres_pop_sql_is_one_statement_with_the_indexes(store: Store) -> None:
    if store.backend != "postgresql":
        pytest.skip("PostgreSQL plans only")
    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for sql, args in [
            (POSTGRES_POP_BY_CONTACT, ("phone", ADA_E164, 20)),
            (POSTGRES_POP_BY_ID, (1, 20)),
        ]:
            await driver.execute("SET enable_seqscan = off")  # tiny tables: see the indexes
            plan = "\n".join(r[0] for r in await driver.fetch(f"EXPLAIN {sql}", *args))
            await driver.execute("RESET enable_seqscan")
            assert "Seq Scan" not in plan, plan
            # The newest 20 straight off the index, read backwards: no sort of a history.
            assert "Index Scan Backward using ix_interactions_customer_started" in plan, plan


# --- SQLite specifics --------------------------------------------------------------------


async def test_sqlite_refuses_memory_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidData):
        await ScreenPopReader.open("sqlite+aiosqlite:///:memory:", default_region="GB")
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreError):
        await ScreenPopReader.open(f"sqlite+aiosqlite:///{missing}", default_region="GB")
    assert not missing.exists()  # a reader never creates an empty store


async def test_sqlite_reader_does_not_block_a_writer_in_flight(tmp_path: Path) -> None:
    async for store in _sqlite_store(tmp_path / "crm.db"):
        seed = await _seed(store)
        reader = await ScreenPopReader.open(store.url, default_region="GB")
        try:
            async with store.sessions() as session, session.begin():
                session.add(
                    Interaction(customer_id=seed.ada, channel="sms", started_at=T0 + timedelta(1))
                )
                await session.flush()
                # The write is in flight: WAL lets the pop read the last committed state.
                pop = await asyncio.wait_for(reader.by_phone(ADA_E164), timeout=2)
                assert pop.interactions[0].id == seed.ada_history[0]
            assert (await reader.by_phone(ADA_E164)).interactions[0].channel == "sms"
        finally:
            await reader.close()


def test_sqlite_statements_use_the_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    try:
        for sql, params in [
            (SQLITE_CUSTOMER_BY_CONTACT, ("phone", ADA_E164)),
            (SQLITE_CUSTOMER_BY_ID, (1,)),
            (SQLITE_INTERACTIONS, (1, 20)),
            (SQLITE_OPEN_REQUESTS, (1,)),
        ]:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "SCAN" not in plan.replace("SCAN CONSTANT", ""), plan
            if sql is SQLITE_INTERACTIONS:
                assert "TEMP B-TREE" not in plan, plan
    finally:
        conn.close()
