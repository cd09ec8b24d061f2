"""`contact-center run`: the daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio

from adapters.agi.server import ListenError
from contact_center.app import DatabaseBehind
from contact_center.cli.config_file import load
from contact_center.cli.console import err
from contact_center.cli.store import run_db
from contact_center.logging_setup import setup_logging
from contact_center.server import serve
from crm_store import migrate
from ivr_flows.loader import FlowError


def cmd_run(args: argparse.Namespace) -> int:
    """Start the daemon in the foreground."""
    config = load(args)
    setup_logging(config.logging)
    # Reach the database first: a connection error met while the daemon starts would
    # otherwise look like a failure to listen.
    run_db(config, migrate.current_revision(config.database.url))
    try:
        return asyncio.run(serve(config))
    except (DatabaseBehind, FlowError, ListenError) as exc:
        err(str(exc))
        return 1
    except OSError as exc:
        err(f"cannot listen on {config.web.host}:{config.web.port}: {exc.strerror or exc}")
        return 1
