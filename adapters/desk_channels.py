"""The text channels (web chat, email, SMS) as they declare themselves to routing.

The agent answers with messages (`reply`, through `adapters.messaging`) and closes the
contact at the desktop (`hangup`); nothing rings, so no device is needed. Their waiting
contacts are in the store, so routing rebuilds the queue from it after a restart.
"""

from __future__ import annotations

from routing.channels import Capability, ChannelSpec

_TEXT = frozenset({Capability.REPLY, Capability.HANGUP})

CHAT = ChannelSpec("chat", _TEXT, address_kind="chat", default_capacity=3)
EMAIL = ChannelSpec("email", _TEXT, address_kind="email", default_capacity=5)
SMS = ChannelSpec("sms", _TEXT, address_kind="phone", default_capacity=3)

DESK_CHANNELS = (CHAT, EMAIL, SMS)
