"""Is this exception a database outage (locked, down, out of connections), or a bug?

One definition for every layer that must tell them apart: the web boundary answers an
outage with 503 `database.unavailable`, the IVR and routing hold their writes in the
outbox and go on serving the caller. A wrong write (a constraint, bad SQL) is never an
outage: it would be retried for ever.
"""

from __future__ import annotations

import sqlite3
import traceback
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# SQLite primary result codes that mean "the database cannot serve now", not "bad SQL":
# BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_UNAVAILABLE = {5, 6, 7, 8, 10, 13, 14, 15}
# PostgreSQL SQLSTATEs of the same kind: class 08 (connection), 53 (resources),
# 57P01-57P03 (shut down / starting up).
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P")
_DB_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    # The driver's error hides behind SQLAlchemy's `.orig` and behind `raise ... from`.
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _raised_by_database_code(exc: BaseException) -> bool:
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if str(frame.f_globals.get("__name__", "")).startswith(_DB_MODULES):
            return True
    return False


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached or written now (an outage)."""
    for err in _chain(exc):
        if isinstance(err, sa_exc.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
            return True
        if isinstance(err, sqlite3.Error):
            code = getattr(err, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_UNAVAILABLE:
                return True
        sqlstate = getattr(err, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES):
            return True
        if type(err).__module__.startswith("asyncpg") and type(err).__name__ in (
            "ConnectionDoesNotExistError",
            "InterfaceError",
        ):
            return True
        # asyncpg's connect() lets socket errors through unwrapped (refused, reset, DNS,
        # time-outs); they count only when database code raised them.
        if isinstance(err, OSError) and _raised_by_database_code(err):
            return True
    return False
