"""What routing needs from the layers around it, as protocols the composition root fills.

Routing publishes contact events and pushes browser messages, but it must not know the
bus or the web hub that carry them (they live in `contact_center`, above it): the
daemon's in-memory bus and its WebSocket hub satisfy these today, a message broker and
another notifier can tomorrow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

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
    """Browsers of agents and supervisors (the desktop and the wallboard)."""

    def to_agent(self, user_id: int, message: dict[str, Any]) -> int:
        """Send to every desktop the agent has open; how many got it."""

    def to_supervisors(self, message: dict[str, Any]) -> int:
        """Send to every wallboard; how many got it."""

    def supervisors_connected(self) -> int:
        """How many wallboards are open (routing skips building their feed when none)."""
