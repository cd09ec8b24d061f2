"""The channel port: what a channel can do with a contact, declared by the channel itself.

Routing never branches on a channel's name (chatwoot's rule): each channel adapter
declares a `ChannelSpec` (its capabilities, whether agents need a device for it, how its
addresses find a customer), and the routing service asks the spec, then the channel's
`ChannelPort` when there is one, to carry out a step. The desktop shows the actions the
contact's channel declares. A channel with no port (a web desk, before its adapter) is
handled on the desktop alone: accept takes it, hang up closes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from crm_store.contact_kinds import ContactKind
from routing.router import RoutingError


class Capability(StrEnum):
    """One thing a channel can do with a contact."""

    RING = "ring"  # the agent's device rings; the contact connects when it is answered
    REMOTE_ANSWER = "remote_answer"  # the desktop's Accept can answer that device itself
    HOLD = "hold"
    TRANSFER = "transfer"
    HANGUP = "hangup"
    REPLY = "reply"  # the agent answers with a message
    DIAL = "dial"  # the agent starts a contact (click-to-dial)
    LISTEN = "listen"  # a supervisor listens, whispers or barges


# What a channel's addresses are, as the store keeps customers' contact points.
AddressKind = ContactKind


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A channel as it declares itself to routing."""

    name: str
    capabilities: frozenset[Capability]
    # How the contact's address finds its customer, and how it is bounded on the way in.
    address_kind: AddressKind
    # Offers go only to agents with a device for it (nothing could ring otherwise).
    needs_device: bool = False
    # Waiting contacts are rebuilt from the store after a restart by routing itself;
    # otherwise the channel's adapter finds its own again (a PBX knows its callers).
    restored_from_store: bool = True
    default_capacity: int = 1
    # While an agent is on one of these, nothing of another channel is offered to them
    # (unless `routing.blocks` says otherwise).
    exclusive: bool = False

    def can(self, capability: Capability) -> bool:
        """Does this channel declare `capability`?"""
        return capability in self.capabilities

    def actions(self) -> list[str]:
        """The contact actions the desktop offers for this channel, in a stable order."""
        return sorted(c.value for c in self.capabilities)


class ChannelPort(Protocol):
    """Commands to a channel that has its own side (a PBX); outcomes come back as bus
    events. Only the commands its spec declares are ever called."""

    async def ring_agent(
        self, interaction_id: int, agent_id: int, device: str, ring_seconds: float
    ) -> None:
        """Deliver the offer to the agent's device (ring it); connect on answer."""

    async def answer_for_agent(self, interaction_id: int, device: str) -> bool:
        """The agent accepted at the desktop: True when the device was told to answer,
        False when the agent must pick it up themselves."""

    async def return_to_waiting(self, interaction_id: int) -> None:
        """Take the offer back (nobody answered, declined, sent to a queue)."""

    async def end_waiting(self, interaction_id: int, action: str) -> None:
        """Maximum wait reached: voicemail, callback request or disconnect."""

    async def hangup(self, interaction_id: int) -> None:
        """End the contact."""

    async def hold(self, interaction_id: int) -> None:
        """Put the customer on hold."""

    async def unhold(self, interaction_id: int) -> None:
        """Take the customer off hold."""

    async def transfer(self, interaction_id: int, target: str) -> None:
        """Pass the contact to another extension."""


class Channels:
    """The channels the daemon runs, by name: their specs and, where they have one, ports."""

    def __init__(
        self, specs: Iterable[ChannelSpec], ports: Mapping[str, ChannelPort] | None = None
    ) -> None:
        self.specs: dict[str, ChannelSpec] = {spec.name: spec for spec in specs}
        self.ports: dict[str, ChannelPort] = dict(ports or {})
        unknown = set(self.ports) - set(self.specs)
        if unknown:
            raise ValueError(f"ports for undeclared channels: {', '.join(sorted(unknown))}")

    def spec(self, name: str) -> ChannelSpec:
        """The spec of channel `name`; RoutingError when no such channel runs."""
        spec = self.specs.get(name)
        if spec is None:
            raise RoutingError("routing.unknown_channel", f"no channel {name!r} is set up")
        return spec

    def port(self, name: str) -> ChannelPort | None:
        """The channel's own side, or None (desk-only, or its adapter is not running)."""
        return self.ports.get(name)

    def can(self, name: str, capability: Capability) -> bool:
        """Does channel `name` declare `capability`? (False for an unknown channel.)"""
        spec = self.specs.get(name)
        return spec is not None and spec.can(capability)

    def with_capability(self, capability: Capability) -> list[str]:
        """The channels declaring `capability`, by name."""
        return sorted(name for name, spec in self.specs.items() if spec.can(capability))

    def restored_from_store(self) -> tuple[str, ...]:
        """Channels whose waiting contacts routing rebuilds from the store on start."""
        return tuple(sorted(n for n, s in self.specs.items() if s.restored_from_store))
