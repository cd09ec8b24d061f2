"""The roster: agents as the store holds them, and their statuses.

Agents are loaded at start-up and re-read when an admin changes one (`sync_user`); a
status is set by the agent, a supervisor or the daemon itself (restored "ready" that no
desktop confirmed), stored and audited, and counted in the figures.
"""

from __future__ import annotations

import logging
from typing import Any

from crm_store import agent_states, audit
from crm_store.actors import Actor
from crm_store.models import User
from routing.floor_view import AgentInfo
from routing.lifecycle import stored_time
from routing.model import Agent
from routing.router import RoutingError
from routing.service_base import ServiceBase

log = logging.getLogger(__name__)

# Who sets an unconfirmed agent offline after a restart, in the audit log.
RESTART_CHECK = Actor(None, "system", "admin")
ADMIN_CHANGE = Actor(None, "system", "admin")


class AgentRoster(ServiceBase):
    """The service's agents: loaded, re-read, their statuses set."""

    async def sync_user(self, user_id: int) -> None:
        """Bring the router up to date with a user an admin created or changed."""
        async with self.sessionmaker() as session:
            user = await session.get(User, user_id)
        now = self.clock()
        routable = user is not None and user.is_active and user.role in ("agent", "supervisor")
        if user_id not in self.agents:
            if routable:
                assert user is not None
                self._add_agent(user, now)
                self._changed()
            return
        if not routable:
            await self.set_status(user_id, "offline", None, actor=ADMIN_CHANGE)
            if user is None or not user.is_active:
                return
        assert user is not None
        info = self.agents[user_id]
        info.display_name, info.role, info.device = user.display_name, user.role, user.device
        self.life.devices[user_id] = user.device
        self.router.agents[user_id].capacity = self._capacity(user)
        await self._carry_out(
            self.life.decide(self.router.update_skills(user_id, dict(user.skills), now), now)
        )
        self._push_agent(user_id)
        self._changed()

    def _capacity(self, user: User) -> dict[Any, int]:
        """The user's capacity per channel; none on a channel that needs a device they do
        not have (nothing could ring: an accepted contact would never connect)."""
        policy = self.router.policy
        capacity = {
            c: int(user.capacities.get(c, policy.capacity.get(c, 0))) for c in policy.capacity
        }
        for name, spec in self.channels.specs.items():
            if spec.needs_device and not user.device and name in capacity:
                capacity[name] = 0
        return capacity

    def _add_agent(self, user: User, now: float) -> None:
        agent = Agent(
            user.id,
            user.username,
            dict(user.skills),
            self._capacity(user),
            status_since=now,
            idle_since=now,
            activity_since=now,
        )
        self.router.add_agent(agent, now)
        self.life.devices[user.id] = user.device
        self.agents[user.id] = AgentInfo(
            user.id, user.username, user.display_name, user.role, user.device
        )

    async def agent_present(self, agent_id: int) -> None:
        """A desktop of the agent connected: a "ready" restored after a restart is theirs
        again, and waiting contacts may be offered to them now."""
        if self._unconfirmed.pop(agent_id, None) is None:
            return
        agent = self.router.agents[agent_id]
        agent.confirm_by = None
        log.info("agent %s is back at a desktop: ready confirmed", agent.name)
        # Same status again: the router keeps its "since" and looks for work for them.
        now = self.clock()
        await self._carry_out(
            self.life.decide(self.router.set_status(agent_id, agent.status, now, agent.reason), now)
        )
        self._push_agent(agent_id)
        self._changed()

    async def set_status(
        self,
        agent_id: int,
        status: str,
        reason: str | None,
        *,
        actor: Actor,
        why: str | None = None,
    ) -> dict[str, Any]:
        """Ready / not ready (with a configured reason) / offline; `why` goes in the audit."""
        if status not in ("ready", "not_ready", "offline"):
            raise RoutingError("routing.bad_status", f"unknown status {status!r}")
        if status == "not_ready" and reason not in self._reasons():
            raise RoutingError(
                "routing.bad_reason",
                f"reason must be one of {', '.join(self._reasons())}, got {reason!r}",
            )
        self._agent_info(agent_id)
        now = self.clock()
        # A status someone chose replaces one restored after a restart.
        self._unconfirmed.pop(agent_id, None)
        self.router.agents[agent_id].confirm_by = None
        decisions = self.router.set_status(agent_id, status, now, reason)  # type: ignore[arg-type]
        self._record_status(agent_id, status, reason, now)
        async with self.sessionmaker.begin() as session:
            await agent_states.save_agent_state(
                session,
                agent_id,
                status,
                reason if status == "not_ready" else None,
                stored_time(now),
            )
            if actor.user_id != agent_id:
                await audit.record(
                    session,
                    actor,
                    "agent.status_set",
                    "user",
                    agent_id,
                    {"status": status, "reason": reason, **({"why": why} if why else {})},
                )
        await self._carry_out(self.life.decide(decisions, now))
        self._push_agent(agent_id)
        self._changed()
        return self.view.agent(agent_id, self.clock())

    async def _unconfirmed_due(self, now: float) -> None:
        """Restored agents whose desktop never came back go offline (stored, audited)."""
        grace = self.config.routing.restore_grace_seconds
        for agent_id in [a for a, until in self._unconfirmed.items() if until <= now]:
            log.warning(
                "agent %s was ready before the restart but no desktop connected within"
                " %g s: set offline",
                self.agents[agent_id].username,
                grace,
            )
            try:
                await self.set_status(
                    agent_id,
                    "offline",
                    None,
                    actor=RESTART_CHECK,
                    why=f"not confirmed by a desktop within {grace:g} s of a restart",
                )
            except Exception:
                # Offline in memory all the same: no offer goes to someone who is not there.
                log.exception("could not store agent %s offline", agent_id)
