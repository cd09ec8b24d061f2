"""Bus events of text conversations, beside the contact events of `routing.events`.

Routing does not need these (a message on an open contact changes nothing in its life
cycle); the desktop does: the agent on the contact sees the customer's message, and the
state of what they sent, as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.event_codec import bus_event


@bus_event("message.received", version=1)
@dataclass(frozen=True)
class MessageReceived:
    """A customer's message was stored on the open contact `interaction_id`."""

    interaction_id: int
    message_id: int
    channel: str
    at: float


@bus_event("message.status", version=1)
@dataclass(frozen=True)
class MessageStatusChanged:
    """What became of a message for the customer (queued, sent, delivered, failed)."""

    interaction_id: int
    message_id: int
    status: str
    error: str | None
    at: float


@bus_event("message.typing", version=1)
@dataclass(frozen=True)
class CustomerTyping:
    """The customer is typing (web chat)."""

    interaction_id: int
    at: float
