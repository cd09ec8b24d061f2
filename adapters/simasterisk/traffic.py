"""A call generator for the simulator: Poisson arrivals, callers, keys, talk and patience.

`TrafficModel.plan` is pure (a seeded random.Random in, a list of planned calls out), so
a test or a benchmark gets the same day every time; `run` places the planned calls on a
SimulatedAsterisk, sleeping with an injectable sleep between arrivals.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from adapters.simasterisk.simulator import SimCall, SimulatedAsterisk


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One call: when (seconds from the start), who, what they key, how long they stay."""

    at: float
    number: str
    did: str
    digits: tuple[str, ...]
    talk_seconds: float
    patience: float | None


@dataclass(frozen=True, slots=True)
class TrafficModel:
    """What the day looks like.

    rate: calls per second (Poisson arrivals: exponential gaps). known_numbers: callers
    the CRM knows; unknown_share of calls come from numbers it does not. menus: for each
    GET DATA in turn, the keys and their weights (e.g. [{"1": 0.3, "2": 0.7}]).
    talk_seconds: (low, high), uniform. patience: mean seconds a caller waits before
    hanging up (exponential), or None for callers who never give up.
    """

    rate: float = 1.0
    known_numbers: Sequence[str] = ()
    unknown_share: float = 0.3
    dids: Sequence[str] = ("5000",)
    menus: Sequence[dict[str, float]] = field(default_factory=lambda: [{"2": 1.0}])
    talk_seconds: tuple[float, float] = (30.0, 180.0)
    patience: float | None = None

    def plan(self, count: int, rng: random.Random) -> list[PlannedCall]:
        """`count` calls, in arrival order."""
        calls: list[PlannedCall] = []
        at = 0.0
        for _ in range(count):
            at += rng.expovariate(self.rate) if self.rate > 0 else 0.0
            if self.known_numbers and rng.random() >= self.unknown_share:
                number = rng.choice(list(self.known_numbers))
            else:
                number = f"0700{rng.randrange(0, 1_000_000):06d}"
            digits = tuple(_weighted(menu, rng) for menu in self.menus)
            low, high = self.talk_seconds
            patience = rng.expovariate(1 / self.patience) if self.patience else None
            calls.append(
                PlannedCall(
                    at=at,
                    number=number,
                    did=rng.choice(list(self.dids)),
                    digits=digits,
                    talk_seconds=rng.uniform(low, high),
                    patience=patience,
                )
            )
        return calls


def _weighted(choices: dict[str, float], rng: random.Random) -> str:
    keys = list(choices)
    return rng.choices(keys, weights=[choices[k] for k in keys])[0]


async def run(
    sim: SimulatedAsterisk,
    plan: Sequence[PlannedCall],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    hangup_by: str | None = None,
) -> list[SimCall]:
    """Place the planned calls at their times; returns them as placed. `hangup_by`: who
    ends a conversation (default: the answering phone's policy says)."""
    placed: list[SimCall] = []
    elapsed = 0.0
    for planned in plan:
        if planned.at > elapsed:
            await sleep(planned.at - elapsed)
            elapsed = planned.at
        placed.append(
            sim.place_call(
                planned.number,
                planned.did,
                digits=list(planned.digits),
                patience=planned.patience,
                talk_seconds=planned.talk_seconds,
                hangup_by=hangup_by,
            )
        )
    return placed
