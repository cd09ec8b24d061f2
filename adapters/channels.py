"""Every channel the daemon runs, as each declares itself to routing (in the order
routing tries them)."""

from __future__ import annotations

from adapters.asterisk.channel import VOICE
from adapters.desk_channels import DESK_CHANNELS
from routing.channels import ChannelSpec

CHANNEL_SPECS: tuple[ChannelSpec, ...] = (VOICE, *DESK_CHANNELS)
CHANNEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in CHANNEL_SPECS)
