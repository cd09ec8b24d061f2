"""Schema migrations with Alembic, configured from code and safe to call from async code.

The migrations live in `crm_store/migrations` and are found through this package's path,
so they run from any working directory. Everything runs on an async engine through
`run_sync`, inside the caller's event loop (the daemon migrates at start-up).

From a shell::

    python -m crm_store.migrate upgrade sqlite+aiosqlite:///data/crm.db
    python -m crm_store.migrate current postgresql+asyncpg://user@host/db
    python -m crm_store.migrate revision -m "add foo" sqlite+aiosqlite:///tmp/dev.db
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from crm_store.database import ensure_sqlite_directory, is_sqlite
from crm_store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant will do: it only has to be the same for every process migrating the database.
_PG_LOCK_KEY = 7_345_112_001

T = TypeVar("T")


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at our migrations, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Config values go through ConfigParser interpolation: escape the % of encoded passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision this release knows."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def _sqlite_migration_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Batch migrations rebuild tables (copy, drop, rename): with foreign keys enforced the
    # drop would cascade or fail, so they are off while migrating and checked afterwards.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _migration_engine(url: str) -> AsyncEngine:
    ensure_sqlite_directory(url)
    engine = create_async_engine(url, poolclass=NullPool)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_migration_pragmas)
    return engine


async def _run(url: str, work: Callable[[Connection], T]) -> T:
    """Run `work` on a synchronous view of one connection, in one transaction."""
    engine = _migration_engine(url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two daemons starting together must not both create the schema.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY}
                )
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(url: str, connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(url, connection), revision)
    if connection.dialect.name == "sqlite":
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise StoreError(f"migration left foreign keys broken: {problems[:5]}")


def _describe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _check_upgradable(url: str, connection: Connection, current: str | None) -> None:
    """Refuse databases that migrating would damage or cannot understand."""
    if current is None:
        tables = set(inspect(connection).get_table_names())
        if "customers" in tables or "users" in tables:
            raise StoreError(
                f"the database at {_describe(url)} has CRM tables but no migration history; "
                "it was not created by this program's migrations, refusing to touch it"
            )
        return
    try:
        ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(current)
    except (RevisionError, CommandError):
        raise StoreError(
            f"the database at {_describe(url)} is at schema revision {current!r}, unknown to "
            "this release (written by a newer version?)"
        ) from None


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (default: the newest)."""

    def work(connection: Connection) -> None:
        _check_upgradable(url, connection, _current(connection))
        _upgrade(url, connection, revision)

    await _run(url, work)


async def current_revision(url: str) -> str | None:
    """The revision the database is at, None for a database never migrated."""
    return await _run(url, _current)


async def is_up_to_date(url: str) -> bool:
    """True when the database is at this release's newest revision."""
    return await current_revision(url) == head_revision()


async def ensure_schema(url: str) -> bool:
    """Migrate a new or older database to the newest revision; True if anything was applied."""

    def work(connection: Connection) -> bool:
        current = _current(connection)
        if current == head_revision():
            return False
        _check_upgradable(url, connection, current)
        _upgrade(url, connection, "head")
        return True

    return await _run(url, work)


async def _autogenerate(url: str, message: str) -> None:
    def work(connection: Connection) -> None:
        command.revision(alembic_config(url, connection), message=message, autogenerate=True)

    await _run(url, work)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: upgrade, current, check, or autogenerate a revision."""
    parser = argparse.ArgumentParser(prog="python -m crm_store.migrate", description=__doc__)
    parser.add_argument("action", choices=("upgrade", "current", "check", "revision"))
    parser.add_argument("url", help="database URL, e.g. sqlite+aiosqlite:///data/crm.db")
    parser.add_argument("--to", default="head", help="revision to upgrade to (default head)")
    parser.add_argument("-m", "--message", default="change", help="message of a new revision")
    args = parser.parse_args(argv)
    try:
        if args.action == "upgrade":
            asyncio.run(upgrade(args.url, args.to))
            print(f"at {asyncio.run(current_revision(args.url))}")
        elif args.action == "current":
            print(asyncio.run(current_revision(args.url)) or "(empty database)")
        elif args.action == "check":
            ok = asyncio.run(is_up_to_date(args.url))
            print("up to date" if ok else f"behind: newest is {head_revision()}")
            return 0 if ok else 1
        else:
            asyncio.run(_autogenerate(args.url, args.message))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
