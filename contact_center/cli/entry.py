"""The `contact-center` command line: its parser, and errors turned into exit codes.

Exit codes: 0 success, 1 the command failed (invalid config, refused data),
2 the command line itself was wrong (argparse).

Each command names the function that runs it as "module:function" of this package. The
module is imported only when its command runs, so `--help`, a wrong command line and every
command load only what that command needs (`run` alone loads the web application).
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Callable, Sequence

from contact_center.cli.config_file import DEFAULT_CONFIG, config_path, hide_secrets
from contact_center.cli.console import err, silence_stdout
from contact_center.errors import CommandError, ConfigError
from crm_store.errors import StoreError

Command = Callable[[argparse.Namespace], int]


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
    p.set_defaults(function="run:cmd_run")
    p = sub.add_parser(
        "check-config", parents=[common], help="validate the configuration and summarise it"
    )
    p.set_defaults(function="check_config:cmd_check_config")

    db = sub.add_parser("db", help="database schema and demo data").add_subparsers(
        dest="db_command", metavar="ACTION", required=True
    )
    p = db.add_parser("upgrade", parents=[common], help="apply pending schema migrations")
    p.set_defaults(function="db:cmd_upgrade")
    p = db.add_parser(
        "seed-demo", parents=[common], help="add demo users and customers to an empty store"
    )
    p.set_defaults(function="db:cmd_seed_demo")

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
    p.set_defaults(function="users:cmd_add")
    p = users.add_parser("list", parents=[common], help="list users")
    p.set_defaults(function="users:cmd_list")
    p = users.add_parser(
        "disable", parents=[common], help="stop a user from logging in and end their sessions"
    )
    p.add_argument("username")
    p.set_defaults(function="users:cmd_disable")
    p = users.add_parser("enable", parents=[common], help="let a disabled user log in again")
    p.add_argument("username")
    p.set_defaults(function="users:cmd_enable")
    p = users.add_parser(
        "password", parents=[common], help="set a user's password and end their sessions"
    )
    p.add_argument("username")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else prompt)",
    )
    p.set_defaults(function="users:cmd_password")
    p = users.add_parser(
        "set",
        parents=[common],
        help="change a user's name, role, skills or device (a running daemon follows)",
    )
    p.add_argument("username")
    p.add_argument("--display-name", help="full name shown on screens")
    p.add_argument("--role", choices=["agent", "supervisor", "admin"], help="ends their sessions")
    p.add_argument(
        "--skills", metavar="NAME=LEVEL,...", help="replace the skills (levels 1-10; '' for none)"
    )
    device = p.add_mutually_exclusive_group()
    device.add_argument("--device", metavar="DEVICE", help="phone device, e.g. PJSIP/1001")
    device.add_argument("--no-device", action="store_true", help="take the phone device away")
    p.set_defaults(function="users:cmd_set")

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
    p.set_defaults(function="customers:cmd_import")
    p = customers.add_parser("export", parents=[common], help="export customers as CSV")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    p.set_defaults(function="customers:cmd_export")

    p = sub.add_parser(
        "replay",
        parents=[common],
        help="replay a recorded AMI session (FILE.ami.txt, timed by the FILE.timeline.tsv "
        "beside it) through the call tracker and, with the configured queues and the "
        "store's agents, the router; prints one JSON object per event or decision",
    )
    p.add_argument("file", metavar="FILE.ami.txt")
    p.set_defaults(function="replay:cmd_replay")
    return parser


def function_of(args: argparse.Namespace) -> Command:
    """The function that runs the parsed command, its module imported now."""
    module, _, name = args.function.partition(":")
    function: Command = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return function


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `contact-center` console script."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = function_of(args)(args)
    except ConfigError as exc:
        path = config_path(args)
        err(hide_secrets(f"{path}: {exc.message}", path))
        return 1
    except StoreError as exc:
        err(f"{exc.message} [{exc.error_id}]")
        return 1
    except CommandError as exc:
        err(exc.message)
        return 1
    except BrokenPipeError:
        # Standard output was closed early (`contact-center customers export | head`).
        silence_stdout()
        return 1
    except KeyboardInterrupt:
        return 130
    return code
