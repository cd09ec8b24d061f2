"""A simulated PBX: calls that exist only in the daemon, for demos, tests and training.

It implements the same telephony port as the Asterisk adapter and publishes the same
bus events, so everything above it (routing, screen pop, desktop, statistics) runs as
it would with a real PBX. The agent's "phone" is the desktop: accepting a ringing call
answers it. Calls live in memory; on start, voice interactions a previous run left open
are closed, because their calls did not survive the restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.asterisk.ivr_runner import CallerGone, hand_to_routing, record_ivr_end, run_flow
from crm_store.fast_intake import SqliteIntake
from crm_store.models import Interaction
from ivr_flows import interpreter as ivr
from ivr_flows.model import Flow
from routing.events import (
    ContactAnswered,
    ContactEnded,
    ContactHeld,
    ContactQueued,
    ContactTransferred,
    ContactUnheld,
)
from routing.intake import OpenedContact, open_contact
from routing.ports import EventPublisher
from routing.telephony import TelephonyError

log = logging.getLogger(__name__)

CallState = Literal["waiting", "ringing", "talking", "held", "ended"]


@dataclass
class SimulatedCall:
    """One call in the simulator."""

    interaction_id: int
    caller: str
    state: CallState = "waiting"
    agent_id: int | None = None
    device: str | None = None
    spies: list[tuple[str, str]] = field(default_factory=list)


class SimulatedPbx:
    """The telephony port, with calls placed through `place_call`."""

    def __init__(
        self,
        bus: EventPublisher,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        region: str,
        flows: dict[str, Flow] | None = None,
        fast_intake: SqliteIntake | None = None,
        clock: Any = time.time,
    ) -> None:
        self.fast_intake = fast_intake
        self.bus = bus
        self.sessionmaker = sessionmaker
        self.region = region
        self.flows = flows or {}
        self.clock = clock
        # The IVR's idea of "now" (business hours); tests pin it.
        self.ivr_clock: Any = lambda: datetime.now(UTC)
        self.calls: dict[int, SimulatedCall] = {}
        self._serial = 0

    async def start(self) -> int:
        """Close voice interactions left open by a previous run; how many."""
        now = datetime.now(UTC)
        async with self.sessionmaker.begin() as session:
            stale = (
                await session.scalars(
                    select(Interaction).where(
                        Interaction.channel == "voice", Interaction.ended_at.is_(None)
                    )
                )
            ).all()
            for ix in stale:
                ix.ended_at = now
                ix.end_cause = "simulated call lost in a restart"
        if stale:
            log.info("closed %d simulated calls left open by the previous run", len(stale))
        return len(stale)

    # --- the caller's side (the simulator's controls) ------------------------------

    async def call_through_ivr(
        self, caller: str, flow_name: str, keys: list[str], *, dnis: str = "5000"
    ) -> tuple[int, str]:
        """A call runs an IVR flow, the caller pressing `keys` (one entry per prompt that
        asks for keys; silence once they run out). Returns (interaction id, outcome)."""
        flow = self.flows.get(flow_name)
        if flow is None:
            raise TelephonyError(f"no IVR flow named {flow_name!r}", "telephony.no_flow")
        opened = await self._arrive(caller)
        outcome = await run_flow(
            flow,
            _ScriptedCaller(keys),
            caller_number=caller,
            interaction_id=opened.interaction_id,
            sessionmaker=self.sessionmaker,
            region=self.region,
            clock=self.ivr_clock,
        )
        command = outcome.command
        if isinstance(command, ivr.Queue):
            self.calls[opened.interaction_id] = SimulatedCall(opened.interaction_id, caller)
            await hand_to_routing(
                self.bus,
                self.sessionmaker,
                opened,
                outcome,
                command.queue,
                address=caller,
                dnis=dnis,
                at=self.clock(),
            )
        else:
            # The call ends in the IVR: voicemail, callback request, transfer or hang-up.
            await record_ivr_end(
                self.sessionmaker, opened.interaction_id, outcome, datetime.now(UTC)
            )
        return opened.interaction_id, outcome.outcome

    async def place_call(
        self,
        caller: str,
        queue: str,
        *,
        dnis: str = "5000",
        priority: int = 0,
        skills: dict[str, int] | None = None,
        ivr_path: list[Any] | None = None,
        ivr_inputs: dict[str, Any] | None = None,
    ) -> int:
        """A call arrives, has been through the IVR, and waits in `queue`."""
        now = self.clock()
        inputs = {"dnis": dnis, **(ivr_inputs or {})}
        opened = await self._arrive(caller, queue=queue, ivr_path=ivr_path or [], inputs=inputs)
        self.calls[opened.interaction_id] = SimulatedCall(opened.interaction_id, caller)
        self.bus.publish(
            ContactQueued(
                interaction_id=opened.interaction_id,
                channel="voice",
                queue=queue,
                at=now,
                address=caller,
                customer_id=opened.customer_id,
                tier=opened.tier,
                priority=priority,
                skills=dict(skills or {}),
                ivr_path=list(ivr_path or []),
                ivr_inputs=inputs,
            )
        )
        return opened.interaction_id

    async def caller_hangs_up(self, interaction_id: int) -> None:
        """The caller hangs up, wherever the call is."""
        call = self._call(interaction_id)
        cause = "caller hung up" if call.state in ("talking", "held") else "abandoned"
        self._end(call, cause)

    # --- the telephony port -------------------------------------------------------

    async def ring_agent(
        self, interaction_id: int, agent_id: int, device: str, ring_seconds: float
    ) -> None:
        """Ring the agent's (simulated) phone."""
        call = self._call(interaction_id)
        if call.state != "waiting":
            raise TelephonyError(f"call {interaction_id} is {call.state}, not waiting")
        call.state, call.agent_id, call.device = "ringing", agent_id, device

    async def answer_for_agent(self, interaction_id: int, device: str) -> bool:
        """The agent accepted on the desktop: the simulated phone answers."""
        call = self._call(interaction_id)
        if call.state != "ringing" or call.agent_id is None:
            raise TelephonyError(f"call {interaction_id} is not ringing")
        call.state = "talking"
        self.bus.publish(ContactAnswered(interaction_id, call.agent_id, self.clock()))
        return True

    async def return_to_waiting(self, interaction_id: int) -> None:
        """Back to music on hold."""
        call = self.calls.get(interaction_id)
        if call is not None and call.state != "ended":
            call.state, call.agent_id, call.device = "waiting", None, None

    async def hangup(self, interaction_id: int) -> None:
        """The agent hangs up."""
        self._end(self._call(interaction_id), "agent hung up")

    async def hold(self, interaction_id: int) -> None:
        """Caller on hold."""
        call = self._call(interaction_id)
        if call.state != "talking":
            raise TelephonyError(
                f"call {interaction_id} is {call.state}; only a call in progress can be held"
            )
        call.state = "held"
        self.bus.publish(ContactHeld(interaction_id, self.clock()))

    async def unhold(self, interaction_id: int) -> None:
        """Caller back from hold."""
        call = self._call(interaction_id)
        if call.state != "held":
            raise TelephonyError(f"call {interaction_id} is not on hold")
        call.state = "talking"
        self.bus.publish(ContactUnheld(interaction_id, self.clock()))

    async def transfer(self, interaction_id: int, target: str) -> None:
        """Blind transfer to an extension: the call leaves the contact center."""
        call = self._call(interaction_id)
        if call.state not in ("talking", "held"):
            raise TelephonyError(f"call {interaction_id} is {call.state}; nothing to transfer")
        now = self.clock()
        self.bus.publish(ContactTransferred(interaction_id, target, now))
        self._end(call, f"transferred to {target}")

    async def dial(self, interaction_id: int, agent_id: int, device: str, number: str) -> None:
        """Click-to-dial: the far end answers at once."""
        call = SimulatedCall(interaction_id, number, "talking", agent_id, device)
        self.calls[interaction_id] = call
        self.bus.publish(ContactAnswered(interaction_id, agent_id, self.clock()))

    async def spy(self, supervisor_device: str, agent_device: str, mode: str) -> None:
        """Listen/whisper/barge: recorded on the agent's current call."""
        for call in self.calls.values():
            if call.device == agent_device and call.state in ("talking", "held"):
                call.spies.append((supervisor_device, mode))
                return
        raise TelephonyError(f"{agent_device} is not on a call")

    async def end_waiting(self, interaction_id: int, action: str) -> None:
        """Maximum wait reached: the simulated caller is sent to `action`."""
        call = self.calls.get(interaction_id)
        if call is not None and call.state == "waiting":
            call.state = "ended"
            self.calls.pop(interaction_id, None)

    # --- helpers ------------------------------------------------------------------

    async def _arrive(
        self,
        caller: str,
        *,
        queue: str | None = None,
        ivr_path: list[Any] | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> OpenedContact:
        """A new simulated call: its interaction, with a made-up channel id."""
        self._serial += 1
        now = self.clock()
        return await open_contact(
            self.sessionmaker,
            channel="voice",
            address=caller,
            region=self.region,
            external_id=f"sim-{int(now)}-{self._serial}",
            queue=queue,
            at=now,
            ivr_path=ivr_path,
            ivr_inputs=inputs,
            fast=self.fast_intake,
        )

    def _call(self, interaction_id: int) -> SimulatedCall:
        call = self.calls.get(interaction_id)
        if call is None or call.state == "ended":
            raise TelephonyError(f"no call {interaction_id} in progress", "telephony.no_call")
        return call

    def _end(self, call: SimulatedCall, cause: str) -> None:
        call.state = "ended"
        self.calls.pop(call.interaction_id, None)
        self.bus.publish(ContactEnded(call.interaction_id, self.clock(), cause))


class _ScriptedCaller:
    """A simulated caller who presses the given keys, one entry per question."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = list(keys)
        self.heard: list[str] = []

    async def play(self, prompt: str) -> None:
        self.heard.append(prompt)

    async def collect(
        self, prompt: str, max_digits: int, wait_seconds: float, terminator: str | None
    ) -> str | None:
        self.heard.append(prompt)
        if not self.keys:
            return None
        keys = self.keys.pop(0)
        if keys == "hangup":
            raise CallerGone()
        return keys or None
