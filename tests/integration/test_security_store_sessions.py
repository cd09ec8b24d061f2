"""`users.sessions_valid_after`: set by what must end sessions, and found by the poll."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from crm_store import users
from crm_store.models import utcnow

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


async def _stamp(store: Any, username: str) -> Any:
    async with store.sessionmaker() as session:
        record = await users.find_login(session, username)
    assert record is not None
    return record.sessions_valid_after


async def test_what_voids_sessions_and_what_does_not(store: Any) -> None:
    since = utcnow() - timedelta(seconds=1)
    async with store.sessionmaker.begin() as session:
        for name in ("ann", "bob", "cid", "dee"):
            await users.create_user(session, username=name, role="agent", password=PASSWORD)
    async with store.sessionmaker.begin() as session:
        await users.set_user_active(session, "ann", False)
        await users.set_password(session, "bob", "another passphrase")
        await users.update_user(session, "cid", role="supervisor")
        await users.update_user(session, "dee", display_name="Dee D", skills={"billing": 3})
    assert await _stamp(store, "dee") is None  # a profile change keeps the sessions
    async with store.sessionmaker() as session:
        voided = await users.sessions_voided_since(session, since)
    by_id = {uid: (active, at) for uid, active, at in voided}
    ids: dict[str, int] = {}
    async with store.sessionmaker() as session:
        for name in ("ann", "bob", "cid"):
            record = await users.find_login(session, name)
            assert record is not None
            ids[name] = record.id
    assert set(by_id) == set(ids.values())
    assert by_id[ids["ann"]][0] is False
    assert by_id[ids["bob"]][0] is True
    # Later than `since`, and only newer changes are found past a later `since`.
    first = await _stamp(store, "bob")
    async with store.sessionmaker.begin() as session:
        await users.set_password(session, "bob", "a third passphrase")
    second = await _stamp(store, "bob")
    assert second > first
    async with store.sessionmaker() as session:
        later = await users.sessions_voided_since(session, max(at for _a, at in by_id.values()))
    assert [uid for uid, _a, _t in later] == [ids["bob"]]


async def test_a_rehash_is_not_a_credential_change(store: Any) -> None:
    async with store.sessionmaker.begin() as session:
        user = await users.create_user(session, username="eve", role="agent", password=PASSWORD)
        old = user.password_hash
    async with store.sessionmaker.begin() as session:
        assert await users.store_rehash(session, user.id, old, "new-hash") is True
        # The hash changed meanwhile (another login, a new password): left alone.
        assert await users.store_rehash(session, user.id, old, "newer-hash") is False
    async with store.sessionmaker() as session:
        record = await users.find_login(session, "eve")
    assert record is not None
    assert record.password_hash == "new-hash"
    assert record.sessions_valid_after is None
