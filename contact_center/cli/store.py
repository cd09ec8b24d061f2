"""How a command reaches the store: a database that cannot be reached is a clear error."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.config import Config
from contact_center.errors import CommandError
from crm_store import migrate
from crm_store.database import describe_database, make_engine, make_sessionmaker

T = TypeVar("T")


def database_problem(exc: BaseException) -> str:
    """The reason a database operation failed, without SQLAlchemy's wrapping and links."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)  # "Connection refused", not asyncio's wording
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # getaddrinfo's errors have their own (negative) numbers
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def run_db(config: Config, work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, with a database that cannot be reached or read as a clear error."""
    try:
        return asyncio.run(work)
    except BrokenPipeError:
        raise
    except (OSError, SQLAlchemyError) as exc:
        where = describe_database(config.database.url)
        raise CommandError(f"database {where}: {database_problem(exc)}") from None


def with_session(config: Config, work: Callable[[AsyncSession], Coroutine[Any, Any, None]]) -> None:
    """Run `work(session)` in one transaction on a migrated database."""

    async def go() -> None:
        await migrate.upgrade(config.database.url)
        engine = make_engine(config.database.url)
        try:
            async with make_sessionmaker(engine).begin() as session:
                await work(session)
        finally:
            await engine.dispose()

    run_db(config, go())
