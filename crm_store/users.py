"""Users of the desktop (agents, supervisors, admins): accounts, skills, passwords."""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store import audit
from crm_store._common import clean_text, flush_or_conflict
from crm_store.actors import SYSTEM, Actor
from crm_store.errors import Conflict, InvalidData, NotFound
from crm_store.models import CHANNELS, ROLES, User, utcnow

# Lower-case letters, digits and . _ - ; usernames are compared in `canonical_username` form.
USERNAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH: Final = 8
# argon2 hashes a bounded input quickly; refuse megabyte "passwords" before hashing them.
MAX_PASSWORD_LENGTH: Final = 1024
SKILL_LEVELS: Final = (1, 10)

# Module-level so tests (and a future config option) can swap in other cost parameters;
# `authenticate` rehashes hashes made with older parameters.
password_hasher: PasswordHasher = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Final = _Unset.UNSET


def _hasher() -> PasswordHasher:
    return password_hasher


def _dummy_hash(hasher: PasswordHasher) -> str:
    # Verifying against a real hash of the same parameters when the user is missing makes
    # "no such user" take as long as "wrong password". Two threads racing here both compute
    # an equivalent hash: harmless.
    key = id(hasher)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash("not the password of anyone")
    return _dummy_hashes[key]


def canonical_username(username: str) -> str:
    """The form a username is looked up by: trimmed and lower-cased.

    The login rate limit keys on this too: whatever spellings find one user must share
    one limit, so this is the only place that decides what "the same name" means.
    """
    return username.strip().lower()


