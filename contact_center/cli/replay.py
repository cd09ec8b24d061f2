"""`contact-center replay`: a recorded AMI session through the call tracker and the router."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contact_center import replay
from contact_center.cli.config_file import DEFAULT_CONFIG, config_path, load
from contact_center.cli.console import err
from contact_center.cli.store import run_db
from contact_center.errors import CommandError


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a recorded AMI session: call events and routing decisions as JSON lines."""
    path = Path(args.file)
    try:
        data = replay.read_recording(path)
        timeline = replay.read_timeline(path)
    except replay.ReplayError as exc:
        raise CommandError(exc.message) from None
    result = replay.replay(data, timeline, _routing(args))
    sys.stdout.writelines(f"{replay.to_json(record)}\n" for record in result.records)
    sys.stdout.flush()
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.problem is not None:
        err(f"{path}: {result.problem}; the {len(result.records)} records before it are printed")
        return 1
    return 0


def _routing(args: argparse.Namespace) -> replay.RoutingSetup | None:
    """The router's inputs for a replay, or None (said once on standard error) without
    queues or agents. A configuration named by -c or $CC_CONFIG must be valid; the
    default ./config.yaml may be absent."""
    config = None
    if args.config or os.environ.get("CC_CONFIG") or Path(DEFAULT_CONFIG).exists():
        config = load(args)
    if config is None:
        missing: str | None = f"no configuration: no -c FILE, $CC_CONFIG or ./{DEFAULT_CONFIG}"
    elif not config.queues:
        missing = f"{config_path(args)} has no queues"
    else:
        agents, missing = run_db(config, replay.load_agents(config.database.url))
        if missing is None:
            return replay.routing_setup(config, agents)
    print(f"note: no routing ({missing}): printing call events only", file=sys.stderr)
    return None
