"""Events on the daemon's bus: the life of a contact, whatever its channel.

Channel adapters (the AMI call tracker, the simulated PBX, email, SMS, chat) publish
these; the routing service consumes them. Past tense, frozen, times in epoch seconds.
Each has a stable type name and schema version (`routing.event_codec`): the form it
takes on the wire, to a broker or another daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing.event_codec import bus_event


@bus_event("contact.queued", version=1)
@dataclass(frozen=True)
class ContactQueued:
    """A contact needs an agent: it waits in `queue` from `at` (or `enqueued_at`)."""

    interaction_id: int
    channel: str
    queue: str
    at: float
    address: str | None = None
    customer_id: int | None = None
    tier: str | None = None  # the customer's tier, when the sender already knows it
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    ivr_path: list[Any] = field(default_factory=list)
    ivr_inputs: dict[str, Any] = field(default_factory=dict)
    # Set when a waiting contact is rebuilt after a restart: it keeps its place.
    enqueued_at: float | None = None
    # The name that came with the contact (caller id name, From name, pre-chat form).
    address_name: str | None = None


@bus_event("contact.answered", version=1)
@dataclass(frozen=True)
class ContactAnswered:
    """The contact was answered: by the agent it was offered to (`agent_id`), or, when
    `agent_id` is None, on the device `device` (leg `leg`) of whoever has it."""

    interaction_id: int
    agent_id: int | None
    at: float
    device: str = ""
    leg: str = ""


@bus_event("contact.ring_failed", version=1)
@dataclass(frozen=True)
class ContactRingFailed:
    """The agent's phone was rung and did not take the call (no answer, busy, unreachable).

    The PBX reports it as it happens, before the router's own offer timeout.
    """

    interaction_id: int
    agent_id: int
    at: float
    reason: str


@bus_event("contact.held", version=1)
@dataclass(frozen=True)
class ContactHeld:
    """The agent put the customer on hold."""

    interaction_id: int
    at: float


@bus_event("contact.unheld", version=1)
@dataclass(frozen=True)
class ContactUnheld:
    """The customer is back from hold."""

    interaction_id: int
    at: float


@bus_event("contact.transferred", version=1)
@dataclass(frozen=True)
class ContactTransferred:
    """The agent passed the contact on (blind transfer to an extension or a queue)."""

    interaction_id: int
    target: str
    at: float


@bus_event("contact.ended", version=1)
@dataclass(frozen=True)
class ContactEnded:
    """The contact is over (hung up, closed, or the customer left while waiting)."""

    interaction_id: int
    at: float
    cause: str = "normal"
