"""Simulated phones: what each device does when it rings, and how long its user talks.

A policy per device name (`PJSIP/1001`); devices without one (the trunk, transfer
targets) use the default. Pure data: the simulator arms the timers. A `Local/` device has
no policy (and is not counted in `rings`): as on a real Asterisk, the dialplan its `;2`
half runs is the phone (adapters/simasterisk/local_channels.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

AGENT, CALLER = "agent", "caller"


@dataclass(frozen=True, slots=True)
class PhonePolicy:
    """How a phone behaves when called.

    answer_after: seconds of ringing before it answers; None never answers (the Dial
    times out: DialStatus NOANSWER). busy: it refuses at once (486: DialStatus BUSY).
    talk_seconds: how long the conversation lasts once answered, unless the call says
    otherwise; None talks until someone else hangs up. hangup_by: who ends it.
    """

    answer_after: float | None = 0.5
    busy: bool = False
    talk_seconds: float | None = 5.0
    hangup_by: str = AGENT
    ring_delay: float = 0.0  # seconds before the phone reports ringing (180)


NEVER_ANSWERS = PhonePolicy(answer_after=None)
BUSY = PhonePolicy(busy=True)
# The far end of a transfer or a click-to-dial: answers, talks until the other side ends.
EXTERNAL = PhonePolicy(answer_after=1.0, talk_seconds=None)


@dataclass(slots=True)
class Phones:
    """Policies by device name (case-insensitive, as Asterisk matches endpoints).

    agents: the policy of a device the dialplan's agent context dials (an agent's
    phone) that has none of its own; None: such devices use the default too.
    """

    default: PhonePolicy = EXTERNAL
    policies: dict[str, PhonePolicy] = field(default_factory=dict)
    rings: dict[str, int] = field(default_factory=dict)
    agents: PhonePolicy | None = None

    def set(self, device: str, policy: PhonePolicy) -> None:
        """Give `device` a policy."""
        self.policies[device.lower()] = policy

    def policy(self, device: str) -> PhonePolicy:
        """The policy of `device` (or the default)."""
        return self.policies.get(device.lower(), self.default)

    def rang(self, device: str, *, agent: bool = False) -> PhonePolicy:
        """Count a ring and return the device's policy (`agent`: an agent's phone)."""
        key = device.lower()
        self.rings[key] = self.rings.get(key, 0) + 1
        if agent and self.agents is not None and key not in self.policies:
            return self.agents
        return self.policy(device)
