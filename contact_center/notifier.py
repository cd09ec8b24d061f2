"""The notifier: the one place that shapes what browsers receive (wazo-calld's habit).

Routing says what happened through its `Notifier` port (an offer, an offer over, an agent
or a contact changed, the floor's figures); this turns each into the JSON message the
desktop and the wallboard read, and hands it to the WebSocket hub. The messages a socket
gets when it connects and the replies of the HTTP API are shaped by the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.channels import CHANNEL_SPECS
from contact_center.web.hub import Hub
from routing.contact_state import ContactInfo
from routing.model import Offer

_SPECS = {spec.name: spec for spec in CHANNEL_SPECS}


def agent_state_message(state: Mapping[str, Any]) -> dict[str, Any]:
    """An agent's state, as the desktop and each wallboard row take it."""
    return {"type": "agent_state", **state}


def contact_message(contact: ContactInfo) -> dict[str, Any]:
    """The agent's contact in progress (state, channel, address, customer), with the
    actions its channel declares (the desktop shows those buttons, no others)."""
    spec = _SPECS.get(contact.channel)
    message: dict[str, Any] = {
        "type": "contact",
        **contact.public(),
        "actions": spec.actions() if spec is not None else [],
    }
    if contact.accepted_at is not None:
        # Accepted at the desktop; the phone still rings until it is picked up.
        message["pick_up"] = True
    return message


def offer_message(contact: ContactInfo, offer: Offer, pop: Mapping[str, Any]) -> dict[str, Any]:
    """A contact offered to the agent: who it is (the pop), why them, until when."""
    return {
        "type": "offer",
        "offer_id": contact.interaction_id,
        "interaction_id": contact.interaction_id,
        "channel": offer.channel,
        "queue": offer.queue,
        "address": contact.address,
        "address_name": contact.address_name,
        "expires_at": offer.expires_at,
        "explanation": dict(offer.explanation),
        "ivr": {"path": contact.ivr_path, "inputs": contact.ivr_inputs},
        "pop": dict(pop),
    }


def offer_ended_message(interaction_id: int, outcome: str) -> dict[str, Any]:
    """The offer is over without the agent taking it (rejected, timeout, abandoned...)."""
    return {"type": "offer_ended", "offer_id": interaction_id, "outcome": outcome}


def queues_message(at: float, queues: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every queue's live figures for the wallboard."""
    return {"type": "queues", "at": at, "queues": list(queues)}


def agents_message(at: float, agents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every agent's live state for the wallboard."""
    return {"type": "agents", "at": at, "agents": [agent_state_message(a) for a in agents]}


def history_message(history: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The last hour's samples per queue, for the wallboard's chart."""
    return {"type": "history", "queues": {name: list(points) for name, points in history.items()}}


class BrowserNotifier:
    """Routing's notifier port over the WebSocket hub."""

    def __init__(
        self,
        hub: Hub,
        contact_listeners: Sequence[Callable[[int, ContactInfo], None]] = (),
    ) -> None:
        self.hub = hub
        # Others that follow contacts as their agents see them (a chat's visitor is told
        # when the agent joins and leaves).
        self.contact_listeners = tuple(contact_listeners)

    def offer(
        self, agent_id: int, contact: ContactInfo, offer: Offer, pop: Mapping[str, Any]
    ) -> None:
        self.hub.to_agent(agent_id, offer_message(contact, offer, pop))

    def offer_ended(self, agent_id: int, interaction_id: int, outcome: str) -> None:
        self.hub.to_agent(agent_id, offer_ended_message(interaction_id, outcome))

    def agent_changed(self, agent_id: int, state: Mapping[str, Any]) -> None:
        self.hub.to_agent(agent_id, agent_state_message(state))

    def contact_changed(self, agent_id: int, contact: ContactInfo) -> None:
        self.hub.to_agent(agent_id, contact_message(contact))
        for listener in self.contact_listeners:
            listener(agent_id, contact)

    def floor(
        self, at: float, queues: Sequence[Mapping[str, Any]], agents: Sequence[Mapping[str, Any]]
    ) -> None:
        self.hub.to_supervisors(queues_message(at, queues))
        self.hub.to_supervisors(agents_message(at, agents))

    def supervisors_connected(self) -> int:
        return self.hub.supervisors_connected()


def conversation_message(
    interaction_id: int, message: Mapping[str, Any], *, kind: str = "message"
) -> dict[str, Any]:
    """A message of a text contact, new (`message`) or with a new delivery state
    (`message_status`), as the desktop's conversation panel takes it."""
    return {"type": kind, "interaction_id": interaction_id, "message": dict(message)}


def customer_typing_message(interaction_id: int) -> dict[str, Any]:
    """The customer of a chat is typing."""
    return {"type": "customer_typing", "interaction_id": interaction_id}
