"""What the desktop and the wallboard show of the floor: agents, queues, the last hour.

Read-only views over the router, the life cycle and the statistics, with `now` passed
in; the one definition of each live figure is in `routing.stats`. The notifier turns these
into browser messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routing.contact_state import ContactInfo
from routing.lifecycle import ContactLifeCycle
from routing.stats import Statistics, live_queue_figures

HISTORY_SECONDS = 3600
HISTORY_STEP_SECONDS = 30


@dataclass
class AgentInfo:
    """Who an agent is, beyond the router's view."""

    user_id: int
    username: str
    display_name: str
    role: str
    device: str | None


class FloorView:
    """Agents' and queues' live state, and the wallboard's samples of the last hour."""

    def __init__(
        self, life: ContactLifeCycle, stats: Statistics, agents: Mapping[int, AgentInfo]
    ) -> None:
        self.life = life
        self.router = life.router
        self.stats = stats
        self.agents = agents
        self._history: dict[str, deque[dict[str, Any]]] = {
            name: deque(maxlen=HISTORY_SECONDS // HISTORY_STEP_SECONDS)
            for name in self.router.queues
        }
        self._last_sample = 0.0

    def queues(self, now: float) -> list[dict[str, Any]]:
        """Live figures per queue."""
        members: dict[str, list[int]] = {q: [] for q in self.router.queues}
        for agent_id in self.router.agents:
            for queue_name in self.router.queues_for_agent(agent_id):
                members[queue_name].append(agent_id)
        result = []
        for name, queue in self.router.queues.items():
            agents = [self.router.agents[a] for a in members[name]]
            figures = self.stats.queue_figures(name, now)
            today = figures["today"]
            result.append(
                {
                    "name": name,
                    "channels": list(queue.channels),
                    "sla_seconds": queue.sla_seconds,
                    **live_queue_figures(self.router.queued(name), agents, now),
                    "service_level": today["service_level"],
                    "asa_seconds": today["asa_seconds"],
                    "abandoned": today["abandoned"],
                    "windows": figures,
                }
            )
        return result

    def all_agents(self, now: float) -> list[dict[str, Any]]:
        """Live state of every agent."""
        current = self.life.current()
        return [
            self.agent(agent_id, now, current.get(agent_id)) for agent_id in sorted(self.agents)
        ]

    def agent(
        self, agent_id: int, now: float, current: ContactInfo | None = None
    ) -> dict[str, Any]:
        """One agent as the desktop and the wallboard show them."""
        info = self.agents[agent_id]
        agent = self.router.agents[agent_id]
        if current is None:
            current = self.life.contact_of(agent_id)
        return {
            "user_id": agent_id,
            "username": info.username,
            "display_name": info.display_name,
            "status": agent.status,
            "reason": agent.reason,
            # Restored "ready" after a restart, waiting for a desktop: no offers yet.
            "awaiting_desktop": agent.confirm_by is not None,
            # Why some contacts are never offered: the channels needing a device they lack.
            "no_device_for": self._no_device_for(info),
            "activity": agent.activity(now),
            "since": max(agent.status_since, agent.activity_since),
            "wrap_up_until": agent.wrap_up_until,
            "queues": self.router.queues_for_agent(agent_id),
            "contact": current.public() if current else None,
            "today": self.stats.agent_figures(agent_id, now),
        }

    def sample(self, now: float, step: float = HISTORY_STEP_SECONDS) -> None:
        """Keep a point per queue for the wallboard's chart, every `step` seconds."""
        if now - self._last_sample < step:
            return
        self._last_sample = now
        for queue in self.queues(now):
            self._history[queue["name"]].append(
                {"t": now, "waiting": queue["waiting"], "service_level": queue["service_level"]}
            )

    def history(self) -> dict[str, list[dict[str, Any]]]:
        """The last hour's samples per queue, for the wallboard's chart."""
        return {name: list(points) for name, points in self._history.items()}

    def _no_device_for(self, info: AgentInfo) -> list[str]:
        if info.device:
            return []
        specs = self.life.channels.specs
        return sorted(name for name, spec in specs.items() if spec.needs_device)
