"""`web.sessions` and `auth.session_idle_minutes`: validated, wired to the right store, and
the stores' upkeep loop outlives a failing database."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from contact_center.app import Daemon
from contact_center.auth import revocation
from contact_center.auth.sessions import MemorySessionStore
from contact_center.auth.stored_sessions import StoreSessionStore
from contact_center.config import load_config, parse_config
from contact_center.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_sessions_are_in_the_store_unless_configured_otherwise() -> None:
    config = parse_config(None, {})
    assert config.web.sessions == "store"
    assert config.auth.session_idle_minutes is None
    shipped = load_config(REPO / "config.yaml", env={})
    assert shipped.web.sessions == "store"
    assert shipped.auth.session_idle_minutes is None


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"web": {"sessions": "redis"}}, "web.sessions"),
        ({"web": {"sessions": None}}, "web.sessions"),
        ({"auth": {"session_idle_minutes": 0}}, "auth.session_idle_minutes"),
        ({"auth": {"session_idle_minutes": "soon"}}, "auth.session_idle_minutes"),
    ],
)
def test_bad_values_name_their_key(raw: object, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    assert any(problem.startswith(where) for problem in info.value.problems), info.value.problems


def test_the_daemon_gets_the_configured_store() -> None:
    stored = Daemon(parse_config({"auth": {"session_hours": 2, "session_idle_minutes": 30}}, {}))
    assert isinstance(stored.sessions, StoreSessionStore)
    assert stored.sessions.lifetime_seconds == 7200
    assert stored.sessions.idle_seconds == 1800
    in_memory = Daemon(parse_config({"web": {"sessions": "memory"}}, {}))
    assert isinstance(in_memory.sessions, MemorySessionStore)
    assert in_memory.sessions.lifetime_seconds == 12 * 3600
    assert in_memory.sessions.idle_seconds is None


class _Flaky(MemorySessionStore):
    """Upkeep fails `failures` times (the database is down), then works."""

    def __init__(self, failures: int) -> None:
        super().__init__(3600)
        self.failures = failures
        self.calls = 0
        self.recovered_twice = asyncio.Event()

    async def maintain(self, now: float) -> None:
        self.calls += 1
        if self.calls == self.failures + 2:
            self.recovered_twice.set()
        if self.calls <= self.failures:
            raise OSError("database down")


async def test_upkeep_logs_an_outage_once_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    sessions = _Flaky(failures=3)
    caplog.set_level(logging.INFO, logger=revocation.__name__)
    task = asyncio.create_task(revocation.upkeep(sessions, interval=0.001))
    await asyncio.wait_for(sessions.recovered_twice.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    messages = [r.getMessage() for r in caplog.records if r.name == revocation.__name__]
    assert messages == [
        "cannot tidy the login sessions: database down",
        "tidying the login sessions again",
    ]
