"""What the life cycle knows of a contact beyond the router's view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing.channels import Channels
from routing.dialing import same_device
from routing.router import Router, RoutingError


@dataclass
class ContactInfo:
    """What the life cycle knows about a contact beyond the router's view."""

    interaction_id: int
    channel: str
    queue: str | None
    address: str | None
    customer_id: int | None
    enqueued_at: float
    queue_entered_at: float
    ivr_path: list[Any] = field(default_factory=list)
    ivr_inputs: dict[str, Any] = field(default_factory=dict)
    # What the IVR asked of routing: kept for a re-queue (a transfer to a queue).
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    state: str = "waiting"  # waiting, offered, dialing, talking, held, wrap_up, closed
    agent_id: int | None = None
    offer_expires_at: float | None = None
    explanation: dict[str, Any] | None = None
    # The agent accepted at the desktop; the channel waits for them to pick up the device.
    accepted_at: float | None = None
    answered_at: float | None = None
    held_since: float | None = None
    hold_total: float = 0.0
    ended_at: float | None = None
    address_name: str | None = None

    def public(self) -> dict[str, Any]:
        """As the desktop shows it."""
        return {
            "interaction_id": self.interaction_id,
            "channel": self.channel,
            "queue": self.queue,
            "address": self.address,
            "address_name": self.address_name,
            "customer_id": self.customer_id,
            "state": self.state,
        }


class ContactBook:
    """The life cycle's state: the contacts, the agents' wrap-ups and devices; and what
    can be read of it."""

    def __init__(self, router: Router, channels: Channels) -> None:
        self.router = router
        self.channels = channels
        self.contacts: dict[int, ContactInfo] = {}
        # Agent -> the contacts whose wrap-up is running (closed when it ends).
        self.wrapping: dict[int, list[ContactInfo]] = {}
        # Agent -> the device their offers ring (an answer from it is theirs).
        self.devices: dict[int, str | None] = {}
        # Agent -> the contact they ended last (the one a wrap-up is for).
        self.last_ended: dict[int, int] = {}

    def _owner(self, device: str, leg: str) -> int | None:
        """The agent whose device this is (lowest id first, so it is deterministic)."""
        if not device and not leg:
            return None
        for agent_id in sorted(self.devices):
            if same_device(self.devices[agent_id], device, leg):
                return agent_id
        return None

    # --- reading ------------------------------------------------------------------------

    def offered_to(self, agent_id: int, interaction_id: int) -> ContactInfo:
        """The contact offered to the agent; RoutingError when it is not."""
        info = self.contacts.get(interaction_id)
        if info is None or info.state != "offered" or info.agent_id != agent_id:
            raise RoutingError(
                "routing.no_such_offer", f"contact {interaction_id} is not offered to you"
            )
        return info

    def current(self) -> dict[int, ContactInfo]:
        """Each agent's contact in progress (the first found)."""
        current: dict[int, ContactInfo] = {}
        for info in self.contacts.values():
            if info.agent_id is not None and info.state != "closed":
                current.setdefault(info.agent_id, info)
        return current

    def contact_of(self, agent_id: int) -> ContactInfo | None:
        """The contact the agent is on, is offered, or is wrapping up."""
        agent = self.router.agents[agent_id]
        # The router knows what the agent holds: look those up instead of scanning.
        for contact_id in (*agent.active, *agent.offered):
            info = self.contacts.get(int(contact_id)) if contact_id.isdigit() else None
            if info is not None and info.state != "closed":
                return info
        for pending in self.wrapping.get(agent_id, []):
            return pending
        return None
