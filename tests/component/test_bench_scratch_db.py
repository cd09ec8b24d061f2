"""bench/scratch_db.py: where a benchmark's store lives, and that a scratch PostgreSQL
database never outlives its run (nor touches the database the URL names)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from bench.scratch_db import (
    SCRATCH_PREFIX,
    asyncpg_dsn,
    backend_name,
    describe_load,
    is_postgres,
    load_average,
    scratch_database,
)
from tests.conftest import POSTGRES_URL, postgres_available, require_server


async def _exists(name: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_default_is_a_sqlite_file_in_the_directory_given(tmp_path: Path) -> None:
    async with scratch_database(None, tmp_path) as url:
        assert url == f"sqlite+aiosqlite:///{tmp_path / 'cc.db'}"
    assert backend_name(None) == "sqlite" and not is_postgres(None)


async def test_a_sqlite_url_is_used_as_it_is(tmp_path: Path) -> None:
    given = f"sqlite+aiosqlite:///{tmp_path / 'mine.db'}"
    async with scratch_database(given, tmp_path) as url:
        assert url == given
    assert backend_name(given) == "sqlite"


def test_dsn_and_load() -> None:
    assert (
        asyncpg_dsn("postgresql+asyncpg://u:p%40ss@h:5433/db") == "postgresql://u:p%40ss@h:5433/db"
    )
    assert is_postgres("postgresql+asyncpg://127.0.0.1/test")
    assert len(load_average()) == 3
    assert describe_load().startswith("load ") and "CPUs" in describe_load()


async def test_postgres_gets_a_scratch_database_dropped_afterwards(tmp_path: Path) -> None:
    if not postgres_available():
        require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    async with scratch_database(POSTGRES_URL, tmp_path) as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith(SCRATCH_PREFIX)
        assert await _exists(name)
        # A connection left open does not keep it alive (DROP ... WITH (FORCE)).
        left_open = await asyncpg.connect(asyncpg_dsn(url))
        await left_open.execute("CREATE TABLE t (x int)")
    assert not await _exists(name)
    left_open.terminate()


async def test_postgres_scratch_is_dropped_when_the_run_fails(tmp_path: Path) -> None:
    if not postgres_available():
        require_server(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    with pytest.raises(RuntimeError, match="bench failed"):
        async with scratch_database(POSTGRES_URL, tmp_path) as url:
            name = url.rsplit("/", 1)[1]
            raise RuntimeError("bench failed")
    assert not await _exists(name)
