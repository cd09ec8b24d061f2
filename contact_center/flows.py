"""Where the IVR flows live, loaded and validated against the configured queues."""

from __future__ import annotations

from pathlib import Path

import ivr_flows
from contact_center.config import Config
from ivr_flows.loader import FlowError, load_flows
from ivr_flows.model import Flow

BUNDLED = Path(ivr_flows.__file__).parent


def flows_directory(config: Config) -> Path:
    """`ivr.flows_dir`; the bundled flows when it is the default and not found here."""
    path = Path(config.ivr.flows_dir).expanduser()
    if not path.is_dir() and not path.is_absolute() and config.ivr.flows_dir == "ivr_flows":
        return BUNDLED
    return path


def load_configured_flows(config: Config) -> dict[str, Flow]:
    """Every flow, validated; FlowError lists every problem, naming flow and step."""
    flows = load_flows(flows_directory(config), {q.name for q in config.queues})
    if config.ivr.default_flow not in flows:
        raise FlowError(
            [
                f"ivr.default_flow: no flow named {config.ivr.default_flow!r} in "
                f"{flows_directory(config)} (found: {', '.join(sorted(flows)) or 'none'})"
            ]
        )
    return flows
