"""A customer's satisfaction with a contact (1-5 stars: the chat's end, a survey): stored
on the interaction, and fed to the service-request loop.

The loop (the CRM practice this product follows): a request waiting for feedback is
archived when the customer gives it 3 stars or more and goes back to a supervisor for
reassignment below that. A contact's score is that feedback for each request of the
contact's customer that waits for it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store import audit, service_requests
from crm_store._common import check_int_range
from crm_store.actors import SYSTEM, Actor
from crm_store.interactions import get_interaction
from crm_store.models import ServiceRequest


async def record_contact_csat(
    session: AsyncSession, interaction_id: int, csat: int, *, actor: Actor = SYSTEM
) -> list[int]:
    """Store the score on the interaction (a second score for the same contact replaces
    the first); the ids of the service requests the score moved on."""
    score = check_int_range(csat, "csat", 1, 5)
    interaction = await get_interaction(session, interaction_id)
    interaction.csat = score
    await audit.record(
        session, actor, "interaction.csat", "interaction", interaction.id, {"csat": score}
    )
    if interaction.customer_id is None:
        return []
    waiting = (
        await session.scalars(
            select(ServiceRequest.id)
            .where(ServiceRequest.customer_id == interaction.customer_id)
            .where(ServiceRequest.status == "feedback")
            .order_by(ServiceRequest.id)
        )
    ).all()
    moved = []
    for sr_id in waiting:
        await service_requests.record_feedback(
            session, sr_id, score, actor=actor, comment=f"from contact {interaction.id}"
        )
        moved.append(sr_id)
    return moved
