"""Where a benchmark keeps its CRM store: a temporary SQLite file, or a scratch PostgreSQL.

Every benchmark that uses the store takes `--database-url` and passes it here:

- nothing: a SQLite file in a temporary directory the caller gives (the default);
- a SQLite URL: that file;
- a PostgreSQL URL (`postgresql+asyncpg://127.0.0.1:5432/test`): the database in the URL
  is only the way in. A database of its own, `cc_bench_<random>`, is created next to it
  for the run and dropped afterwards (WITH (FORCE), so connections a failed run left open
  do not keep it alive), so nothing is ever written into the named database itself.

Also here: the machine's load average, which every benchmark prints beside its figures
(the machine is small and shared, so a figure without it means little).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

SCRATCH_PREFIX = "cc_bench_"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://127.0.0.1:5432/test"


def is_postgres(url: str | None) -> bool:
    """True for a PostgreSQL URL."""
    return url is not None and make_url(url).get_backend_name() == "postgresql"


def backend_name(url: str | None) -> str:
    """ "sqlite" or "postgresql", for the figures."""
    return "postgresql" if is_postgres(url) else "sqlite"


def asyncpg_dsn(url: str | URL) -> str:
    """The plain libpq DSN asyncpg takes for a SQLAlchemy URL (driver name dropped)."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages (zeros where the system has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def describe_load() -> str:
    """ "load 0.31 0.26 0.11 on 2 CPUs", for a figure's line."""
    one, five, fifteen = load_average()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


@asynccontextmanager
async def scratch_database(url: str | None, tmp: Path, name: str = "cc.db") -> AsyncIterator[str]:
    """The SQLAlchemy URL of an empty store for one run (see the module docstring)."""
    if url is None:
        yield f"sqlite+aiosqlite:///{tmp / name}"
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    scratch = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    admin = await asyncpg.connect(asyncpg_dsn(parsed))
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
        try:
            yield parsed.set(database=scratch).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    finally:
        await admin.close()
