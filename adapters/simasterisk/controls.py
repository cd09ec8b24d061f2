"""The demo's PBX: the simulated Asterisk, driven through the daemon's real Asterisk adapter.

With `pbx.mode: simulated` the daemon runs a `SimulatedAsterisk` on loopback and talks to
it exactly as it would to a real one: AMI for events and actions, FastAGI for the IVR.
This module is what the simulator adds on top for people trying the product:

- `SimulatedPhones`: agents' phones ring until the agent accepts the offer at the desktop
  (the desktop's Accept is the phone's answer button) and then talk until someone hangs
  up; other devices (transfer targets, the trunk of a click-to-dial) answer by themselves.
- `SimulatorControls`: what the wallboard's and the API's "place a call" buttons do: a
  caller rings in on the trunk and goes through an IVR flow with the keys given, or,
  like a call whose IVR is already done, straight into a queue.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.simasterisk import traffic
from adapters.simasterisk.phones import CALLER, PhonePolicy
from adapters.simasterisk.simulator import SimCall, SimulatedAsterisk
from adapters.simasterisk.traffic import TrafficModel
from ivr_flows.model import Flow
from routing.telephony import TelephonyError

# An agent's phone: rings until answered from the desktop; talks until a hang-up.
AGENT_PHONE = PhonePolicy(answer_after=None, talk_seconds=None)
# The same phone, accepted before it rang: it answers as soon as the Dial reaches it.
ANSWERED_AT_ONCE = PhonePolicy(answer_after=0.0, talk_seconds=None)
# How long "place a call" waits for the daemon's IVR to take the call.
IVR_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class DirectQueue:
    """A simulated call whose IVR is already done: queue it as the IVR would have."""

    queue: str
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    ivr_path: list[str] = field(default_factory=list)
    ivr_inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class CallScript:
    """What a simulated call does in the daemon's AGI session, and how it came out."""

    flow: str | None = None
    direct: DirectQueue | None = None
    done: asyncio.Future[tuple[int, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SimulatedPhones:
    """The agents' phones of the simulated Asterisk, answered from the desktop."""

    def __init__(self, sim: SimulatedAsterisk) -> None:
        self.sim = sim

    def ringing(self, device: str) -> None:
        """The daemon is about to ring `device` for an offer: it is an agent's phone."""
        if self.sim.phones.policy(device) is not AGENT_PHONE:
            self.sim.set_phone(device, AGENT_PHONE)

    def answer(self, device: str) -> None:
        """The agent accepted at the desktop: the ringing phone picks up. The screen pops
        before the phone rings, so an agent can accept before the Dial reached the phone:
        then it answers as soon as it rings."""
        wanted = device.lower()
        for channel in list(self.sim.model.channels.values()):
            if channel.device.lower() == wanted and channel.dialed_by and channel.state != 6:
                self.sim.apply(self.sim.model.answer(channel.uniqueid, self.sim.clock()))
                return
        self.sim.set_phone(device, ANSWERED_AT_ONCE)


class SimulatorControls:
    """Place and end simulated calls; the daemon's IVR and routing do the rest."""

    def __init__(
        self, sim: SimulatedAsterisk, scripts: dict[str, CallScript], flows: dict[str, Flow]
    ) -> None:
        self.sim = sim
        self.scripts = scripts  # shared with the Asterisk adapter, by the caller's Uniqueid
        self.flows = flows

    async def call_through_ivr(
        self, caller: str, flow_name: str, keys: list[str], *, dnis: str = "5000"
    ) -> tuple[int, str]:
        """A caller rings `dnis`, runs `flow_name` pressing `keys`; (interaction, outcome)."""
        if flow_name not in self.flows:
            raise TelephonyError(f"no IVR flow named {flow_name!r}", "telephony.no_flow")
        return await self._place(caller, dnis, keys, CallScript(flow=flow_name))

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
        """A caller rings in and, the IVR already done, waits in `queue`."""
        direct = DirectQueue(
            queue, priority, dict(skills or {}), list(ivr_path or []), dict(ivr_inputs or {})
        )
        interaction_id, _ = await self._place(caller, dnis, [], CallScript(direct=direct))
        return interaction_id

    async def caller_hangs_up(self, interaction_id: int) -> None:
        """The caller of `interaction_id` hangs up."""
        call = self._sim_call(interaction_id)
        if call is None:
            raise TelephonyError(f"no call {interaction_id}", "telephony.no_call")
        self.sim.hang_up_caller(call)

    async def _place(
        self, caller: str, dnis: str, keys: list[str], script: CallScript
    ) -> tuple[int, str]:
        call = self.sim.place_call(caller, dnis, digits=keys)
        # The AGI session starts on a later turn of the loop: the script is in place first.
        self.scripts[call.uniqueid] = script
        try:
            async with asyncio.timeout(IVR_WAIT_SECONDS):
                interaction_id, outcome = await asyncio.shield(script.done)
            call.interaction_id = interaction_id
            return interaction_id, outcome
        except TimeoutError:
            raise TelephonyError(
                "the daemon's IVR did not take the simulated call", "telephony.no_ivr"
            ) from None
        finally:
            self.scripts.pop(call.uniqueid, None)

    def _sim_call(self, interaction_id: int) -> SimCall | None:
        for call in self.sim.calls.values():
            if call.interaction_id == interaction_id and call.ended_at is None:
                return call
        return None


async def generate_calls(
    sim: SimulatedAsterisk,
    model: TrafficModel,
    rng: random.Random,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    batch: int = 100,
) -> None:
    """Place calls until cancelled, as `model` says: Poisson arrivals, known and unknown
    callers, keys at the menus; once connected the caller talks for its talk time and hangs
    up, and a caller still waiting after its patience gives up (an abandon)."""
    while True:
        await traffic.run(sim, model.plan(batch, rng), sleep=sleep, hangup_by=CALLER)
