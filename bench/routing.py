"""Routing decisions: the indexed router against a scan-everything baseline, same run.

Run from the repository root:

    .venv/bin/python bench/routing.py [--quick]

For 500, 5,000 and 20,000 agents (50 skills, 100 queues with 1-3 required skills and
relaxation steps, 2,000 contacts waiting), two kinds of decision are timed one by one:

  (a) an agent becomes free at random: which waiting contact do they get?
  (b) a contact arrives while a tenth of the agents are free: which agent gets it?

The baseline answers the same questions by scanning every waiting contact (a) or every
agent (b) with the same rules, written as a plain scan at its cheapest (requirements per
step worked out once, no allocation per candidate); both see the same random sequence.
The garbage collector stays on for both, as in the daemon. Before each timed
decision the router's `tick` runs untimed, as the daemon's timer would: moving contacts to
their next relaxation step is work time brings, not part of the decision. It prints a table and
ends with one line holding a JSON object of all figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from routing.model import Agent, Contact, Offer, Policy, QueueDef, RelaxStep  # noqa: E402
from routing.router import Router  # noqa: E402

SKILLS = [f"skill{i:02d}" for i in range(50)]
POLICY = Policy(
    capacity={"voice": 1, "chat": 0, "email": 0, "sms": 0}, blocks={}, wrap_up_seconds=0
)


def make_queues(rng: random.Random, count: int = 100) -> list[QueueDef]:
    queues = []
    for i in range(count):
        required = {s: rng.randint(1, 6) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        first = next(iter(required))
        queues.append(
            QueueDef(
                f"q{i:03d}",
                ("voice",),
                required,
                relaxation=(RelaxStep(60, lower_levels={first: 1}),),
                strategy="most_skilled" if i % 5 == 0 else "longest_idle",
            )
        )
    return queues


def make_agent_skills(rng: random.Random, count: int) -> list[dict[str, int]]:
    return [
        {s: rng.randint(1, 10) for s in rng.sample(SKILLS, rng.randint(5, 10))}
        for _ in range(count)
    ]


@dataclass
class BaselineAgent:
    id: int
    skills: dict[str, int]
    free: bool
    idle_since: float


class Baseline:
    """The plain router: no index, one scan over everything on every decision.

    As cheap as a plain scan can be, so the ratio measures the index and nothing else:
    each queue's requirements per relaxation step are worked out once (a tuple of
    (skill, level) pairs), each contact's sort key and queue steps are kept beside it,
    and a decision is a single loop with no allocation per candidate.
    """

    def __init__(self, queues: list[QueueDef]) -> None:
        self.steps: dict[str, list[tuple[float, tuple[tuple[str, int], ...]]]] = {}
        for queue in queues:
            thresholds = [0.0] + [float(r.after_seconds) for r in queue.relaxation]
            self.steps[queue.name] = [
                (after, tuple(queue.requirements(step)[0].items()))
                for step, after in enumerate(thresholds)
            ]
        self.agents: dict[int, BaselineAgent] = {}
        # (sort key, contact, its queue's steps, when it entered the queue)
        self.waiting: list[tuple[tuple[int, float, int], Contact, list[Any], float]] = []

    def add_waiting(self, contact: Contact) -> None:
        self.waiting.append(
            (contact.sort_key(), contact, self.steps[contact.queue], contact.queue_entered_at)
        )

    def remove_waiting(self, contact_id: str) -> None:
        self.waiting = [w for w in self.waiting if w[1].id != contact_id]

    @staticmethod
    def _levels(steps: list[Any], waited: float) -> tuple[tuple[str, int], ...]:
        levels = steps[0][1]
        for after, step_levels in steps:
            if waited < after:
                break
            levels = step_levels
        return levels

    def agent_free(self, agent_id: int, now: float) -> Contact | None:
        agent = self.agents[agent_id]
        agent.free, agent.idle_since = True, now
        skill = agent.skills.get
        best: tuple[Any, ...] | None = None
        for entry in self.waiting:
            if best is not None and entry[0] >= best[0]:
                continue
            for name, level in self._levels(entry[2], now - entry[3]):
                if skill(name, 0) < level:
                    break
            else:
                best = entry
        if best is None:
            return None
        self.waiting.remove(best)  # type: ignore[arg-type]
        agent.free = False
        return best[1]  # type: ignore[no-any-return]

    def contact_arrives(self, contact: Contact, now: float) -> BaselineAgent | None:
        levels = self._levels(self.steps[contact.queue], now - contact.queue_entered_at)
        best: BaselineAgent | None = None
        for agent in self.agents.values():
            if not agent.free or (
                best is not None and (agent.idle_since, agent.id) >= (best.idle_since, best.id)
            ):
                continue
            skill = agent.skills.get
            for name, level in levels:
                if skill(name, 0) < level:
                    break
            else:
                best = agent
        if best is None:
            self.add_waiting(contact)
        else:
            best.free = False
        return best


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(agents: int, waiting: int, decisions: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    queues = make_queues(rng)
    skills = make_agent_skills(rng, agents)
    router = Router(queues, POLICY)
    baseline = Baseline(queues)
    now = 0.0
    serial = 0

    def new_contact(at: float) -> Contact:
        nonlocal serial
        serial += 1
        queue = rng.choice(queues)
        return Contact(f"c{serial}", "voice", queue.name, at, priority=rng.randint(0, 3))

    # Every agent ready and busy with a call of their own; then the queue fills up.
    for agent_id, agent_skills in enumerate(skills, start=1):
        router.add_agent(Agent(agent_id, f"a{agent_id}", agent_skills, {"voice": 1}), now)
        router.set_status(agent_id, "ready", now)
        router.start_direct(f"own{agent_id}", agent_id, "voice", now)
        baseline.agents[agent_id] = BaselineAgent(agent_id, agent_skills, False, now)
    for _ in range(waiting):
        now += 0.01
        contact = new_contact(now)
        router.enqueue(contact, now)
        baseline.add_waiting(
            Contact(contact.id, "voice", contact.queue, now, contact.priority, queue_entered_at=now)
        )

    busy: dict[int, str] = {a: f"own{a}" for a in router.agents}
    indexed_a: list[float] = []
    baseline_a: list[float] = []
    # The garbage collector stays on, as in the daemon: its pauses are part of the figures.
    collections_before = sum(g["collections"] for g in gc.get_stats())
    try:
        # (a) agents become free at random.
        for _ in range(decisions):
            now += 0.05
            # What time alone brings (relaxation steps) is the shell's timer's work, as in
            # the daemon: done before the decision, not timed with it.
            for decision in router.tick(now):
                if isinstance(decision, Offer):
                    router.accept(decision.contact_id, decision.agent_id, now)
                    busy[decision.agent_id] = decision.contact_id
            agent_id = rng.choice(list(busy))
            contact_id = busy.pop(agent_id)
            started = time.perf_counter_ns()
            out = router.end_contact(contact_id, agent_id, now)
            indexed_a.append((time.perf_counter_ns() - started) / 1000)
            started = time.perf_counter_ns()
            baseline.agent_free(agent_id, now)
            baseline_a.append((time.perf_counter_ns() - started) / 1000)
            for decision in out:
                if isinstance(decision, Offer):
                    router.accept(decision.contact_id, decision.agent_id, now)
                    busy[decision.agent_id] = decision.contact_id
            # Keep the queues full: a new contact replaces the one taken.
            while len(router.contacts) < waiting:
                contact = new_contact(now)
                router.enqueue(contact, now)
                baseline.add_waiting(contact)
        # (b) contacts arrive while a tenth of the agents are free.
        for agent_id in rng.sample(list(busy), len(busy) // 10):
            contact_id = busy.pop(agent_id)
            router.end_contact(contact_id, agent_id, now)
            baseline.agents[agent_id].free = True
        for contact_id in list(router.contacts):  # nobody waiting: every arrival decides
            router.remove_contact(contact_id, now)
        baseline.waiting.clear()
        indexed_b: list[float] = []
        baseline_b: list[float] = []
        for _ in range(decisions):
            now += 0.05
            router.tick(now)  # nothing waits in this series: only stale deadlines go
            contact = new_contact(now)
            twin = Contact(
                contact.id, "voice", contact.queue, now, contact.priority, queue_entered_at=now
            )
            started = time.perf_counter_ns()
            out = router.enqueue(contact, now)
            indexed_b.append((time.perf_counter_ns() - started) / 1000)
            started = time.perf_counter_ns()
            chosen = baseline.contact_arrives(twin, now)
            baseline_b.append((time.perf_counter_ns() - started) / 1000)
            # Hand the agent straight back so the free pool stays the same size.
            for decision in out:
                if isinstance(decision, Offer):
                    router.reject(decision.contact_id, decision.agent_id, now)
            router.remove_contact(contact.id, now)
            if chosen is not None:
                chosen.free = True
            else:
                baseline.remove_waiting(twin.id)
    finally:
        collections = sum(g["collections"] for g in gc.get_stats()) - collections_before
    return {
        "gc_collections": collections,
        "agents": agents,
        "a_indexed_median_us": statistics.median(indexed_a),
        "a_indexed_p99_us": percentile(indexed_a, 0.99),
        "a_baseline_median_us": statistics.median(baseline_a),
        "a_baseline_p99_us": percentile(baseline_a, 0.99),
        "a_decisions_per_s": 1e6 / statistics.mean(indexed_a),
        "a_ratio_median": statistics.median(baseline_a) / statistics.median(indexed_a),
        "b_indexed_median_us": statistics.median(indexed_b),
        "b_indexed_p99_us": percentile(indexed_b, 0.99),
        "b_baseline_median_us": statistics.median(baseline_b),
        "b_baseline_p99_us": percentile(baseline_b, 0.99),
        "b_decisions_per_s": 1e6 / statistics.mean(indexed_b),
        "b_ratio_median": statistics.median(baseline_b) / statistics.median(indexed_b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer decisions, under a minute")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    decisions = 1000 if args.quick else 5000
    sizes = (500, 5000, 20000)
    results = [run(n, 2000, decisions, args.seed) for n in sizes]
    print(
        f"routing decisions, 100 queues, 50 skills, 2,000 waiting, {decisions} decisions per series"
    )
    print(
        f"{'agents':>7}  {'series':<22} {'median us':>10} {'p99 us':>9} {'decisions/s':>12}"
        f"  {'baseline median':>15} {'baseline p99':>12} {'ratio':>7}"
    )
    for r in results:
        for key, label in (("a", "(a) agent becomes free"), ("b", "(b) contact arrives")):
            print(
                f"{r['agents']:>7}  {label:<22} {r[key + '_indexed_median_us']:>10.1f}"
                f" {r[key + '_indexed_p99_us']:>9.1f} {r[key + '_decisions_per_s']:>12.0f}"
                f"  {r[key + '_baseline_median_us']:>15.1f} {r[key + '_baseline_p99_us']:>12.1f}"
                f" {r[key + '_ratio_median']:>6.1f}x"
            )
    at_5000 = results[1]
    targets = {
        "median_lt_200us": max(at_5000["a_indexed_median_us"], at_5000["b_indexed_median_us"])
        < 200,
        "p99_lt_2ms": max(at_5000["a_indexed_p99_us"], at_5000["b_indexed_p99_us"]) < 2000,
    }
    print(
        f"targets at 5,000 agents: median < 200 us {targets['median_lt_200us']}, "
        f"p99 < 2 ms {targets['p99_lt_2ms']}"
    )
    print(
        json.dumps(
            {
                "bench": "routing",
                "quick": args.quick,
                "decisions": decisions,
                "results": [{k: round(v, 2) for k, v in r.items()} for r in results],
                "targets_met": targets,
            }
        )
    )


if __name__ == "__main__":
    main()
