"""The life cycle's effects: what its shell (the live service, or `replay`) carries out,
in the order they come."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.contact_state import ContactInfo
from routing.events import ContactQueued
from routing.model import Decision, Offer
from routing.stats import LifeCycleEvent


@dataclass(frozen=True, slots=True)
class Record:
    """A step of the life cycle: counted in the figures, appended to the store's log."""

    event: LifeCycleEvent


@dataclass(frozen=True, slots=True)
class Persist:
    """Fields of the stored interaction to write (write-behind)."""

    interaction_id: int
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decided:
    """One of the router's decisions, as it was taken (for traces and `replay`);
    `interaction_id` is the contact it concerns (a wrap-up's: the agent's last one)."""

    decision: Decision
    interaction_id: int | None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Offer `contact` to the agent: screen pop first, then the channel (ring)."""

    offer: Offer
    contact: ContactInfo
    ring: bool


@dataclass(frozen=True, slots=True)
class OfferClosed:
    """The agent's offer is over without them taking it (`outcome`: rejected, timeout,
    withdrawn, abandoned, answered_elsewhere); `take_back`: the channel that must take
    back what it delivered (a ringing phone), if any."""

    agent_id: int
    interaction_id: int
    outcome: str
    take_back: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """The agent's state changed: their desktop and the wallboard show it again."""

    agent_id: int


@dataclass(frozen=True, slots=True)
class ContactChanged:
    """The contact's state changed: the desktop of the agent on it shows it again."""

    contact: ContactInfo


@dataclass(frozen=True, slots=True)
class StatusSaved:
    """The router set the agent's status itself (missed offers): store it."""

    agent_id: int
    status: str
    reason: str | None
    at: float


@dataclass(frozen=True, slots=True)
class LeaveQueue:
    """Maximum wait reached: the channel lets the customer go so (`action`)."""

    interaction_id: int
    channel: str
    action: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Queue the contact again (a transfer to a queue), as a fresh `ContactQueued`."""

    event: ContactQueued


Effect = (
    Record
    | Persist
    | Decided
    | Deliver
    | OfferClosed
    | AgentChanged
    | ContactChanged
    | StatusSaved
    | LeaveQueue
    | Requeue
)
