"""Service requests and their workflow: new -> assigned -> in_progress -> feedback -> archived.

Feedback with a CSAT below 3 sends the request back to `assigned` (same assignee) so a
supervisor can re-handle it. The allowed moves are plain data (`TRANSITIONS`) so they can
be read and tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_store import audit
from crm_store._common import check_int_range, clean_text, flush_or_conflict
from crm_store.actors import Actor
from crm_store.errors import IllegalTransition, InvalidData, NotFound, PermissionDenied
from crm_store.models import (
    OPEN_SR_STATUSES,
    SR_STATUSES,
    Customer,
    Interaction,
    ServiceRequest,
    ServiceRequestTransition,
    User,
)

# Status -> statuses it may move to. "assigned" -> "assigned" is a reassignment.
TRANSITIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "new": ("assigned",),
    "assigned": ("assigned", "in_progress"),
    "in_progress": ("feedback",),
    "feedback": ("archived", "assigned"),
    "archived": (),
}
# Roles that may assign (and reassign) requests, and act on anyone's request.
MANAGER_ROLES: Final = ("supervisor", "admin")
# Roles a request may be assigned to.
ASSIGNEE_ROLES: Final = ("agent", "supervisor")
# CSAT from which feedback archives the request; below, it goes back to `assigned`.
ARCHIVE_MIN_CSAT: Final = 3
# The most requests one listing returns.
MAX_LIMIT: Final = 10_000


def allowed_transitions(status: str) -> tuple[str, ...]:
    """The statuses a request in `status` may move to."""
    if status not in TRANSITIONS:
        raise InvalidData(f"unknown service request status {status!r}")
    return TRANSITIONS[status]


def check_transition(sr_id: int | None, current: str, target: str) -> None:
    """Raise IllegalTransition unless `current` -> `target` is allowed."""
    allowed = allowed_transitions(current)
    if target not in allowed:
        raise IllegalTransition(
            f"service request {sr_id} is {current!r}; cannot go to {target!r} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )


def status_after_feedback(csat: int) -> str:
    """Where feedback with this CSAT sends a request."""
    return "archived" if csat >= ARCHIVE_MIN_CSAT else "assigned"


def _require_manager(actor: Actor, doing: str) -> None:
    if actor.role not in MANAGER_ROLES:
        raise PermissionDenied(
            f"{actor.username} ({actor.role}) may not {doing}: needs {' or '.join(MANAGER_ROLES)}"
        )


def may_read(actor: Actor, sr: ServiceRequest) -> bool:
    """Whether the actor reads this request by role alone: a manager, its assignee or creator.

    An agent also reads the requests of a customer they are serving; the web layer knows
    that (`contact_center/web/access.py`), the request alone does not.
    """
    if actor.role in MANAGER_ROLES:
        return True
    return actor.user_id is not None and actor.user_id in (sr.assigned_to_id, sr.created_by_id)


def _require_assignee_or_manager(actor: Actor, sr: ServiceRequest, doing: str) -> None:
    if actor.role in MANAGER_ROLES:
        return
    if actor.user_id is None or actor.user_id != sr.assigned_to_id:
        raise PermissionDenied(
            f"{actor.username} may not {doing} service request {sr.id}: "
            "only its assignee, a supervisor or an admin may"
        )


async def _load(session: AsyncSession, sr_id: int, *, for_update: bool = False) -> ServiceRequest:
    statement = (
        select(ServiceRequest)
        .where(ServiceRequest.id == sr_id)
        .options(selectinload(ServiceRequest.transitions))
    )
    if for_update:
        # Two supervisors acting at once must not both move the same request (PostgreSQL;
        # SQLite has a single writer anyway).
        statement = statement.with_for_update()
    sr = await session.scalar(statement)
    if sr is None:
        raise NotFound(f"no service request with id {sr_id}")
    return sr


async def _move(
    session: AsyncSession,
    sr: ServiceRequest,
    target: str,
    actor: Actor,
    note: str | None,
    details: dict[str, object] | None = None,
) -> None:
    """Record the move to `target` (already checked): status, transition row, audit entry."""
    current = sr.status
    sr.status = target
    sr.transitions.append(
        ServiceRequestTransition(
            from_status=current, to_status=target, actor_id=actor.user_id, note=note
        )
    )
    await flush_or_conflict(session, f"cannot update service request {sr.id}")
    await audit.record(
        session,
        actor,
        f"service_request.{target}",
        "service_request",
        sr.id,
        {"from": current, "to": target, **({"note": note} if note else {}), **(details or {})},
    )


async def create_service_request(
    session: AsyncSession,
    *,
    customer_id: int,
    title: str,
    description: str | None = None,
    interaction_id: int | None = None,
    actor: Actor,
) -> ServiceRequest:
    """Open a request for a customer, in status `new`; any role may."""
    clean_title = clean_text(title, "title", 200, required=True)
    clean_description = clean_text(description, "description", 20_000)
    if await session.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
        raise NotFound(f"no customer with id {customer_id}")
    if interaction_id is not None:
        linked = (
            await session.execute(
                select(Interaction.id, Interaction.customer_id).where(
                    Interaction.id == interaction_id
                )
            )
        ).first()
        if linked is None:
            raise NotFound(f"no interaction with id {interaction_id}")
        if linked.customer_id is not None and linked.customer_id != customer_id:
            raise InvalidData(
                f"interaction {interaction_id} belongs to customer {linked.customer_id}, "
                f"not {customer_id}"
            )
    sr = ServiceRequest(
        customer_id=customer_id,
        interaction_id=interaction_id,
        title=clean_title,
        description=clean_description,
        status="new",
        created_by_id=actor.user_id,
        transitions=[
            ServiceRequestTransition(from_status=None, to_status="new", actor_id=actor.user_id)
        ],
    )
    session.add(sr)
    await flush_or_conflict(session, "cannot create the service request")
    await audit.record(
        session,
        actor,
        "service_request.created",
        "service_request",
        sr.id,
        {"customer_id": customer_id, "title": clean_title},
    )
    return sr


async def assign(
    session: AsyncSession, sr_id: int, assignee_id: int, *, actor: Actor, note: str | None = None
) -> ServiceRequest:
    """Assign (or reassign) a request to an active agent or supervisor; managers only."""
    _require_manager(actor, "assign service requests")
    # Checked before anything is touched: a refusal must leave the loaded request as it was.
    clean_note = clean_text(note, "note", 20_000)
    sr = await _load(session, sr_id, for_update=True)
    check_transition(sr.id, sr.status, "assigned")
    if sr.status == "feedback":
        # feedback -> assigned is the low-CSAT path (`record_feedback`); assigning here
        # would skip the customer's verdict.
        raise IllegalTransition(
            f"service request {sr.id} is 'feedback'; only the customer's feedback (csat "
            f"below {ARCHIVE_MIN_CSAT}) sends it back to 'assigned'"
        )
    assignee = await session.get(User, assignee_id)
    if assignee is None:
        raise NotFound(f"no user with id {assignee_id}")
    if not assignee.is_active:
        raise InvalidData(f"user {assignee.username!r} is inactive and cannot be assigned")
    if assignee.role not in ASSIGNEE_ROLES:
        raise InvalidData(
            f"user {assignee.username!r} is an {assignee.role}; requests go to "
            f"{' or '.join(ASSIGNEE_ROLES)}s"
        )
    previous = sr.assigned_to_id
    sr.assigned_to_id = assignee.id
    await _move(
        session,
        sr,
        "assigned",
        actor,
        clean_note,
        {"assignee_id": assignee.id, "previous_assignee_id": previous},
    )
    return sr


async def start(session: AsyncSession, sr_id: int, *, actor: Actor) -> ServiceRequest:
    """assigned -> in_progress; by the assignee, a supervisor or an admin."""
    sr = await _load(session, sr_id, for_update=True)
    check_transition(sr.id, sr.status, "in_progress")
    _require_assignee_or_manager(actor, sr, "start")
    await _move(session, sr, "in_progress", actor, None)
    return sr


async def request_feedback(
    session: AsyncSession, sr_id: int, *, actor: Actor, note: str | None = None
) -> ServiceRequest:
    """in_progress -> feedback (the work is done; ask the customer)."""
    clean_note = clean_text(note, "note", 20_000)
    sr = await _load(session, sr_id, for_update=True)
    check_transition(sr.id, sr.status, "feedback")
    _require_assignee_or_manager(actor, sr, "request feedback on")
    await _move(session, sr, "feedback", actor, clean_note)
    return sr


async def record_feedback(
    session: AsyncSession,
    sr_id: int,
    csat: int,
    *,
    actor: Actor,
    comment: str | None = None,
) -> ServiceRequest:
    """Store the customer's CSAT (1..5): >= 3 archives, below goes back to `assigned`."""
    score = check_int_range(csat, "csat", 1, 5)
    clean_comment = clean_text(comment, "comment", 20_000)
    sr = await _load(session, sr_id, for_update=True)
    target = status_after_feedback(score)
    if sr.status != "feedback":
        check_transition(sr.id, sr.status, target)
        # Even when the target happens to be allowed ("assigned" -> "assigned"), only a
        # request waiting for feedback can receive one.
        raise IllegalTransition(
            f"service request {sr.id} is {sr.status!r}; feedback is only recorded in 'feedback'"
        )
    check_transition(sr.id, sr.status, target)
    # Feedback closes (or reopens) the request: the same people as the other moves.
    _require_assignee_or_manager(actor, sr, "record feedback on")
    sr.csat = score
    sr.feedback = clean_comment
    note = f"csat {score}" + (f": {clean_comment}" if clean_comment else "")
    await _move(session, sr, target, actor, note, {"csat": score})
    return sr


