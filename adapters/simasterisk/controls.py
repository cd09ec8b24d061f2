"""The demo's PBX: the simulated Asterisk, driven through the daemon's real Asterisk adapter.

With `pbx.mode: simulated` the daemon runs a `SimulatedAsterisk` on loopback and talks to
it exactly as it would to a real one: AMI for events and actions, FastAGI for the IVR.
This module is what the simulator adds on top for people trying the product:

- `AGENT_PHONE`: agents' phones (the devices the agent context dials) ring until the
  desktop's Accept answers them (a PJSIPNotify `Event: talk`, `pbx.remote_answer`) and
  then talk until someone hangs up; other devices (transfer targets, the far end of a
  click-to-dial) answer by themselves.
- `SimulatorControls`: what the wallboard's and the API's "place a call" buttons do: a
  caller rings in on the trunk and goes through an IVR flow pressing the keys given, or,
  like a number whose dialplan skips the IVR, straight into a queue (FastAGI
  `queue/<name>?...`). What the daemon made of the call comes back the way a PBX sees
  it: the channel variables its FastAGI set (CC_INTERACTION_ID, CC_IVR_OUTCOME).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from adapters.simasterisk import traffic
from adapters.simasterisk.phones import CALLER, PhonePolicy
from adapters.simasterisk.simulator import SimCall, SimulatedAsterisk
from adapters.simasterisk.traffic import TrafficModel
from routing.telephony import TelephonyError

# An agent's phone: rings until answered from the desktop; talks until a hang-up.
AGENT_PHONE = PhonePolicy(answer_after=None, talk_seconds=None)
# How long "place a call" waits for the daemon's IVR to be done with the call.
IVR_WAIT_SECONDS = 30.0


def queue_script(
    queue: str,
    *,
    priority: int = 0,
    skills: Mapping[str, int] | None = None,
    ivr_path: list[str] | None = None,
    ivr_inputs: Mapping[str, str] | None = None,
) -> str:
    """The FastAGI script of a number that queues straight into `queue`."""
    query: list[tuple[str, str]] = [("priority", str(priority))] if priority else []
    query += [("skill", f"{name}:{level}") for name, level in (skills or {}).items()]
    query += [("step", step) for step in ivr_path or []]
    query += [(f"input.{key}", value) for key, value in (ivr_inputs or {}).items()]
    script = f"queue/{quote(queue, safe='')}"
    return f"{script}?{urlencode(query)}" if query else script


class SimulatorControls:
    """Place and end simulated calls; the daemon's IVR and routing do the rest."""

    def __init__(self, sim: SimulatedAsterisk, flows: Mapping[str, Any]) -> None:
        self.sim = sim
        self.flows = flows  # the daemon's IVR flows, by name (to refuse unknown ones)

    async def call_through_ivr(
        self, caller: str, flow_name: str, keys: list[str], *, dnis: str = "5000"
    ) -> tuple[int, str]:
        """A caller rings `dnis`, runs `flow_name` pressing `keys`; (interaction, outcome)."""
        if flow_name not in self.flows:
            raise TelephonyError(f"no IVR flow named {flow_name!r}", "telephony.no_flow")
        return await self._place(caller, dnis, keys, f"ivr/{quote(flow_name, safe='')}")

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
        script = queue_script(
            queue,
            priority=priority,
            skills=skills,
            ivr_path=[str(step) for step in ivr_path or []],
            ivr_inputs={str(k): str(v) for k, v in (ivr_inputs or {}).items()},
        )
        interaction_id, _ = await self._place(caller, dnis, [], script)
        return interaction_id

    async def caller_hangs_up(self, interaction_id: int) -> None:
        """The caller of `interaction_id` hangs up."""
        call = self._sim_call(interaction_id)
        if call is None:
            raise TelephonyError(f"no call {interaction_id}", "telephony.no_call")
        self.sim.hang_up_caller(call)

    async def _place(self, caller: str, dnis: str, keys: list[str], script: str) -> tuple[int, str]:
        call = self.sim.place_call(caller, dnis, digits=keys, agi_script=script)
        try:
            async with asyncio.timeout(IVR_WAIT_SECONDS):
                await call.left_ivr.wait()
        except TimeoutError:
            raise TelephonyError(
                "the daemon's IVR did not take the simulated call", "telephony.no_ivr"
            ) from None
        if call.interaction_id is None or call.ivr_outcome is None:
            raise TelephonyError("the IVR ended without a contact", "telephony.no_ivr")
        return call.interaction_id, call.ivr_outcome

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
