"""Users: creation rules, hashed passwords, authentication, updates and their audit."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from crm_store import audit, users
from crm_store.actors import Actor
from crm_store.errors import Conflict, InvalidData, NotFound
from crm_store.models import User

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ADMIN = Actor(None, "root", "admin")


async def _add(store: Any, username: str = "alice", **extra: Any) -> User:
    fields: dict[str, Any] = {"role": "agent", "password": PASSWORD, **extra}
    async with store.sessionmaker.begin() as session:
        return await users.create_user(session, username=username, **fields)


async def test_create_user_hashes_the_password(store: Any) -> None:
    user = await _add(
        store,
        "Alice",
        display_name="Alice Liddell",
        skills={"billing": 7, "spanish": 4},
        capacities={"voice": 1, "chat": 3},
        device="PJSIP/1001",
    )
    assert user.id is not None
    assert user.username == "alice"
    assert user.password_hash != PASSWORD
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")
    async with store.sessionmaker() as session:
        again = await users.get_user_by_username(session, "ALICE ")
        assert again is not None
        assert again.skills == {"billing": 7, "spanish": 4}
        assert again.capacities == {"voice": 1, "chat": 3}
        assert again.device == "PJSIP/1001"
        assert again.display_name == "Alice Liddell"
        assert (await users.get_user(session, user.id)).username == "alice"
        entries = await audit.list_entries(session, entity="user", entity_id=user.id)
    assert [e.action for e in entries] == ["user.created"]
    assert entries[0].actor == "system"
    assert PASSWORD not in str(entries[0].details)


async def test_display_name_defaults_to_username(store: Any) -> None:
    user = await _add(store, "bob")
    assert user.display_name == "bob"
    assert user.is_active


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": "bad name"}, "username"),
        ({"username": ""}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"role": "boss"}, "role"),
        ({"password": "short"}, "at least 8"),
        ({"skills": {"billing": 0}}, "1..10"),
        ({"skills": {"billing": 11}}, "1..10"),
        ({"skills": {"billing": "7"}}, "1..10"),
        ({"skills": {"billing": True}}, "1..10"),
        ({"skills": {"": 3}}, "skill name"),
        ({"capacities": {"fax": 1}}, "fax"),
        ({"capacities": {"voice": -1}}, "non-negative"),
        ({"capacities": {"chat": 1.5}}, "non-negative"),
        # Devices reach Dial() and ChanSpy: a second device or extra options are refused.
        ({"device": "PJSIP/1001&PJSIP/2000"}, "not a phone device"),
        ({"device": "PJSIP/1001,B"}, "not a phone device"),
        ({"device": "PJSIP/${EXTEN}"}, "not a phone device"),
        ({"device": "1001"}, "not a phone device"),
        ({"device": "PJSIP/1001\r\nAction: Hangup"}, "not a phone device"),
    ],
)
async def test_bad_user_data_is_refused_and_nothing_written(
    store: Any, count_rows: Any, fields: dict[str, Any], message: str
) -> None:
    before = await count_rows()
    with pytest.raises(InvalidData, match=message):
        await _add(store, **{"username": "carol", **fields})
    assert await count_rows() == before


async def test_duplicate_username_conflicts(store: Any, count_rows: Any) -> None:
    await _add(store, "dave")
    before = await count_rows()
    with pytest.raises(Conflict, match="already taken"):
        await _add(store, "DAVE")
    assert await count_rows() == before


async def test_authenticate(store: Any) -> None:
    await _add(store, "erin")
    async with store.sessionmaker.begin() as session:
        user = await users.authenticate(session, "erin", PASSWORD)
        assert user is not None and user.username == "erin"
        assert await users.authenticate(session, "Erin", PASSWORD) is not None
        assert await users.authenticate(session, "erin", "wrong password") is None
        assert await users.authenticate(session, "erin", "") is None
        assert await users.authenticate(session, "nobody", PASSWORD) is None
        assert await users.authenticate(session, "erin", "x" * 5000) is None


async def test_inactive_user_cannot_authenticate(store: Any) -> None:
    await _add(store, "frank")
    async with store.sessionmaker.begin() as session:
        user = await users.set_user_active(session, "frank", False, actor=ADMIN)
        assert not user.is_active
    async with store.sessionmaker.begin() as session:
        assert await users.authenticate(session, "frank", PASSWORD) is None
        assert [u.username for u in await users.list_users(session)] == ["frank"]
        assert await users.list_users(session, include_inactive=False) == []
        await users.set_user_active(session, "frank", True, actor=ADMIN)
    async with store.sessionmaker() as session:
        assert await users.authenticate(session, "frank", PASSWORD) is not None
        actions = [e.action for e in await audit.list_entries(session, entity="user")]
    assert actions == ["user.activated", "user.deactivated", "user.created"]


async def test_outdated_hash_is_rehashed_on_login(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = (await _add(store, "gina")).password_hash
    strong = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "password_hasher", strong)
    async with store.sessionmaker.begin() as session:
        user = await users.authenticate(session, "gina", PASSWORD)
        assert user is not None
    async with store.sessionmaker() as session:
        stored = await users.get_user_by_username(session, "gina")
        assert stored is not None
        assert stored.password_hash != old
        assert not strong.check_needs_rehash(stored.password_hash)
        assert await users.authenticate(session, "gina", PASSWORD) is not None
        actions = [e.action for e in await audit.list_entries(session, entity="user")]
    assert "user.password_rehashed" in actions


async def test_set_password(store: Any, count_rows: Any) -> None:
    await _add(store, "hank")
    async with store.sessionmaker.begin() as session:
        await users.set_password(session, "hank", "a new passphrase", actor=ADMIN)
    async with store.sessionmaker() as session:
        assert await users.authenticate(session, "hank", PASSWORD) is None
        assert await users.authenticate(session, "hank", "a new passphrase") is not None
        entry = (await audit.list_entries(session, entity="user", limit=1))[0]
    assert entry.action == "user.password_set"
    assert entry.actor == "root"
    assert "passphrase" not in str(entry.details)
    before = await count_rows()
    with pytest.raises(InvalidData):
        async with store.sessionmaker.begin() as session:
            await users.set_password(session, "hank", "short", actor=ADMIN)
    with pytest.raises(NotFound):
        async with store.sessionmaker.begin() as session:
            await users.set_password(session, "nobody", "long enough", actor=ADMIN)
    assert await count_rows() == before


async def test_update_user(store: Any, count_rows: Any) -> None:
    await _add(store, "ivy", skills={"billing": 3})
    async with store.sessionmaker.begin() as session:
        user = await users.update_user(
            session,
            "ivy",
            display_name="Ivy",
            skills={"billing": 9, "french": 2},
            capacities={"email": 5},
            device=None,
            role="supervisor",
            actor=ADMIN,
        )
    assert (user.display_name, user.role, user.device) == ("Ivy", "supervisor", None)
    async with store.sessionmaker() as session:
        stored = await users.get_user_by_username(session, "ivy")
        assert stored is not None
        assert stored.skills == {"billing": 9, "french": 2}
        assert stored.capacities == {"email": 5}
        entry = (await audit.list_entries(session, entity="user", limit=1))[0]
    assert entry.action == "user.updated"
    assert entry.details is not None
    assert entry.details["role"] == {"from": "agent", "to": "supervisor"}
    assert "device" not in entry.details  # it was already None

    before = await count_rows()
    async with store.sessionmaker.begin() as session:
        await users.update_user(session, "ivy", display_name="Ivy", actor=ADMIN)
    assert await count_rows() == before  # nothing changed, nothing audited
    for bad in ({"role": "king"}, {"skills": {"x": 99}}, {"display_name": " "}):
        with pytest.raises(InvalidData):
            async with store.sessionmaker.begin() as session:
                await users.update_user(session, "ivy", actor=ADMIN, **bad)
    with pytest.raises(NotFound):
        async with store.sessionmaker.begin() as session:
            await users.update_user(session, "nobody", display_name="X", actor=ADMIN)
    assert await count_rows() == before


async def test_count_and_list_users(store: Any) -> None:
    await _add(store, "zed")
    await _add(store, "amy", role="supervisor")
    await _add(store, "max", role="admin")
    async with store.sessionmaker() as session:
        assert await users.count_users(session) == 3
        assert await users.count_users(session, role="agent") == 1
        assert await users.count_users(session, role="supervisor") == 1
        assert [u.username for u in await users.list_users(session)] == ["amy", "max", "zed"]
        with pytest.raises(InvalidData):
            await users.count_users(session, role="nope")
        with pytest.raises(NotFound):
            await users.get_user(session, 999)