async def get_service_request(session: AsyncSession, sr_id: int) -> ServiceRequest:
    """The request with its transitions (oldest first); NotFound otherwise."""
    return await _load(session, sr_id)


def _check_statuses(statuses: Iterable[str]) -> list[str]:
    if isinstance(statuses, str):
        statuses = (statuses,)
    result = list(statuses)
    unknown = [s for s in result if s not in SR_STATUSES]
    if unknown:
        raise InvalidData(f"unknown status(es) {', '.join(map(repr, unknown))}")
    return result


async def list_service_requests(
    session: AsyncSession,
    *,
    customer_id: int | None = None,
    assigned_to_id: int | None = None,
    statuses: Iterable[str] | None = None,
    limit: int = 100,
    involving_id: int | None = None,
) -> list[ServiceRequest]:
    """Requests matching the filters, newest first, with their transitions.

    `involving_id`: only requests assigned to or created by that user.
    """
    # A negative LIMIT means "no limit" to SQLite and is an error on PostgreSQL.
    check_int_range(limit, "limit", 1, MAX_LIMIT)
    statement = (
        select(ServiceRequest)
        .options(selectinload(ServiceRequest.transitions))
        .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
        .limit(limit)
    )
    if customer_id is not None:
        statement = statement.where(ServiceRequest.customer_id == customer_id)
    if assigned_to_id is not None:
        statement = statement.where(ServiceRequest.assigned_to_id == assigned_to_id)
    if involving_id is not None:
        statement = statement.where(
            or_(
                ServiceRequest.assigned_to_id == involving_id,
                ServiceRequest.created_by_id == involving_id,
            )
        )
    if statuses is not None:
        statement = statement.where(ServiceRequest.status.in_(_check_statuses(statuses)))
    return list((await session.scalars(statement)).all())


async def created_by(session: AsyncSession, customer_id: int, user_id: int) -> set[int]:
    """Ids of the customer's requests that this user created."""
    found = await session.scalars(
        select(ServiceRequest.id).where(
            ServiceRequest.customer_id == customer_id, ServiceRequest.created_by_id == user_id
        )
    )
    return set(found.all())


async def open_service_requests(session: AsyncSession, customer_id: int) -> list[ServiceRequest]:
    """The customer's requests not yet archived, newest first."""
    return await list_service_requests(session, customer_id=customer_id, statuses=OPEN_SR_STATUSES)
