"""Component-test fixtures: the real app on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from crm_store import users
from tests.component.api_fixtures import Api, ClientFactory, ServerFactory, start_api

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters (hashing dominates otherwise)."""
    monkeypatch.setattr(users, "password_hasher", FAST_HASHER)


@pytest.fixture
async def api(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    fast_hasher: None,
) -> Api:
    """The daemon app with an admin, a supervisor and an agent."""
    return await start_api(tmp_path, aiohttp_server, aiohttp_client)
