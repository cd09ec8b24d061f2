"""Agents' chosen statuses (offline, ready, not ready with a reason), kept across restarts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store.errors import InvalidData
from crm_store.models import AgentState

AGENT_STATUSES = ("offline", "ready", "not_ready")


async def save_agent_state(
    session: AsyncSession, user_id: int, status: str, reason: str | None, since: datetime
) -> None:
    """Record the agent's status (insert or replace)."""
    if status not in AGENT_STATUSES:
        raise InvalidData(f"unknown agent status {status!r} (known: {', '.join(AGENT_STATUSES)})")
    state = await session.get(AgentState, user_id)
    if state is None:
        session.add(AgentState(user_id=user_id, status=status, reason=reason, since=since))
    else:
        state.status, state.reason, state.since = status, reason, since
    await session.flush()


async def load_agent_states(session: AsyncSession) -> dict[int, AgentState]:
    """Every saved agent status by user id."""
    return {s.user_id: s for s in (await session.scalars(select(AgentState))).all()}
