"""`crm_store.login_sessions`: the session rows every daemon shares, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from crm_store import login_sessions, users
from crm_store.models import LoginSession, utcnow

pytestmark = pytest.mark.integration

TOKEN = "a-session-token-that-only-the-browser-holds"


async def _user(store: Any, name: str = "ann") -> int:
    async with store.sessionmaker.begin() as db:
        user = await users.create_user(db, username=name, role="agent", password="pw-123456")
        return user.id


async def _add(store: Any, user_id: int, token: str = TOKEN, **changes: Any) -> None:
    now = utcnow()
    fields: dict[str, Any] = {
        "token": token,
        "user_id": user_id,
        "csrf_token": "csrf-" + token[:8],
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "valid_after": None,
    }
    fields.update(changes)
    async with store.sessionmaker.begin() as db:
        await login_sessions.add_session(db, **fields)


async def _find(store: Any, token: str = TOKEN) -> login_sessions.StoredSession | None:
    async with store.sessionmaker() as db:
        return await login_sessions.find_session(db, token)


async def test_a_session_is_found_by_its_token_with_its_user_as_they_are_now(store: Any) -> None:
    uid = await _user(store)
    await _add(store, uid)
    found = await _find(store)
    assert found is not None
    assert (found.user_id, found.username, found.role, found.csrf_token) == (
        uid,
        "ann",
        "agent",
        "csrf-a-sessio",
    )
    assert found.last_seen_at == found.created_at
    assert not found.voided
    assert await _find(store, TOKEN + "x") is None
    assert await _find(store, "") is None


async def test_only_a_digest_of_the_token_is_stored(store: Any) -> None:
    uid = await _user(store)
    await _add(store, uid)
    async with store.sessionmaker() as db:
        rows = (await db.execute(text("SELECT * FROM login_sessions"))).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert TOKEN not in stored
    assert hashlib.sha256(TOKEN.encode()).hexdigest() in stored
    assert login_sessions.token_digest(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()
    # The digest is no key: presented as a cookie it finds nothing.
    assert await _find(store, login_sessions.token_digest(TOKEN)) is None


async def test_disabled_or_changed_users_void_their_sessions(store: Any) -> None:
    ann, bob, cid = await _user(store, "ann"), await _user(store, "bob"), await _user(store, "cid")
    await _add(store, ann, "ann-token")
    await _add(store, bob, "bob-token")
    async with store.sessionmaker() as db:
        login = await users.find_login(db, "cid")
    assert login is not None
    await _add(store, cid, "cid-old", valid_after=login.sessions_valid_after)
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "ann", False)
        await users.set_password(db, "cid", "new-pass-99")
    async with store.sessionmaker() as db:
        fresh = await users.find_login(db, "cid")
    assert fresh is not None
    await _add(store, cid, "cid-new", valid_after=fresh.sessions_valid_after)
    states = {t: await _find(store, t) for t in ("ann-token", "bob-token", "cid-old", "cid-new")}
    assert {t: s is not None and s.voided for t, s in states.items()} == {
        "ann-token": True,  # disabled
        "bob-token": False,
        "cid-old": True,  # made before the new password
        "cid-new": False,  # made under the current stamp
    }


async def test_prune_deletes_expired_idle_and_void_rows_only(store: Any) -> None:
    ann, bob = await _user(store, "ann"), await _user(store, "bob")
    now = utcnow()
    await _add(store, ann, "live")
    await _add(store, ann, "expired", expires_at=now - timedelta(seconds=1))
    await _add(store, ann, "idle", created_at=now - timedelta(minutes=30))
    await _add(store, bob, "void")
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "bob", False)
    async with store.sessionmaker.begin() as db:
        assert await login_sessions.prune_sessions(db, now, None) == 2  # expired, void
    assert await _find(store, "idle") is not None
    async with store.sessionmaker.begin() as db:
        assert await login_sessions.prune_sessions(db, now, now - timedelta(minutes=10)) == 1
    async with store.sessionmaker() as db:
        assert await login_sessions.count_sessions(db) == 1
    assert await _find(store, "live") is not None


async def test_touch_moves_last_seen_forward_only(store: Any) -> None:
    uid = await _user(store)
    await _add(store, uid)
    found = await _find(store)
    assert found is not None
    later = found.last_seen_at + timedelta(minutes=2)
    async with store.sessionmaker.begin() as db:
        assert await login_sessions.touch_sessions(db, {TOKEN: later, "unknown": later}) == 1
    async with store.sessionmaker.begin() as db:
        earlier = later - timedelta(minutes=1)
        assert await login_sessions.touch_sessions(db, {TOKEN: earlier}) == 0
    moved = await _find(store)
    assert moved is not None and moved.last_seen_at == later


async def test_delete_one_or_all_of_a_user_and_who_still_has_one(store: Any) -> None:
    ann, bob = await _user(store, "ann"), await _user(store, "bob")
    for token in ("a1", "a2"):
        await _add(store, ann, token)
    await _add(store, bob, "b1", expires_at=utcnow() - timedelta(seconds=1))
    now = utcnow()
    async with store.sessionmaker.begin() as db:
        assert await login_sessions.user_has_sessions(db, ann, now, None)
        assert not await login_sessions.user_has_sessions(db, bob, now, None)  # expired
        assert not await login_sessions.user_has_sessions(db, ann, now, now)  # all idle
        assert await login_sessions.delete_session(db, "a1") is True
        assert await login_sessions.delete_session(db, "a1") is False
        assert await login_sessions.delete_user_sessions(db, ann) == 1
        assert not await login_sessions.user_has_sessions(db, ann, now, None)
    async with store.sessionmaker.begin() as db:
        await users.set_user_active(db, "bob", False)
    await _add(store, bob, "b2")
    async with store.sessionmaker() as db:
        assert not await login_sessions.user_has_sessions(db, bob, utcnow(), None)  # void


async def test_rows_go_with_their_user(store: Any) -> None:
    uid = await _user(store)
    await _add(store, uid)
    async with store.sessionmaker.begin() as db:
        await db.execute(text("DELETE FROM audit_log"))
        await db.execute(text("DELETE FROM users"))
    async with store.sessionmaker() as db:
        assert (await db.scalars(select(LoginSession))).all() == []
