"""CRM store fixtures: the same tests on a SQLite file and on PostgreSQL.

SQLite: the schema is migrated once into a template file, copied for each test.
PostgreSQL: one throwaway database (cc_test_<random>) is created and migrated per session,
dropped at the end; every table is truncated before each test.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import asyncpg
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_store import migrate, users
from crm_store.database import make_engine, make_sessionmaker
from crm_store.models import Base
from tests.conftest import POSTGRES_URL, postgres_available, require_server

T = TypeVar("T")

BACKENDS = ("sqlite", "postgresql")
# Cheap argon2 parameters: hashing dominates user tests otherwise. One test puts the
# real parameters back to check rehashing.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Store(NamedTuple):
    """An empty, migrated CRM store."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


def run_in_thread(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a private loop in another thread (safe from sync fixtures)."""

    async def main() -> T:
        return await work()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def create_pg_database() -> str:
    """CREATE DATABASE cc_test_<random>; its SQLAlchemy URL."""
    name = f"cc_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    """Drop a database made by `create_pg_database`, whoever is still connected."""
    conn = await asyncpg.connect(_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_unavailable_reason() -> str:
    """The skip reason when the test PostgreSQL is absent."""
    return f"PostgreSQL not reachable at {make_url(POSTGRES_URL).render_as_string()}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("crm-template") / "crm.db"
    run_in_thread(lambda: migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A throwaway PostgreSQL database migrated to head, or None when there is no server."""
    if not postgres_available():
        yield None
        return
    url = run_in_thread(create_pg_database)
    try:
        run_in_thread(lambda: migrate.upgrade(url))
        yield url
    finally:
        run_in_thread(lambda: drop_pg_database(url))


@pytest.fixture(autouse=True)
def fast_password_hasher(monkeypatch: pytest.MonkeyPatch) -> PasswordHasher:
    """Cheap argon2 parameters for the tests."""
    monkeypatch.setattr(users, "password_hasher", FAST_HASHER)
    return FAST_HASHER


async def _truncate(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_url: str | None,
) -> AsyncIterator[Store]:
    """An empty migrated store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        shutil.copyfile(sqlite_template, path)
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
    else:
        if postgres_url is None:
            require_server(pg_unavailable_reason())
        assert postgres_url is not None
        engine = make_engine(postgres_url)
        await _truncate(engine)
    try:
        yield Store(engine, make_sessionmaker(engine))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a brand-new, empty database (never migrated)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'fresh.db'}"
        return
    if not postgres_available():
        require_server(pg_unavailable_reason())
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


CountRows = Callable[[], Awaitable[dict[str, int]]]


@pytest.fixture
def count_rows(store: Store) -> CountRows:
    """An async function returning the row count of every table."""

    async def counts() -> dict[str, int]:
        result: dict[str, int] = {}
        async with store.sessionmaker() as session:
            for table in Base.metadata.sorted_tables:
                count: Any = await session.scalar(select(func.count()).select_from(table))
                result[table.name] = int(count)
        return result

    return counts
