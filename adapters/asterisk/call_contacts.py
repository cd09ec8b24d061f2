"""Which Asterisk call is which contact, and what its call events mean for the contact.

Pure: the call tracker's domain events (`adapters.ami.events`) come in, with what the
daemon itself did to a call (linked it to an interaction, rang an agent's device); contact
events (`routing.events`) come out, for the life cycle. The live adapter
(`adapters.asterisk.pbx`) publishes them on the bus; `contact-center replay` feeds them
straight to the same life cycle, so a recorded session and the live daemon map each call
event to the same life-cycle input.

An answer on the device we rang is that agent's; an answer anywhere else is reported with
the device, for the life cycle to find whose it is (a pickup, Asterisk's own queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.ami.events import (
    AgentNotAnswered,
    CallAnswered,
    CallEnded,
    CallHeld,
    CallStarted,
    CallUnheld,
)
from routing.dialing import same_device
from routing.events import (
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactRingFailed,
    ContactUnheld,
)

ContactEvent = ContactAnswered | ContactRingFailed | ContactHeld | ContactUnheld | ContactEnded

# A Dial the daemon cancelled itself (Redirect) or that the caller's hang-up ended: the
# life cycle already knows; any other failed DialEnd is the agent's phone not taking it.
OWN_DIAL_ENDINGS = frozenset({"cancel"})


@dataclass
class TrackedCall:
    """A call the daemon handles as a contact."""

    interaction_id: int
    channel: str
    uniqueid: str
    ringing_agent: int | None = None
    ringing_device: str | None = None
    # The leg the tracked channel is connected to: the agent's for a call that came in,
    # the customer's for a click-to-dial (whose tracked channel is the agent's phone).
    agent_channel: str | None = None
    outbound: bool = False
    # The dialplan already sent the caller back to the holding context (Dial failed).
    back_in_holding: bool = False
    held: bool = False


class CallContacts:
    """The link between tracked calls and contacts, and the mapping of call events."""

    def __init__(self) -> None:
        self.calls: dict[int, TrackedCall] = {}
        self._by_call_id: dict[str, int] = {}
        self._started: dict[str, CallStarted] = {}

    def link(self, interaction_id: int, channel: str, uniqueid: str) -> TrackedCall:
        """The call on `channel` (`uniqueid`) is the contact `interaction_id`."""
        call = self.calls[interaction_id] = TrackedCall(interaction_id, channel, uniqueid)
        for call_id, started in self._started.items():
            if started.uniqueid == uniqueid or started.channel == channel:
                self._by_call_id[call_id] = interaction_id
        return call

    def adopt(self, interaction_id: int, call_id: str) -> bool:
        """Link the tracked call `call_id` (seen starting) to `interaction_id`; False when
        no such call started."""
        started = self._started.get(call_id)
        if started is None:
            return False
        self.link(interaction_id, started.channel, started.uniqueid)
        return True

    def forget(self, interaction_id: int) -> None:
        """The contact is no longer ours to follow (transferred out, dial failed)."""
        self.calls.pop(interaction_id, None)
        for call_id in [c for c, i in self._by_call_id.items() if i == interaction_id]:
            del self._by_call_id[call_id]

    def ringing(self, interaction_id: int, agent_id: int, device: str) -> None:
        """The agent's device is being rung for the contact."""
        call = self.calls[interaction_id]
        call.ringing_agent, call.ringing_device, call.back_in_holding = agent_id, device, False

    def not_ringing(self, interaction_id: int) -> None:
        """The offer was taken back: no device rings for the contact any more."""
        call = self.calls.get(interaction_id)
        if call is not None:
            call.ringing_agent = call.ringing_device = None

    def interaction_of(self, call_id: str) -> int | None:
        """The contact a tracked call is, if it is one."""
        return self._by_call_id.get(call_id)

    def feed(self, event: Any) -> list[ContactEvent]:
        """The contact events one call-tracker event means."""
        if isinstance(event, CallStarted):
            self._started[event.call_id] = event
            for known_id, known in self.calls.items():
                if event.uniqueid == known.uniqueid or event.channel == known.channel:
                    self._by_call_id[event.call_id] = known_id
                    # A click-to-dial was linked by the Uniqueid we gave it, before its
                    # channel had a name.
                    known.channel = event.channel
            return []
        interaction_id = self._by_call_id.get(event.call_id)
        if interaction_id is None:
            return []
        call = self.calls.get(interaction_id)
        if isinstance(event, CallAnswered) and call is not None:
            return self._answered(call, event)
        if isinstance(event, AgentNotAnswered) and call is not None:
            return self.ring_failed(call, event.device, event.agent_channel, event.reason, event.at)
        if isinstance(event, CallHeld):
            return [ContactHeld(interaction_id, event.at)]
        if isinstance(event, CallUnheld):
            return [ContactUnheld(interaction_id, event.at)]
        if isinstance(event, CallEnded):
            cause = event.cause_text or ("gone while disconnected" if event.resynced else "")
            self.calls.pop(interaction_id, None)
            self._by_call_id.pop(event.call_id, None)
            self._started.pop(event.call_id, None)
            return [ContactEnded(interaction_id, event.at, cause or "hangup")]
        return []

    def ring_failed(
        self, call: TrackedCall, device: str, leg: str, reason: str, at: float
    ) -> list[ContactEvent]:
        """A ring of `device` ended without an answer: the offer's end, if it was ours."""
        agent_id = call.ringing_agent
        if agent_id is None or reason in OWN_DIAL_ENDINGS:
            return []
        if not same_device(call.ringing_device, device, leg):
            return []  # the end of an earlier agent's ring, already dealt with
        # The dialplan sends the caller back to the holding context after a failed Dial;
        # the life cycle's next move must not send it there a second time.
        call.ringing_agent, call.ringing_device, call.back_in_holding = None, None, True
        return [ContactRingFailed(call.interaction_id, agent_id, at, reason)]

    def _answered(self, call: TrackedCall, event: CallAnswered) -> list[ContactEvent]:
        call.agent_channel = event.agent_channel
        agent_id, device = call.ringing_agent, call.ringing_device
        # Answered once: a later bridge (after a hold, a transfer's target) is not an
        # answer of the offer.
        call.ringing_agent = call.ringing_device = None
        # A click-to-dial is answered by the customer, on the call the agent's phone made.
        if agent_id is not None and (
            call.outbound or same_device(device, event.device, event.agent_channel)
        ):
            return [ContactAnswered(call.interaction_id, agent_id, event.at)]
        return [
            ContactAnswered(
                call.interaction_id, None, event.at, device=event.device, leg=event.agent_channel
            )
        ]
