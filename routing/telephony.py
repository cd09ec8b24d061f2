"""The telephony port: what the daemon asks of a PBX. A real Asterisk and the simulated
PBX both implement it; the routing service only ever talks to this."""

from __future__ import annotations

from typing import Protocol

from crm_store.errors import ContactCenterError


class TelephonyError(ContactCenterError):
    """The PBX could not do what was asked (with a message for the agent)."""

    error_id = "telephony.failed"

    def __init__(self, message: str, error_id: str = "telephony.failed") -> None:
        super().__init__(message)
        self.error_id = error_id


class Telephony(Protocol):
    """Commands to the PBX; outcomes come back as bus events."""

    async def ring_agent(
        self, interaction_id: int, agent_id: int, device: str, ring_seconds: float
    ) -> None:
        """Ring the agent's device and connect the waiting caller on answer."""

    async def answer_for_agent(self, interaction_id: int, device: str) -> bool:
        """The agent clicked "accept" on a ringing call: True when the phone was told to
        answer, False when the agent must pick it up themselves."""

    async def return_to_waiting(self, interaction_id: int) -> None:
        """Back to music on hold: nobody answered, or the agent sent the call to a queue."""

    async def hangup(self, interaction_id: int) -> None:
        """End the call."""

    async def hold(self, interaction_id: int) -> None:
        """Put the caller on hold."""

    async def unhold(self, interaction_id: int) -> None:
        """Take the caller off hold."""

    async def transfer(self, interaction_id: int, target: str) -> None:
        """Blind-transfer the caller to an extension."""

    async def dial(self, interaction_id: int, agent_id: int, device: str, number: str) -> None:
        """Ring the agent's device, then call `number` from it (click-to-dial)."""

    async def spy(self, supervisor_device: str, agent_device: str, mode: str) -> None:
        """Listen, whisper or barge on the agent's call from the supervisor's device."""

    async def end_waiting(self, interaction_id: int, action: str) -> None:
        """Maximum wait reached: voicemail, callback request or disconnect."""
