"""Channels handled at the desktop alone, until their own adapters run: the agent accepts
the contact there and closes it there. Their contacts wait in the store, so routing
rebuilds the queue from it after a restart."""

from __future__ import annotations

from routing.channels import Capability, ChannelSpec

_DESK = frozenset({Capability.HANGUP})

CHAT = ChannelSpec("chat", _DESK, address_kind="chat", default_capacity=3)
EMAIL = ChannelSpec("email", _DESK, address_kind="email", default_capacity=5)
SMS = ChannelSpec("sms", _DESK, address_kind="phone", default_capacity=3)

DESK_CHANNELS = (CHAT, EMAIL, SMS)
