"""The voice channel as it declares itself to routing: what a call can do."""

from __future__ import annotations

from routing.channels import Capability, ChannelSpec

VOICE = ChannelSpec(
    name="voice",
    capabilities=frozenset(
        {
            Capability.RING,
            Capability.HOLD,
            Capability.TRANSFER,
            Capability.HANGUP,
            Capability.DIAL,
            Capability.LISTEN,
        }
    ),
    address_kind="phone",
    # An offer rings the agent's phone: without one, an accepted call never connects.
    needs_device=True,
    # The PBX knows its waiting callers: the adapter queues them again after a restart.
    restored_from_store=False,
    default_capacity=1,
    # On a call, an agent takes no chat, email or SMS.
    exclusive=True,
)
