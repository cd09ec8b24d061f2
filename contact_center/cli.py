"""The `contact-center` command line.

Exit codes: 0 success, 1 the command failed (invalid config, refused data),
2 the command line itself was wrong (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from contact_center.config import Config, load_config
from contact_center.errors import CommandError, ConfigError, ListenError
from crm_store.errors import StoreError

if TYPE_CHECKING:
    from contact_center.replay import RoutingSetup

DEFAULT_CONFIG = "config.yaml"

log = logging.getLogger("contact_center.cli")

T = TypeVar("T")


def _config_path(args: argparse.Namespace) -> str:
    return str(args.config or os.environ.get("CC_CONFIG") or DEFAULT_CONFIG)


def _load_path(path: str) -> Config:
    try:
        return load_config(path)
    except UnicodeDecodeError as exc:
        problem = f"{path}: cannot read (not UTF-8 text: {_decode_problem(exc)})"
        raise ConfigError([problem]) from None


def _load(args: argparse.Namespace) -> Config:
    return _load_path(_config_path(args))


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def _hide_secrets(message: str, path: str) -> str:
    """Show `${NAME}` where a message quotes a value the file took from the environment.

    Validation errors quote the bad value (`got "..."`); a value that came from a `${NAME}`
    reference is a secret and must not be printed, so it is replaced by the reference.
    """
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return message
    secrets = {
        os.environ[name]: f"${{{name}}}"
        for name in set(_ENV_REFERENCE.findall(source))
        if os.environ.get(name)
    }
    if not secrets:
        return message

    def hide(quoted: re.Match[str]) -> str:
        text = quoted.group(0)
        for value in sorted(secrets, key=len, reverse=True):
            text = text.replace(value, secrets[value])
        return text

    return _QUOTED.sub(hide, message)


def _decode_problem(exc: UnicodeDecodeError) -> str:
    return f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"


def _database_problem(exc: BaseException) -> str:
    """The reason a database operation failed, without SQLAlchemy's wrapping and links."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno)  # "Connection refused", not asyncio's wording
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # getaddrinfo's errors have their own (negative) numbers
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _run_db(config: Config, work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, with a database that cannot be reached or read as a clear error."""
    from sqlalchemy.exc import SQLAlchemyError

    from crm_store.database import describe_database

    try:
        return asyncio.run(work)
    except BrokenPipeError:
        raise
    except (OSError, SQLAlchemyError) as exc:
        where = describe_database(config.database.url)
        raise CommandError(f"database {where}: {_database_problem(exc)}") from None


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# --- run / check-config -------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Start the daemon in the foreground."""
    from contact_center.app import DatabaseBehind
    from contact_center.logging_setup import setup_logging
    from contact_center.server import serve
    from crm_store import migrate
    from ivr_flows.loader import FlowError

    config = _load(args)
    setup_logging(config.logging)
    # Reach the database first: a connection error met while the daemon starts would
    # otherwise look like a failure to listen.
    _run_db(config, migrate.current_revision(config.database.url))
    try:
        return asyncio.run(serve(config))
    except (DatabaseBehind, FlowError, ListenError) as exc:
        _err(str(exc))
        return 1
    except OSError as exc:
        _err(f"cannot listen on {config.web.host}:{config.web.port}: {exc.strerror or exc}")
        return 1


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and summarise it."""
    from contact_center.flows import load_configured_flows
    from ivr_flows.loader import FlowError

    path = _config_path(args)
    config = _load_path(path)
    try:
        flows = load_configured_flows(config)
    except FlowError as exc:
        _err(f"{path}: {exc.message}")
        return 1
    print(f"{path}: OK")
    print(f"  IVR flows: {', '.join(sorted(flows))} (default {config.ivr.default_flow})")
    for line in summarize(config):
        print(f"  {line}")
    return 0


def summarize(config: Config) -> list[str]:
    """A short human summary of a valid configuration (no secrets)."""
    from crm_store.database import describe_database

    channels = config.channels
    enabled = [
        name
        for name, on in (
            ("email", channels.email.enabled),
            ("sms", channels.sms.enabled),
            ("chat", channels.chat.enabled),
        )
        if on
    ]
    pbx: str = config.pbx.mode
    if pbx == "asterisk":
        pbx += (
            f" (AMI {config.pbx.ami.host}:{config.pbx.ami.port}, "
            f"FastAGI {config.pbx.agi.host}:{config.pbx.agi.port})"
        )
    return [
        f"web: http://{config.web.host}:{config.web.port}",
        f"database: {describe_database(config.database.url)}"
        f" (phone region {config.database.default_region})",
        f"pbx: {pbx}",
        f"channels: {', '.join(enabled) if enabled else 'none'}",
        f"skills: {len(config.skills)}",
        f"queues: {len(config.queues)}"
        + (f" ({', '.join(q.name for q in config.queues)})" if config.queues else ""),
        f"routing time zone: {config.routing.timezone}",
        f"logging: {config.logging.level} as {config.logging.format}",
    ]


# --- db -----------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    from crm_store import migrate
    from crm_store.database import describe_database

    config = _load(args)

    async def go() -> tuple[str | None, str | None]:
        before = await migrate.current_revision(config.database.url)
        await migrate.upgrade(config.database.url)
        return before, await migrate.current_revision(config.database.url)

    before, after = _run_db(config, go())
    where = describe_database(config.database.url)
    if before == after:
        print(f"{where}: already at {after}")
    else:
        print(f"{where}: upgraded from {before or 'empty'} to {after}")
    return 0


DEMO_USERS: tuple[tuple[str, str, str, str, dict[str, int], str | None], ...] = (
    ("admin", "Ada Admin", "admin", "admin-demo-pass", {}, None),
    ("supervisor", "Sam Supervisor", "supervisor", "supervisor-demo-pass", {}, "PJSIP/1900"),
    ("agent", "Alex Agent", "agent", "agent-demo-pass", {"billing": 7, "support": 5}, "PJSIP/1001"),
)

DEMO_CUSTOMERS: tuple[dict[str, Any], ...] = (
    {
        "name": "Zoë Martin",
        "company": "Northwind Ltd",
        "tier": "gold",
        "language": "en",
        "phones": ["+44 20 7946 0018"],
        "emails": ["zoe.martin@example.com"],
    },
    {
        "name": "Raj Patel",
        "company": "Contoso",
        "tier": "platinum",
        "language": "en",
        "phones": ["07700 900123"],
        "emails": ["raj@contoso.example"],
    },
    {
        "name": "Lucía Gómez",
        "tier": "silver",
        "language": "es",
        "phones": ["+34 912 345 678"],
        "emails": [],
    },
)


# Past contacts so the first screen pop of the demo has a history: (days ago, channel,
# queue, disposition, notes), per demo customer.
DEMO_HISTORY: dict[str, tuple[tuple[int, str, str, str, str], ...]] = {
    "Zoë Martin": (
        (9, "email", "email", "resolved", "Asked for a copy of invoice 2291; sent."),
        (2, "voice", "billing", "follow-up", "Disputes a late fee; promised a call back."),
    ),
    "Raj Patel": ((5, "chat", "chat", "resolved", "Password reset."),),
}


async def _seed_history(session: Any, customer_id: int, name: str) -> None:
    from datetime import UTC, datetime, timedelta

    from crm_store.actors import SYSTEM
    from crm_store.interactions import record_interaction, update_interaction
    from crm_store.service_requests import create_service_request

    now = datetime.now(UTC)
    for days, channel, queue, disposition, notes in DEMO_HISTORY.get(name, ()):
        started = now - timedelta(days=days)
        ix = await record_interaction(
            session, channel=channel, customer_id=customer_id, started_at=started, queue=queue
        )
        await update_interaction(
            session,
            ix.id,
            answered_at=started + timedelta(seconds=25),
            ended_at=started + timedelta(minutes=6),
            disposition=disposition,
            notes=notes,
        )
        if disposition == "follow-up":
            await create_service_request(
                session,
                customer_id=customer_id,
                title="Late fee dispute",
                description=notes,
                interaction_id=ix.id,
                actor=SYSTEM,
            )


def cmd_db_seed_demo(args: argparse.Namespace) -> int:
    """Create demo users and customers when the store has no users yet; show working logins."""
    from crm_store import migrate
    from crm_store.customers import create_customer
    from crm_store.database import make_engine, make_sessionmaker
    from crm_store.users import authenticate, count_users, create_user

    config = _load(args)

    async def go() -> tuple[bool, list[tuple[str, str, str]]]:
        await migrate.upgrade(config.database.url)
        engine = make_engine(config.database.url)
        sessions = make_sessionmaker(engine)
        created = False
        try:
            async with sessions.begin() as session:
                if await count_users(session) == 0:
                    created = True
                    for username, name, role, password, skills, device in DEMO_USERS:
                        await create_user(
                            session,
                            username=username,
                            display_name=name,
                            role=role,
                            password=password,
                            skills=skills,
                            device=device,
                        )
                    for customer in DEMO_CUSTOMERS:
                        made = await create_customer(
                            session, region=config.database.default_region, **customer
                        )
                        await _seed_history(session, made.id, made.name)
            # Only show demo logins that really work: never advertise a changed password.
            working = []
            async with sessions.begin() as session:
                for username, _name, role, password, _skills, _device in DEMO_USERS:
                    if await authenticate(session, username, password) is not None:
                        working.append((role, username, password))
            return created, working
        finally:
            await engine.dispose()

    created, working = _run_db(config, go())
    print("demo users and customers created" if created else "users exist: no demo data added")
    if working:
        print("demo logins (change these passwords before real use):")
        for role, username, password in working:
            print(f"  {role:<10} {username} / {password}")
    return 0


# --- users --------------------------------------------------------------------------


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


def cmd_users_add(args: argparse.Namespace) -> int:
    """Create a user."""
    from crm_store.users import create_user

    config = _load(args)
    skills = _parse_skills(args.skills)
    password = _read_password(args)

    async def go(session: Any) -> None:
        await create_user(
            session,
            username=args.username,
            display_name=args.display_name,
            role=args.role,
            password=password,
            skills=skills,
            device=args.device,
        )

    _with_session(config, go)
    print(f"user {args.username} created with role {args.role}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    """List users."""
    from crm_store.users import list_users

    config = _load(args)
    rows: list[Any] = []

    async def go(session: Any) -> None:
        rows.extend(await list_users(session, include_inactive=True))

    _with_session(config, go)
    print(f"{'USERNAME':<20} {'ROLE':<11} {'ACTIVE':<7} {'DEVICE':<16} SKILLS")
    for user in rows:
        skills = ",".join(f"{k}={v}" for k, v in sorted((user.skills or {}).items()))
        print(
            f"{user.username:<20} {user.role:<11} {'yes' if user.is_active else 'no':<7} "
            f"{user.device or '-':<16} {skills or '-'}"
        )
    return 0


def _cmd_users_set_active(active: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from crm_store.users import set_user_active

        config = _load(args)

        async def go(session: Any) -> None:
            await set_user_active(session, args.username, active)

        _with_session(config, go)
        # Disabling voids the user's sessions in the store: a running daemon ends them and
        # closes the user's sockets within seconds (contact_center/auth/revocation.py).
        print(f"user {args.username} {'enabled' if active else 'disabled'}")
        return 0

    return command


def cmd_users_password(args: argparse.Namespace) -> int:
    """Set a user's password; their sessions end, as through the API."""
    from crm_store.users import set_password

    config = _load(args)
    password = _read_password(args)

    async def go(session: Any) -> None:
        await set_password(session, args.username, password)

    _with_session(config, go)
    print(f"password of {args.username} set")
    return 0


# --- customers ----------------------------------------------------------------------


def cmd_customers_import(args: argparse.Namespace) -> int:
    """Import customers from CSV: all rows or none; stored customers changed only if asked."""
    from crm_store import migrate
    from crm_store.customer_csv import describe_row, import_customers
    from crm_store.database import make_engine, make_sessionmaker

    config = _load(args)
    path = Path(args.file)
    try:
        _check_utf8(path)
        stream: TextIO = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CommandError(f"{path}: cannot open ({exc.strerror})") from None

    async def go() -> Any:
        url = config.database.url
        if args.dry_run:
            # A dry run writes nothing, not even the schema.
            if not await migrate.is_up_to_date(url):
                raise CommandError(
                    f"{path}: the database schema is not up to date; run "
                    "`contact-center db upgrade` first (a dry run changes nothing)"
                )
        else:
            await migrate.upgrade(url)
        engine = make_engine(url)
        try:
            return await import_customers(
                make_sessionmaker(engine),
                stream,
                region=config.database.default_region,
                dry_run=args.dry_run,
                update_existing=args.update_existing,
            )
        finally:
            await engine.dispose()

    with stream:
        report = _run_db(config, go())
    counts = (
        f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.skipped} skipped"
    )
    if report.refused:
        print(
            f"{path}: nothing imported, {len(report.refused)} row(s) refused "
            f"(the other rows would give {counts})"
        )
    elif report.dry_run:
        print(f"{path}: dry run, nothing written; the import would give {counts}, 0 refused")
    else:
        print(f"{path}: {counts}, 0 refused")
    listed = ("created", "updated", "skipped") if report.dry_run else ("updated", "skipped")
    for row in report.rows if report.dry_run or not report.refused else ():
        # Creations are listed only in a dry run (a real import of a new file would list
        # every row); what changed, or was left alone, always.
        if row.outcome in listed:
            print(f"  {describe_row(row, dry_run=not report.written)}")
    for line_number, reason in report.refused:
        print(f"  line {line_number}: {reason}", file=sys.stderr)
    return 1 if report.refused else 0


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before importing any of it (OSError if unreadable)."""
    with path.open("rb") as raw:
        # A newline byte is never part of a multi-byte UTF-8 character: lines decode alone.
        for number, line in enumerate(raw, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CommandError(
                    f"{path}: line {number} is not UTF-8 text ({_decode_problem(exc)} of the "
                    "line); save the file as UTF-8 CSV. Nothing was imported."
                ) from None


class _Output:
    """Where an export goes, opened before any query runs so a bad path fails first.

    A regular file is written beside its destination and moved into place once complete:
    a failed export never leaves a partial file nor spoils an earlier one. Devices and pipes
    (`/dev/stdout`, a FIFO) are written directly.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.final: Path | None = None
        self.temp: Path | None = None
        given = Path(target)
        try:
            if given.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            if given.exists() and not given.is_file():
                self.stream: TextIO = open(given, "w", encoding="utf-8", newline="")  # noqa: SIM115
                return
            final = Path(os.path.realpath(target))  # write through a symbolic link
            if final.exists() and not os.access(final, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            temp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            # 0o666 less the umask, as a plain open() would create it.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            self.final, self.temp = final, temp
            self.stream = os.fdopen(fd, "w", encoding="utf-8", newline="")
            if final.exists():
                shutil.copymode(final, temp)
        except OSError as exc:
            self.discard()
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None

    def commit(self) -> None:
        """Close the output and put it in place."""
        try:
            self.stream.close()
            if self.temp is not None and self.final is not None:
                os.replace(self.temp, self.final)
                self.temp = None
        except OSError as exc:
            self.discard()
            raise CommandError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        """Close the output and drop what was written (for a regular file)."""
        stream = getattr(self, "stream", None)
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                self.temp.unlink()
            self.temp = None


def cmd_customers_export(args: argparse.Namespace) -> int:
    """Export every customer as CSV (the import format)."""
    from crm_store.customer_csv import export_customers

    config = _load(args)
    count = 0
    to_stdout = args.output in (None, "-")
    output = None if to_stdout else _Output(args.output)
    out = sys.stdout if output is None else output.stream
    shown = "standard output" if output is None else args.output

    async def go(session: Any) -> None:
        nonlocal count
        try:
            count = await export_customers(session, out)
            out.flush()
        except BrokenPipeError:
            if to_stdout:
                raise  # the reader went away (`| head`): main() ends quietly
            raise CommandError(f"cannot write {shown}: the reader went away") from None
        except OSError as exc:
            raise CommandError(f"cannot write {shown}: {exc.strerror or exc}") from None

    try:
        _with_session(config, go)
    except BrokenPipeError:
        raise
    except BaseException:
        if output is not None:
            output.discard()
        else:
            _silence_stdout()  # a partial export must not be flushed on the way out
        raise
    if output is not None:
        output.commit()
    print(f"{count} customers exported", file=sys.stderr)
    return 0


# --- replay -------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a recorded AMI session: call events and routing decisions as JSON lines."""
    from contact_center import replay

    path = Path(args.file)
    try:
        data = replay.read_recording(path)
        timeline = replay.read_timeline(path)
    except replay.ReplayError as exc:
        raise CommandError(exc.message) from None
    result = replay.replay(data, timeline, _replay_routing(args))
    sys.stdout.writelines(f"{replay.to_json(record)}\n" for record in result.records)
    sys.stdout.flush()
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.problem is not None:
        _err(f"{path}: {result.problem}; the {len(result.records)} records before it are printed")
        return 1
    return 0


def _replay_routing(args: argparse.Namespace) -> RoutingSetup | None:
    """The router's inputs for a replay, or None (said once on standard error) without
    queues or agents. A configuration named by -c or $CC_CONFIG must be valid; the
    default ./config.yaml may be absent."""
    from contact_center import replay

    config = None
    if args.config or os.environ.get("CC_CONFIG") or Path(DEFAULT_CONFIG).exists():
        config = _load(args)
    if config is None:
        missing: str | None = f"no configuration: no -c FILE, $CC_CONFIG or ./{DEFAULT_CONFIG}"
    elif not config.queues:
        missing = f"{_config_path(args)} has no queues"
    else:
        agents, missing = _run_db(config, replay.load_agents(config.database.url))
        if missing is None:
            return replay.routing_setup(config, agents)
    print(f"note: no routing ({missing}): printing call events only", file=sys.stderr)
    return None


# --- plumbing -----------------------------------------------------------------------


def _with_session(config: Config, work: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    """Run `work(session)` in one transaction on a migrated database."""
    from crm_store import migrate
    from crm_store.database import make_engine, make_sessionmaker

    async def go() -> None:
        await migrate.upgrade(config.database.url)
        engine = make_engine(config.database.url)
        try:
            async with make_sessionmaker(engine).begin() as session:
                await work(session)
        finally:
            await engine.dispose()

    _run_db(config, go())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with `--help` for every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"configuration file (default: $CC_CONFIG or ./{DEFAULT_CONFIG})",
    )
    parser = argparse.ArgumentParser(
        prog="contact-center",
        description="Contact center CTI middleware: Asterisk, email, SMS and chat in, "
        "skill-based routing, CRM screen pops out.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", parents=[common], help="run the daemon in the foreground")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "check-config", parents=[common], help="validate the configuration and summarise it"
    )
    p.set_defaults(func=cmd_check_config)

    db = sub.add_parser("db", help="database schema and demo data").add_subparsers(
        dest="db_command", metavar="ACTION", required=True
    )
    p = db.add_parser("upgrade", parents=[common], help="apply pending schema migrations")
    p.set_defaults(func=cmd_db_upgrade)
    p = db.add_parser(
        "seed-demo", parents=[common], help="add demo users and customers to an empty store"
    )
    p.set_defaults(func=cmd_db_seed_demo)

    users = sub.add_parser("users", help="manage agents, supervisors and admins").add_subparsers(
        dest="users_command", metavar="ACTION", required=True
    )
    p = users.add_parser("add", parents=[common], help="create a user")
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    p.add_argument("--display-name", help="full name shown on screens (default: username)")
    p.add_argument("--skills", metavar="NAME=LEVEL,...", help="skills with levels 1-10")
    p.add_argument("--device", metavar="DEVICE", help="phone device, e.g. PJSIP/1001")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else prompt)",
    )
    p.set_defaults(func=cmd_users_add)
    p = users.add_parser("list", parents=[common], help="list users")
    p.set_defaults(func=cmd_users_list)
    p = users.add_parser(
        "disable", parents=[common], help="stop a user from logging in and end their sessions"
    )
    p.add_argument("username")
    p.set_defaults(func=_cmd_users_set_active(False))
    p = users.add_parser("enable", parents=[common], help="let a disabled user log in again")
    p.add_argument("username")
    p.set_defaults(func=_cmd_users_set_active(True))
    p = users.add_parser(
        "password", parents=[common], help="set a user's password and end their sessions"
    )
    p.add_argument("username")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else prompt)",
    )
    p.set_defaults(func=cmd_users_password)

    customers = sub.add_parser("customers", help="import and export customers").add_subparsers(
        dest="customers_command", metavar="ACTION", required=True
    )
    p = customers.add_parser(
        "import",
        parents=[common],
        help="import customers from CSV (columns: name, company, tier, language, segment, "
        "notes, phones, emails; several values separated by ';'). Idempotent by phone/email; "
        "all rows or none: one bad row and nothing is imported.",
    )
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be created, changed (field by field) or skipped; write nothing",
    )
    p.add_argument(
        "--update-existing",
        action="store_true",
        help="change customers stored before the import when a row matches them "
        "(default: such rows are skipped and listed)",
    )
    p.set_defaults(func=cmd_customers_import)
    p = customers.add_parser("export", parents=[common], help="export customers as CSV")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    p.set_defaults(func=cmd_customers_export)

    p = sub.add_parser(
        "replay",
        parents=[common],
        help="replay a recorded AMI session (FILE.ami.txt, timed by the FILE.timeline.tsv "
        "beside it) through the call tracker and, with the configured queues and the "
        "store's agents, the router; prints one JSON object per event or decision",
    )
    p.add_argument("file", metavar="FILE.ami.txt")
    p.set_defaults(func=cmd_replay)
    return parser


def _silence_stdout() -> None:
    """Point standard output at /dev/null so the interpreter's final flush cannot fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `contact-center` console script."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        path = _config_path(args)
        _err(_hide_secrets(f"{path}: {exc.message}", path))
        return 1
    except StoreError as exc:
        _err(f"{exc.message} [{exc.error_id}]")
        return 1
    except CommandError as exc:
        _err(exc.message)
        return 1
    except BrokenPipeError:
        # Standard output was closed early (`contact-center customers export | head`).
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