def normalize_username(username: str) -> str:
    """Trim and lower-case a username, refusing what does not fit the pattern."""
    if not isinstance(username, str):
        raise InvalidData("username must be text")
    name = canonical_username(username)
    if not USERNAME_PATTERN.match(name):
        raise InvalidData(
            f"username {username!r} must be 1-64 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit"
        )
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidData(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def _check_password(password: str) -> str:
    if not isinstance(password, str):
        raise InvalidData("password must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidData(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidData(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def validate_skills(skills: Mapping[str, int] | None) -> dict[str, int]:
    """Check skill name -> level (an int 1..10); return a plain dict."""
    if skills is None:
        return {}
    if not isinstance(skills, Mapping):
        raise InvalidData("skills must be a mapping of skill name to level")
    low, high = SKILL_LEVELS
    result: dict[str, int] = {}
    for name, level in skills.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise InvalidData(f"skill name {name!r} must be 1-64 characters")
        if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
            raise InvalidData(
                f"skill {name!r} level must be an integer {low}..{high}, not {level!r}"
            )
        result[name.strip()] = level
    return result


def validate_capacities(capacities: Mapping[str, int] | None) -> dict[str, int]:
    """Check channel -> capacity (a non-negative int, channel in CHANNELS)."""
    if capacities is None:
        return {}
    if not isinstance(capacities, Mapping):
        raise InvalidData("capacities must be a mapping of channel to count")
    result: dict[str, int] = {}
    for channel, count in capacities.items():
        if channel not in CHANNELS:
            raise InvalidData(f"capacity channel {channel!r} is not one of {', '.join(CHANNELS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidData(f"capacity for {channel!r} must be a non-negative integer")
        result[channel] = count
    return result


async def hash_password(password: str) -> str:
    """Argon2 hash of `password`, computed off the event loop."""
    return await asyncio.to_thread(_hasher().hash, _check_password(password))


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    """The user with this username (case-insensitive), or None."""
    if not isinstance(username, str):
        return None
    return await session.scalar(select(User).where(User.username == canonical_username(username)))


async def get_user(session: AsyncSession, user_id: int) -> User:
    """The user with this id; NotFound otherwise."""
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


async def _require(session: AsyncSession, username: str) -> User:
    user = await get_user_by_username(session, username)
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


async def list_users(session: AsyncSession, *, include_inactive: bool = True) -> list[User]:
    """All users by username; only active ones unless `include_inactive`."""
    query = select(User).order_by(User.username)
    if not include_inactive:
        query = query.where(User.is_active.is_(True))
    return list((await session.scalars(query)).all())


async def users_by_ids(session: AsyncSession, ids: set[int]) -> list[User]:
    """The users with these ids (missing ones are left out)."""
    if not ids:
        return []
    return list((await session.scalars(select(User).where(User.id.in_(sorted(ids))))).all())


async def count_users(session: AsyncSession, role: str | None = None) -> int:
    """How many users (of one role, when given)."""
    query = select(func.count()).select_from(User)
    if role is not None:
        query = query.where(User.role == _check_role(role))
    return int(await session.scalar(query) or 0)


# A phone device as Asterisk's Dial() and an AMI `Channel:` take it: TECH/resource
# (`PJSIP/1001`, `Local/100@cc-phones/n`). No `&` (a second device rings), `,` (Dial or
# ChanSpy options), `$`/`{` (dialplan expressions), blanks or line breaks.
DEVICE_PATTERN: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*/[A-Za-z0-9_@.:+#*/-]{1,120}")


def clean_device(value: object) -> str | None:
    """An agent's phone device, checked as the PBX will use it; None when empty."""
    device = clean_text(value, "device", 200)
    if device is not None and not DEVICE_PATTERN.fullmatch(device):
        raise InvalidData(
            f"device {device[:40]!r} is not a phone device: expected TECH/resource such as "
            "PJSIP/1001 or Local/100@cc-phones/n"
        )
    return device


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    display_name: str | None = None,
    role: str,
    password: str,
    skills: Mapping[str, int] | None = None,
    capacities: Mapping[str, int] | None = None,
    device: str | None = None,
    actor: Actor = SYSTEM,
) -> User:
    """Create a user with an argon2-hashed password; Conflict if the username is taken."""
    name = normalize_username(username)
    shown = clean_text(display_name, "display name", 200) or name
    user = User(
        username=name,
        display_name=shown,
        role=_check_role(role),
        password_hash="",
        is_active=True,
        skills=validate_skills(skills),
        capacities=validate_capacities(capacities),
        device=clean_device(device),
    )
    _check_password(password)
    if await get_user_by_username(session, name) is not None:
        raise Conflict(f"username {name!r} is already taken")
    user.password_hash = await hash_password(password)
    session.add(user)
    await flush_or_conflict(session, f"username {name!r} is already taken")
    await audit.record(
        session,
        actor,
        "user.created",
        "user",
        user.id,
        {"username": name, "role": user.role, "skills": user.skills, "device": user.device},
    )
    return user


async def update_user(
    session: AsyncSession,
    username: str,
    *,
    display_name: str | _Unset = UNSET,
    skills: Mapping[str, int] | _Unset = UNSET,
    capacities: Mapping[str, int] | _Unset = UNSET,
    device: str | _Unset | None = UNSET,
    role: str | _Unset = UNSET,
    actor: Actor = SYSTEM,
) -> User:
    """Change the given profile fields of a user (arguments left out are kept)."""
    user = await _require(session, username)
    wanted: dict[str, Any] = {}
    if display_name is not UNSET:
        wanted["display_name"] = clean_text(display_name, "display name", 200, required=True)
    if skills is not UNSET:
        wanted["skills"] = validate_skills(skills)
    if capacities is not UNSET:
        wanted["capacities"] = validate_capacities(capacities)
    if device is not UNSET:
        wanted["device"] = clean_device(device)
    if role is not UNSET:
        wanted["role"] = _check_role(role)
    changes = {
        field: {"from": getattr(user, field), "to": value}
        for field, value in wanted.items()
        if getattr(user, field) != value
    }
    if changes:
        for field, change in changes.items():
            setattr(user, field, change["to"])
        if "role" in changes:
            _void_sessions(user)
        await flush_or_conflict(session, f"cannot update user {user.username!r}")
        await audit.record(session, actor, "user.updated", "user", user.id, changes)
    return user


async def set_user_active(
    session: AsyncSession, username: str, active: bool, *, actor: Actor = SYSTEM
) -> User:
    """Activate or deactivate a user (inactive users cannot log in)."""
    user = await _require(session, username)
    if user.is_active != active:
        user.is_active = active
        if not active:
            _void_sessions(user)
        await flush_or_conflict(session, f"cannot update user {user.username!r}")
        action = "user.activated" if active else "user.deactivated"
        await audit.record(session, actor, action, "user", user.id, {"username": user.username})
    return user


async def set_password(
    session: AsyncSession, username: str, password: str, *, actor: Actor = SYSTEM
) -> User:
    """Replace a user's password (hashed; the audit entry does not hold it)."""
    user = await _require(session, username)
    user.password_hash = await hash_password(password)
    _void_sessions(user)
    await flush_or_conflict(session, f"cannot update user {user.username!r}")
    await audit.record(
        session, actor, "user.password_set", "user", user.id, {"username": user.username}
    )
    return user


def _void_sessions(user: User) -> None:
    # Strictly later than the previous value even within one clock tick, so every daemon
    # sees a change (they compare the value their sessions were made under).
    now = utcnow()
    previous = user.sessions_valid_after
    if previous is not None and now <= previous:
        now = previous + timedelta(microseconds=1)
    user.sessions_valid_after = now


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What a login needs of a user, read in one short transaction and then let go."""

    id: int
    username: str
    display_name: str
    role: str
    is_active: bool
    password_hash: str
    sessions_valid_after: datetime | None


async def find_login(session: AsyncSession, username: str) -> LoginRecord | None:
    """The login record of the user with this name (any spelling the look-up accepts)."""
    user = await get_user_by_username(session, username)
    if user is None:
        return None
    return LoginRecord(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        is_active=user.is_active,
        password_hash=user.password_hash,
        sessions_valid_after=user.sessions_valid_after,
    )


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches `stored_hash` (None: no such user, and still as slow).

    CPU-bound and blocking on purpose: the caller picks the thread it runs on, and holds
    no database connection while it runs.
    """
    hasher = _hasher()
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        password = ""
    try:
        hasher.verify(stored_hash if stored_hash is not None else _dummy_hash(hasher), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other cost parameters than the current ones."""
    return _hasher().check_needs_rehash(stored_hash)


def new_hash(password: str) -> str:
    """An argon2 hash with the current parameters (blocking; see `verify_password`)."""
    return _hasher().hash(password)


async def store_rehash(session: AsyncSession, user_id: int, old_hash: str, fresh: str) -> bool:
    """Replace an outdated hash of the same password; False if it changed meanwhile.

    Not a credential change: the user's sessions stay valid.
    """
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == old_hash)
        .values(password_hash=fresh)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    username = await session.scalar(select(User.username).where(User.id == user_id))
    await audit.record(
        session, SYSTEM, "user.password_rehashed", "user", user_id, {"username": username}
    )
    return True


async def sessions_voided_since(
    session: AsyncSession, since: datetime
) -> list[tuple[int, bool, datetime]]:
    """(user id, active, sessions_valid_after) of users whose sessions were voided after
    `since` (an index range scan: cheap enough to poll every second)."""
    rows = await session.execute(
        select(User.id, User.is_active, User.sessions_valid_after).where(
            User.sessions_valid_after > since
        )
    )
    return [(uid, active, stamp) for uid, active, stamp in rows if stamp is not None]


async def changed_since(session: AsyncSession, since: datetime) -> list[tuple[int, datetime]]:
    """(user id, updated_at) of users changed after `since`: profile, skills, device, role,
    activation (a scan of the users table: a contact center has hundreds, not millions)."""
    rows = await session.execute(
        select(User.id, User.updated_at).where(User.updated_at > since).order_by(User.id)
    )
    return [(uid, stamp) for uid, stamp in rows]


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The active user if `password` is theirs, else None; rehashes outdated hashes.

    Hashes inside the caller's transaction: fine for one-off tools (the CLI); the daemon's
    login uses `find_login`, `verify_password` and `store_rehash` so that it never holds a
    connection while hashing.
    """
    record = await find_login(session, username) if isinstance(username, str) else None
    stored = record.password_hash if record is not None else None
    if not await asyncio.to_thread(verify_password, stored, password):
        return None
    if record is None or not record.is_active:
        return None
    if needs_rehash(record.password_hash):
        fresh = await asyncio.to_thread(new_hash, password)
        await store_rehash(session, record.id, record.password_hash, fresh)
    user = await session.get(User, record.id, populate_existing=True)
    return user
