"""`contact-center users`: add, list, change, disable, enable, and set passwords."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.cli.config_file import load
from contact_center.cli.store import with_session
from contact_center.errors import CommandError
from crm_store.models import User
from crm_store.users import (
    create_user,
    list_users,
    set_password,
    set_user_active,
    update_user,
)


def cmd_add(args: argparse.Namespace) -> int:
    """Create a user."""
    config = load(args)
    skills = _parse_skills(args.skills)
    password = _read_password(args)

    async def go(session: AsyncSession) -> None:
        await create_user(
            session,
            username=args.username,
            display_name=args.display_name,
            role=args.role,
            password=password,
            skills=skills,
            device=args.device,
        )

    with_session(config, go)
    print(f"user {args.username} created with role {args.role}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List users."""
    config = load(args)
    rows: list[User] = []

    async def go(session: AsyncSession) -> None:
        rows.extend(await list_users(session, include_inactive=True))

    with_session(config, go)
    print(f"{'USERNAME':<20} {'ROLE':<11} {'ACTIVE':<7} {'DEVICE':<16} SKILLS")
    for user in rows:
        skills = ",".join(f"{k}={v}" for k, v in sorted((user.skills or {}).items()))
        print(
            f"{user.username:<20} {user.role:<11} {'yes' if user.is_active else 'no':<7} "
            f"{user.device or '-':<16} {skills or '-'}"
        )
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    """Change the given profile fields of a user; a running daemon re-reads them."""
    config = load(args)
    changes: dict[str, Any] = {}
    if args.display_name is not None:
        changes["display_name"] = args.display_name
    if args.role is not None:
        changes["role"] = args.role
    if args.skills is not None:
        changes["skills"] = _parse_skills(args.skills)
    if args.device is not None or args.no_device:
        changes["device"] = None if args.no_device else args.device
    if not changes:
        raise CommandError("nothing to change: give --display-name, --role, --skills or --device")

    async def go(session: AsyncSession) -> None:
        await update_user(session, args.username, **changes)

    with_session(config, go)
    # The row's updated_at moves: a running daemon re-reads the user within a second or
    # two (contact_center/roster_sync.py); a new role also ends their sessions.
    print(f"user {args.username} changed: {', '.join(sorted(changes))}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    """Stop a user from logging in and end their sessions."""
    return _set_active(args, active=False)


def cmd_enable(args: argparse.Namespace) -> int:
    """Let a disabled user log in again."""
    return _set_active(args, active=True)


def _set_active(args: argparse.Namespace, *, active: bool) -> int:
    config = load(args)

    async def go(session: AsyncSession) -> None:
        await set_user_active(session, args.username, active)

    with_session(config, go)
    # Disabling voids the user's sessions in the store: a running daemon ends them and
    # closes the user's sockets within seconds (contact_center/auth/revocation.py).
    print(f"user {args.username} {'enabled' if active else 'disabled'}")
    return 0


def cmd_password(args: argparse.Namespace) -> int:
    """Set a user's password; their sessions end, as through the API."""
    config = load(args)
    password = _read_password(args)

    async def go(session: AsyncSession) -> None:
        await set_password(session, args.username, password)

    with_session(config, go)
    print(f"password of {args.username} set")
    return 0


def _parse_skills(text: str | None) -> dict[str, int]:
    skills: dict[str, int] = {}
    if not text:
        return skills
    for item in text.split(","):
        name, sep, level = item.strip().partition("=")
        if not sep or not name.strip() or not level.strip().isdigit():
            raise CommandError(f"--skills: expected name=level[,name=level], got {item.strip()!r}")
        skills[name.strip()] = int(level)
    return skills


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("the passwords do not match")
    return first
