"""Logins under attack: a flood of bad logins stalls no one, and the limit holds exactly.

The hasher used here is argon2 with a fixed sleep in `verify` (a server-grade cost without
burning the two CPUs the tests share); it counts the calls and how many ran at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher

from crm_store import users
from tests.component.api_fixtures import Api, ClientFactory, ServerFactory, start_api

VERIFY_SECONDS = 0.4


class SlowHasher(PasswordHasher):
    """Cheap argon2 parameters plus a fixed delay in `verify`; counts what reaches it."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(VERIFY_SECONDS)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1

    def reset(self) -> None:
        with self._lock:
            self.calls = self.most_at_once = 0


@pytest.fixture
def slow_hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowHasher]:
    hasher = SlowHasher()
    monkeypatch.setattr(users, "password_hasher", hasher)
    yield hasher


@pytest.fixture
async def slow_api(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: ClientFactory,
    slow_hasher: SlowHasher,
) -> Api:
    return await start_api(tmp_path, aiohttp_server, aiohttp_client)


async def _try(api: Api, username: str, password: str = "wrong-password") -> Any:
    client = await api.anonymous()
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    body = await response.json()
    return response.status, body, response.headers


async def test_a_flood_of_bad_logins_does_not_stall_a_logged_in_supervisor(
    slow_api: Api, slow_hasher: SlowHasher
) -> None:
    supervisor = await slow_api.login("supervisor")
    slow_hasher.reset()
    flood = [
        asyncio.ensure_future(_try(slow_api, f"ghost{i}" if i % 3 else "agent")) for i in range(60)
    ]
    await asyncio.sleep(0.1)  # the flood is in flight
    started = time.monotonic()
    response = await supervisor.get("/api/v1/customers?q=a")
    took = time.monotonic() - started
    assert response.status == 200
    results = await asyncio.gather(*flood)
    assert took < 1.0, f"a supervisor's request waited {took:.1f} s behind the logins"
    statuses = sorted({status for status, _body, _headers in results})
    assert set(statuses) <= {401, 429, 503}, statuses
    # The hashes ran on a small pool of their own, not on one thread per login.
    assert slow_hasher.most_at_once <= 2
    busy = [(body, headers) for status, body, headers in results if status == 503]
    assert busy, "logins beyond the in-flight cap are refused at once"
    for body, headers in busy:
        assert body["error"]["id"] == "auth.busy"
        assert int(headers["Retry-After"]) >= 1


async def test_logins_beyond_the_in_flight_cap_are_refused_at_once(
    slow_api: Api, slow_hasher: SlowHasher
) -> None:
    started = time.monotonic()
    flood = [asyncio.ensure_future(_try(slow_api, f"nobody{i}")) for i in range(40)]
    done, _pending = await asyncio.wait(flood, timeout=VERIFY_SECONDS * 0.75)
    # Refusals came back before even one hash could have finished: nothing queued for them.
    early = [f.result()[0] for f in done]
    assert early and set(early) == {503}, early
    await asyncio.gather(*flood)
    assert time.monotonic() - started < 10


async def test_concurrent_wrong_passwords_cannot_exceed_the_limit(
    slow_api: Api, slow_hasher: SlowHasher
) -> None:
    slow_hasher.reset()
    results = await asyncio.gather(*(_try(slow_api, "agent") for _ in range(20)))
    statuses = [status for status, _body, _headers in results]
    assert statuses.count(401) == 5  # auth.login_attempts_per_minute
    assert statuses.count(429) == 15
    assert slow_hasher.calls == 5  # the refused ones never reached the hasher
    status, body, headers = await _try(slow_api, "agent", "agent-pass-1")
    assert status == 429 and body["error"]["id"] == "auth.rate_limited"
    assert 1 <= int(headers["Retry-After"]) <= 60


async def test_good_logins_do_not_use_up_the_address_allowance(api: Api) -> None:
    # 55 good logins from one address (a floor behind NAT), more than the 50 failures the
    # address may have: none is refused.
    for _ in range(11):
        results = await asyncio.gather(*(_try(api, "agent", "agent-pass-1") for _ in range(5)))
        assert [status for status, _b, _h in results] == [200] * 5


@pytest.mark.parametrize(
    "variants",
    [
        [" agent", "agent ", "\tagent", "AGENT", " Agent\n", "aGeNt  ", "\u00a0agent", "agent\r"],
    ],
)
async def test_whitespace_and_case_variants_share_one_limit(api: Api, variants: list[str]) -> None:
    statuses = [(await _try(api, name))[0] for name in variants]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}, statuses
    # The real user is locked out under every spelling, the right password included.
    assert (await _try(api, "  AGENT ", "agent-pass-1"))[0] == 429
    assert (await _try(api, "agent", "agent-pass-1"))[0] == 429
    # Someone else is not.
    assert (await _try(api, "supervisor", "super-pass-1"))[0] == 200


def test_the_limiter_keys_on_the_name_the_lookup_uses() -> None:
    from contact_center.auth.ratelimit import LoginRateLimiter

    limiter = LoginRateLimiter(2)
    names = [" Agent", "AGENT\t", "\u212aate", "KATE "]
    assert users.canonical_username(names[0]) == users.canonical_username(names[1]) == "agent"
    # The Kelvin sign lower-cases to an ASCII k: the look-up finds "kate", so must the limit.
    assert users.canonical_username(names[2]) == users.canonical_username(names[3]) == "kate"
    assert limiter.reserve(names[0], "10.0.0.1", 0.0) is None
    assert limiter.reserve(names[1], "10.0.0.2", 0.0) is None
    assert limiter.reserve("agent", "10.0.0.3", 0.0) is not None
    assert limiter.reserve(names[2], "10.0.0.1", 0.0) is None
    assert limiter.reserve(names[3], "10.0.0.1", 0.0) is None
    assert limiter.reserve("kate", "10.0.0.4", 0.0) is not None


async def test_login_upgrades_an_outdated_hash_in_its_own_short_session(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contact_center.keys import DAEMON

    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(users, "password_hasher", stronger)
    agent = await api.login("agent")
    sessionmaker = api.app[DAEMON].sessionmaker
    assert sessionmaker is not None
    async with sessionmaker() as db:
        record = await users.find_login(db, "agent")
    assert record is not None
    assert not stronger.check_needs_rehash(record.password_hash)
    assert record.sessions_valid_after is None  # not a credential change
    await asyncio.sleep(1.5)  # a revocation poll or more: the session stays
    assert (await agent.get("/api/v1/auth/me")).status == 200
    assert (await _try(api, "agent", "agent-pass-1"))[0] == 200
