"""Alembic environment for the CRM store, configured from code (there is no alembic.ini).

`crm_store.migrate` hands over an open connection in `config.attributes["connection"]`,
so migrations run inside the caller's event loop. Without one (Alembic driven some other
way), an async engine is opened on `sqlalchemy.url` with a loop of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from crm_store.database import is_sqlite, make_engine
from crm_store.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render our column types as plain SQLAlchemy ones: migrations must not import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(sqlite: bool) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": sqlite,
        "render_item": render_item,
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (`--sql`)."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(is_sqlite(url)),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on a synchronous (run_sync) connection."""
    context.configure(connection=connection, **_options(connection.dialect.name == "sqlite"))
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    """Open an engine of our own and migrate through it."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Migrate on the connection we were given, or on a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    asyncio.run(run_async_migrations(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
