"""What routing needs from the layers around it, as protocols the composition root fills.

Routing publishes contact events and pushes browser messages, but it must not know the
bus or the web hub that carry them (they live in `contact_center`, above it): the
daemon's in-memory bus and its WebSocket hub satisfy these today, a message broker and
another notifier can tomorrow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from routing.contact_state import ContactInfo
    from routing.model import Offer

EventHandler = Callable[[Any], Awaitable[None] | None]


class EventPublisher(Protocol):
    """Where domain events go: delivered in order to every subscriber."""

    def publish(self, event: Any) -> None:
        """Queue `event` for delivery; never blocks, never raises for a slow subscriber."""


class Bus(EventPublisher, Protocol):
    """The daemon's event bus: in memory today; a broker can carry the same events, each
    registered with a type name and version for the wire (`routing.event_codec`)."""

    def subscribe(self, event_type: type, handler: EventHandler) -> None:
        """Call `handler` for every event of `event_type` (or a subclass), in order."""


class Notifier(Protocol):
    """Browsers of agents and supervisors (the desktop and the wallboard). Routing says
    what happened; the notifier shapes every browser message (one place, as wazo-calld)."""

    def offer(
        self, agent_id: int, contact: ContactInfo, offer: Offer, pop: Mapping[str, Any]
    ) -> None:
        """A contact is offered to the agent, with the customer's screen pop."""

    def offer_ended(self, agent_id: int, interaction_id: int, outcome: str) -> None:
        """The agent's offer is over without them taking it (`outcome` says why)."""

    def agent_changed(self, agent_id: int, state: Mapping[str, Any]) -> None:
        """The agent's state (`routing.floor_view.FloorView.agent`) changed."""

    def contact_changed(self, agent_id: int, contact: ContactInfo) -> None:
        """The contact the agent is on changed state."""

    def floor(
        self, at: float, queues: Sequence[Mapping[str, Any]], agents: Sequence[Mapping[str, Any]]
    ) -> None:
        """The wallboard's live figures: every queue and every agent."""

    def supervisors_connected(self) -> int:
        """How many wallboards are open (routing skips building their feed when none)."""
