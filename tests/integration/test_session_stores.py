"""The two session stores behind `web.sessions` keep one contract, on SQLite and PostgreSQL.

The same test bodies run on `memory` and on `store`; what only the store can do (a second
daemon, a restart) is tested below them. `now` is a parameter of every call, so expiry
is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from contact_center.auth.sessions import MemorySessionStore, SessionStore, WebSession
from contact_center.auth.stored_sessions import PRUNE_SECONDS, TOUCH_SECONDS, StoreSessionStore
from crm_store import login_sessions, users

pytestmark = pytest.mark.integration

HOUR = 3600.0
IDLE = 600.0

Factory = Callable[..., SessionStore]


@pytest.fixture(params=["memory", "store"])
def make_sessions(request: pytest.FixtureRequest, store: Any) -> Factory:
    """A function making a session store of the kind under test (on the test database)."""

    def make(idle: float | None = None) -> SessionStore:
        if request.param == "memory":
            return MemorySessionStore(HOUR, idle)
        return StoreSessionStore(lambda: store.sessionmaker, HOUR, idle)

    return make


async def _user(store: Any, name: str) -> tuple[int, Any]:
    """A new user's id and their `sessions_valid_after` (what a login reads)."""
    async with store.sessionmaker.begin() as db:
        await users.create_user(db, username=name, role="agent", password="pw-123456")
    async with store.sessionmaker() as db:
        login = await users.find_login(db, name)
    assert login is not None
    return login.id, login.sessions_valid_after


async def _login(sessions: SessionStore, store: Any, name: str, now: float) -> WebSession:
    async with store.sessionmaker() as db:
        login = await users.find_login(db, name)
    assert login is not None
    return await sessions.create(
        user_id=login.id,
        username=login.username,
        display_name=login.display_name,
        role=login.role,
        now=now,
        valid_after=login.sessions_valid_after,
    )


async def _stamp(store: Any, name: str) -> tuple[int, tuple[bool, Any]]:
    """What the revocation poll reads of a user: id -> (active, sessions_valid_after)."""
    async with store.sessionmaker() as db:
        login = await users.find_login(db, name)
    assert login is not None and login.sessions_valid_after is not None
    return login.id, (login.is_active, login.sessions_valid_after)


# --- the contract, on both kinds ---------------------------------------------------


async def test_a_session_is_found_by_its_token_until_it_expires(
    make_sessions: Factory, store: Any
) -> None:
    sessions = make_sessions()
    await _user(store, "ann")
    now = time.time()
    made = await _login(sessions, store, "ann", now)
    assert len(sessions) == 1
    assert made.expires_at == pytest.approx(now + HOUR, abs=1e-5)
    assert made.token != made.csrf_token and len(made.token) >= 43
    found = await sessions.get(made.token, now + 1)
    assert found is not None
    assert (found.user_id, found.username, found.role, found.csrf_token) == (
        made.user_id,
        "ann",
        "agent",
        made.csrf_token,
    )
    assert found.csrf_matches(made.csrf_token) and not found.csrf_matches("nope")
    assert await sessions.get(None, now) is None
    assert await sessions.get("", now) is None
    assert await sessions.get(made.token + "x", now) is None
    assert await sessions.get(made.csrf_token, now) is None
    # Absolute expiry: however busy the session was.
    assert await sessions.get(made.token, now + HOUR - 1) is not None
    assert await sessions.has_sessions(made.user_id, now + HOUR - 1)
    assert not await sessions.has_sessions(made.user_id, now + HOUR)
    assert await sessions.get(made.token, now + HOUR) is None


async def test_an_idle_session_ends_and_a_used_one_does_not(
    make_sessions: Factory, store: Any
) -> None:
    sessions = make_sessions(idle=IDLE)
    await _user(store, "ann")
    now = time.time()
    used = await _login(sessions, store, "ann", now)
    idle = await _login(sessions, store, "ann", now)
    # Used every few minutes: past the idle time since the login, and still alive.
    for minutes in (4, 8, 12, 16):
        at = now + minutes * 60
        assert await sessions.get(used.token, at) is not None
        await sessions.maintain(at)  # the store writes "last seen" here
    last = now + 16 * 60 + IDLE - TOUCH_SECONDS - 1
    assert await sessions.get(used.token, last) is not None
    assert await sessions.get(idle.token, now + IDLE) is None
    assert await sessions.get(used.token, last + IDLE) is None


