"""Engine and session set-up, the same code for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def is_sqlite(url: str) -> bool:
    """True for a SQLite database URL."""
    return make_url(url).get_backend_name() == "sqlite"


def describe_database(url: str) -> str:
    """The database URL without its password, for logs and `/status`."""
    return make_url(url).render_as_string(hide_password=True)


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite file so a fresh checkout starts without set-up."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the screen pop read while a write is in flight; foreign keys are off by
    # default in SQLite and the schema relies on them.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for `url`, with SQLite tuned for WAL and foreign keys."""
    ensure_sqlite_directory(url)
    engine = create_async_engine(url, echo=echo, pool_pre_ping=not is_sqlite(url))
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
