"""Alembic migrations: a fresh upgrade matches the models exactly, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from crm_store import migrate
from crm_store.database import make_engine
from crm_store.errors import StoreError
from crm_store.models import Base

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def _on_connection(url: str, work: Any) -> Any:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_fresh_upgrade_matches_the_models(fresh_url: str) -> None:
    assert await migrate.current_revision(fresh_url) is None
    assert not await migrate.is_up_to_date(fresh_url)
    await migrate.upgrade(fresh_url)
    assert await migrate.current_revision(fresh_url) == migrate.head_revision() == "0006"
    assert await migrate.is_up_to_date(fresh_url)
    assert await _on_connection(fresh_url, _diff) == []


async def test_ensure_schema_applies_once(fresh_url: str) -> None:
    assert await migrate.ensure_schema(fresh_url) is True
    assert await migrate.ensure_schema(fresh_url) is False
    assert await migrate.is_up_to_date(fresh_url)


async def test_downgrade_to_base_and_back(fresh_url: str) -> None:
    await migrate.upgrade(fresh_url)

    def down(connection: Connection) -> list[str]:
        command.downgrade(migrate.alembic_config(fresh_url, connection), "base")
        return sorted(inspect(connection).get_table_names())

    assert await _on_connection(fresh_url, down) == ["alembic_version"]
    assert await migrate.current_revision(fresh_url) is None
    assert await migrate.ensure_schema(fresh_url) is True
    assert await _on_connection(fresh_url, _diff) == []


async def test_refuses_tables_without_history(fresh_url: str) -> None:
    def create_all(connection: Connection) -> None:
        Base.metadata.create_all(connection)

    await _on_connection(fresh_url, create_all)
    with pytest.raises(StoreError, match="no migration history"):
        await migrate.ensure_schema(fresh_url)


async def test_refuses_a_revision_from_the_future(fresh_url: str) -> None:
    await migrate.upgrade(fresh_url)

    def bump(connection: Connection) -> None:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))

    await _on_connection(fresh_url, bump)
    assert not await migrate.is_up_to_date(fresh_url)
    with pytest.raises(StoreError, match="unknown to this release"):
        await migrate.ensure_schema(fresh_url)


def test_command_line_from_another_directory(tmp_path: Path) -> None:
    """The migrations are found through the package, not the working directory."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "crm_store.migrate"]
    check = subprocess.run([*run, "check", url], cwd=tmp_path, env=env, capture_output=True)
    assert check.returncode == 1, check.stderr
    done = subprocess.run(
        [*run, "upgrade", url], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "at 0006" in done.stdout
    check = subprocess.run([*run, "check", url], cwd=tmp_path, env=env, capture_output=True)
    assert check.returncode == 0, check.stderr


async def test_store_fixture_is_migrated(store: Any) -> None:
    assert await migrate.is_up_to_date(store.engine.url.render_as_string(hide_password=False))


async def test_upgrade_from_0001_keeps_every_row(fresh_url: str) -> None:
    from sqlalchemy import text

    from crm_store.database import make_engine

    await migrate.upgrade(fresh_url, "0001")
    engine = make_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, username, display_name, role, password_hash,"
                    " is_active, skills, capacities, created_at, updated_at) VALUES (1, 'kept',"
                    " 'Kept', 'agent', 'x', true, '{}', '{}', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                )
            )
        await migrate.upgrade(fresh_url)
        assert await migrate.current_revision(fresh_url) == migrate.head_revision()
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT username FROM users"))).scalars().all()
            states = (await conn.execute(text("SELECT count(*) FROM agent_states"))).scalar()
            voided = (
                await conn.execute(text("SELECT sessions_valid_after FROM users"))
            ).scalar_one()
            logged = (await conn.execute(text("SELECT count(*) FROM contact_events"))).scalar()
            logins = (await conn.execute(text("SELECT count(*) FROM login_sessions"))).scalar()
        assert list(names) == ["kept"]
        assert states == 0
        assert voided is None  # 0003: existing users keep their sessions
        assert logged == 0  # 0004: the log starts empty (no history is made up)
        assert logins == 0  # 0005: nobody is logged in through the store yet
    finally:
        await engine.dispose()


async def test_login_sessions_down_to_0004_and_up_again(fresh_url: str) -> None:
    """0005 down drops only the sessions (everyone logs in again); up brings the table back."""
    await migrate.upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, username, display_name, role, password_hash,"
                    " is_active, skills, capacities, created_at, updated_at) VALUES (1, 'kept',"
                    " 'Kept', 'agent', 'x', true, '{}', '{}', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO login_sessions (token_digest, user_id, csrf_token, created_at,"
                    " last_seen_at, expires_at) VALUES ('d', 1, 'c', CURRENT_TIMESTAMP,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )

        def down(connection: Connection) -> list[str]:
            command.downgrade(migrate.alembic_config(fresh_url, connection), "0004")
            return sorted(inspect(connection).get_table_names())

        tables = await _on_connection(fresh_url, down)
        assert "login_sessions" not in tables and "users" in tables
        assert await migrate.current_revision(fresh_url) == "0004"
        assert not await migrate.is_up_to_date(fresh_url)
        async with engine.connect() as conn:
            names = (await conn.execute(text("SELECT username FROM users"))).scalars().all()
        assert list(names) == ["kept"]
        await migrate.upgrade(fresh_url)
        assert await migrate.current_revision(fresh_url) == migrate.head_revision()
        assert await _on_connection(fresh_url, _diff) == []
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM login_sessions"))).scalar()
        assert count == 0
    finally:
        await engine.dispose()


async def test_messages_keep_their_rows_through_0006_and_back(fresh_url: str) -> None:
    """0006 gives stored messages a delivery state (outbound: sent, inbound: received) and
    keeps every row; down to 0005 keeps the bodies and drops only the new columns."""
    await migrate.upgrade(fresh_url, "0005")
    engine = make_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO interactions (id, channel, direction, started_at) VALUES"
                    " (1, 'email', 'inbound', CURRENT_TIMESTAMP)"
                )
            )
            for n, direction in ((1, "inbound"), (2, "outbound")):
                await conn.execute(
                    text(
                        "INSERT INTO messages (id, interaction_id, channel, direction, body,"
                        f" provider_id, created_at) VALUES ({n}, 1, 'email', '{direction}',"
                        f" 'body {n}', 'id-{n}', CURRENT_TIMESTAMP)"
                    )
                )
        await migrate.upgrade(fresh_url)
        assert await _on_connection(fresh_url, _diff) == []
        async with engine.connect() as conn:
            rows = (
                await conn.execute(text("SELECT id, status, attempts FROM messages ORDER BY id"))
            ).all()
        assert [tuple(r) for r in rows] == [(1, "received", 0), (2, "sent", 0)]

        def down(connection: Connection) -> list[str]:
            command.downgrade(migrate.alembic_config(fresh_url, connection), "0005")
            return sorted(inspect(connection).get_table_names())

        tables = await _on_connection(fresh_url, down)
        assert "opt_outs" not in tables and "channel_cursors" not in tables
        async with engine.connect() as conn:
            bodies = (
                (await conn.execute(text("SELECT body FROM messages ORDER BY id"))).scalars().all()
            )
        assert list(bodies) == ["body 1", "body 2"]
        await migrate.upgrade(fresh_url)
        assert await _on_connection(fresh_url, _diff) == []
    finally:
        await engine.dispose()