async def test_logout_and_revoke_user_end_sessions(make_sessions: Factory, store: Any) -> None:
    sessions = make_sessions()
    ann, _ = await _user(store, "ann")
    bob, _ = await _user(store, "bob")
    now = time.time()
    first = await _login(sessions, store, "ann", now)
    second = await _login(sessions, store, "ann", now)
    third = await _login(sessions, store, "ann", now)
    other = await _login(sessions, store, "bob", now)
    await sessions.revoke(first.token)
    await sessions.revoke(first.token)  # twice: harmless
    assert await sessions.get(first.token, now) is None
    assert await sessions.has_sessions(ann, now)
    assert await sessions.revoke_user(ann) == 2
    assert await sessions.get(second.token, now) is None
    assert await sessions.get(third.token, now) is None
    assert not await sessions.has_sessions(ann, now)
    assert await sessions.get(other.token, now) is not None
    assert await sessions.has_sessions(bob, now)
    assert await sessions.revoke_user(ann) == 0


async def test_revoke_stale_ends_sessions_voided_in_the_store(
    make_sessions: Factory, store: Any
) -> None:
    sessions = make_sessions()
    await _user(store, "ann")
    await _user(store, "bob")
    await _user(store, "cid")
    now = time.time()
    ann = await _login(sessions, store, "ann", now)
    bob = await _login(sessions, store, "bob", now)
    cid = await _login(sessions, store, "cid", now)
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "ann", False)  # disabled
        await users.set_password(db, "bob", "new-pass-99")  # new password
    fresh_bob = await _login(sessions, store, "bob", now + 1)  # after the change
    voided = dict([await _stamp(store, "ann"), await _stamp(store, "bob")])
    assert await sessions.revoke_stale({}) == set()
    assert await sessions.revoke_stale(voided) == {ann.user_id, bob.user_id}
    assert await sessions.revoke_stale(voided) == set()  # polled again: nothing more
    assert await sessions.get(ann.token, now + 2) is None
    assert await sessions.get(bob.token, now + 2) is None
    assert await sessions.get(fresh_bob.token, now + 2) is not None
    assert await sessions.get(cid.token, now + 2) is not None


async def test_maintain_drops_what_expired(make_sessions: Factory, store: Any) -> None:
    sessions = make_sessions()
    await _user(store, "ann")
    now = time.time()
    await _login(sessions, store, "ann", now)
    kept = await _login(sessions, store, "ann", now + 100)
    await sessions.maintain(now + HOUR + 1)
    assert len(sessions) == 1
    assert await sessions.get(kept.token, now + HOUR + 1) is not None


# --- only the store: several daemons, restarts, the database's view ------------------


def _stored(store: Any, idle: float | None = None) -> StoreSessionStore:
    return StoreSessionStore(lambda: store.sessionmaker, HOUR, idle)


async def test_a_second_daemon_accepts_the_session_and_sees_the_logout(store: Any) -> None:
    first, second = _stored(store), _stored(store)
    await _user(store, "ann")
    now = time.time()
    made = await _login(first, store, "ann", now)
    seen = await second.get(made.token, now + 1)
    assert seen is not None
    assert (seen.user_id, seen.csrf_token, seen.expires_at) == (
        made.user_id,
        made.csrf_token,
        made.expires_at,
    )
    assert len(second) == 1  # it now knows the session (to close its sockets if voided)
    await second.revoke(made.token)
    assert await first.get(made.token, now + 2) is None
    assert not await first.has_sessions(made.user_id, now + 2)


async def test_a_restart_keeps_the_session(store: Any) -> None:
    await _user(store, "ann")
    now = time.time()
    made = await _login(_stored(store), store, "ann", now)
    after_restart = _stored(store)
    assert len(after_restart) == 0
    assert await after_restart.get(made.token, now + 60) is not None


async def test_a_voided_session_is_refused_at_once_by_every_daemon(store: Any) -> None:
    first, second = _stored(store), _stored(store)
    await _user(store, "ann")
    now = time.time()
    made = await _login(first, store, "ann", now)
    assert await second.get(made.token, now) is not None
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "ann", False)
    # No poll has run: the look-up itself reads the user.
    assert await first.get(made.token, now + 1) is None
    assert await second.get(made.token, now + 1) is None
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "ann", True)
    # Enabled again, the old session stays void: its stamp is older.
    assert await first.get(made.token, now + 2) is None


