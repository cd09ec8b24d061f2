"""`contact-center check-config`: validate the configuration and summarise it."""

from __future__ import annotations

import argparse

from contact_center.cli.config_file import config_path, load_path
from contact_center.cli.console import err
from contact_center.config import Config
from contact_center.flows import load_configured_flows
from crm_store.database import describe_database
from ivr_flows.loader import FlowError


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration and summarise it."""
    path = config_path(args)
    config = load_path(path)
    try:
        flows = load_configured_flows(config)
    except FlowError as exc:
        err(f"{path}: {exc.message}")
        return 1
    print(f"{path}: OK")
    print(f"  IVR flows: {', '.join(sorted(flows))} (default {config.ivr.default_flow})")
    for line in summarize(config):
        print(f"  {line}")
    return 0


def summarize(config: Config) -> list[str]:
    """A short human summary of a valid configuration (no secrets)."""
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
