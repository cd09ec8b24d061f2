"""Queue definitions and the floor policy, built from the validated configuration."""

from __future__ import annotations

from collections.abc import Iterable

from routing.channels import ChannelSpec
from routing.model import Policy, QueueDef, RelaxStep
from routing.settings import RoutingSource


def queues_from_config(config: RoutingSource) -> list[QueueDef]:
    """One QueueDef per configured queue."""
    return [
        QueueDef(
            name=q.name,
            channels=tuple(q.channels),
            skills=dict(q.skills),
            sla_seconds=q.sla_seconds,
            offer_timeout_seconds=q.offer_timeout_seconds,
            max_wait_seconds=q.max_wait_seconds,
            on_max_wait=q.on_max_wait.action,
            overflow_to=q.on_max_wait.target if q.on_max_wait.action == "overflow" else None,
            priority=q.priority,
            strategy=q.strategy,
            relaxation=tuple(
                RelaxStep(
                    after_seconds=step.after_seconds,
                    lower_levels=dict(step.lower_levels),
                    drop_skills=tuple(step.drop_skills),
                    widen_to=tuple(step.widen_to),
                )
                for step in q.relaxation
            ),
        )
        for q in config.queues
    ]


def policy_from_config(config: RoutingSource, channels: Iterable[ChannelSpec]) -> Policy:
    """Capacity, cross-channel blocks, wrap-up and missed-offer rules, for the channels
    the daemon runs (their declared defaults, then the configuration's)."""
    routing = config.routing
    specs = list(channels)
    capacity = {spec.name: routing.capacity.get(spec.name, spec.default_capacity) for spec in specs}
    if routing.blocks is not None:
        blocks = {key: tuple(value) for key, value in routing.blocks.items()}
    else:
        names = [spec.name for spec in specs]
        blocks = {
            spec.name: tuple(n for n in names if n != spec.name) for spec in specs if spec.exclusive
        }
    return Policy(
        capacity=capacity,
        blocks=blocks,
        wrap_up_seconds=routing.wrap_up_seconds,
        not_ready_after_missed=routing.not_ready_after_missed,
        missed_reason="missed-offer",
        tier_priority={str(tier): level for tier, level in routing.tier_priority.items()},
    )