async def test_the_revocation_poll_closes_sockets_on_the_daemons_that_served_it(
    store: Any,
) -> None:
    first, second, third = _stored(store), _stored(store), _stored(store)
    await _user(store, "ann")
    now = time.time()
    made = await _login(first, store, "ann", now)
    assert await second.get(made.token, now) is not None
    async with store.sessionmaker.begin() as db:
        await users.set_password(db, "ann", "new-pass-99")
    voided = dict([await _stamp(store, "ann")])
    # Refused by a look-up before the poll came: the poll still reports it.
    assert await first.get(made.token, now + 1) is None
    # Each daemon that made or served the session ends it (and closes its sockets).
    assert await first.revoke_stale(voided) == {made.user_id}
    assert await second.revoke_stale(voided) == {made.user_id}
    assert await third.revoke_stale(voided) == set()


async def test_the_token_is_not_stored_in_clear(store: Any) -> None:
    sessions = _stored(store)
    await _user(store, "ann")
    made = await _login(sessions, store, "ann", time.time())
    async with store.sessionmaker() as db:
        rows = (await db.execute(text("SELECT * FROM login_sessions"))).all()
    assert len(rows) == 1
    assert made.token not in " ".join(str(value) for value in rows[0])
    # A database reader who presents what is stored gets nothing.
    for value in rows[0]:
        assert await _stored(store).get(str(value), time.time()) is None


async def test_last_seen_is_written_in_the_background_at_most_once_a_minute(
    store: Any,
) -> None:
    sessions = _stored(store, idle=IDLE)
    await _user(store, "ann")
    now = time.time()
    made = await _login(sessions, store, "ann", now)
    written: list[float] = []

    async def last_seen() -> float:
        async with store.sessionmaker() as db:
            row = await login_sessions.find_session(db, made.token)
        assert row is not None
        return row.last_seen_at.timestamp()

    for offset in (10.0, 30.0, TOUCH_SECONDS + 1, TOUCH_SECONDS + 20):
        assert await sessions.get(made.token, now + offset) is not None
        await sessions.maintain(now + offset)
        written.append(await last_seen())
    assert written[0] == written[1] == pytest.approx(now)  # within the minute: no write
    assert written[2] == written[3] == pytest.approx(now + TOUCH_SECONDS + 1)
    # Another daemon reads the written time for the idle expiry.
    seen = now + TOUCH_SECONDS + 1
    assert await _stored(store, idle=IDLE).get(made.token, seen + IDLE - 1) is not None
    assert await _stored(store, idle=IDLE).get(made.token, seen + IDLE + 1) is None


async def test_maintain_prunes_the_dead_rows_once_a_minute(store: Any) -> None:
    sessions = _stored(store)
    ann, _ = await _user(store, "ann")
    await _user(store, "bob")
    now = time.time()
    await _login(sessions, store, "ann", now - HOUR - 1)  # expired
    await _login(sessions, store, "bob", now)
    await _login(sessions, store, "ann", now)
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "bob", False)  # void
    await sessions.maintain(now)

    async def rows() -> int:
        async with store.sessionmaker() as db:
            return await login_sessions.count_sessions(db)

    assert await rows() == 1
    assert len(sessions) == 2  # bob's is forgotten by the poll (revoke_stale), not here
    await _login(sessions, store, "ann", now - HOUR + 10)
    await sessions.maintain(now + 20)  # within the minute: not pruned yet
    assert await rows() == 2
    await sessions.maintain(now + PRUNE_SECONDS)
    assert await rows() == 1
    assert await sessions.has_sessions(ann, now + PRUNE_SECONDS)


async def test_a_store_outage_fails_the_call_and_loses_no_last_seen(store: Any) -> None:
    sessions = _stored(store, idle=IDLE)
    await _user(store, "ann")
    now = time.time()
    made = await _login(sessions, store, "ann", now)
    assert await sessions.get(made.token, now + TOUCH_SECONDS) is not None
    broken = StoreSessionStore(lambda: _Failing(), HOUR, IDLE)  # type: ignore[arg-type,return-value]
    broken._unwritten = dict(sessions._unwritten)
    with pytest.raises(OSError, match="database down"):
        await broken.maintain(now + TOUCH_SECONDS)
    assert broken._unwritten == sessions._unwritten  # kept for the next try
    with pytest.raises(OSError, match="database down"):
        await broken.get(made.token, now)
    await sessions.maintain(now + TOUCH_SECONDS)
    assert sessions._unwritten == {}


class _Failing:
    """A sessionmaker whose database is down."""

    def __call__(self) -> Any:
        raise OSError("database down")

    def begin(self) -> Any:
        raise OSError("database down")
