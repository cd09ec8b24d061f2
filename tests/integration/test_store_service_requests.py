"""Service requests: the workflow, who may move them, refusals that change nothing."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from crm_store import audit, customers, interactions, service_requests, users
from crm_store.actors import SYSTEM, Actor
from crm_store.errors import IllegalTransition, InvalidData, NotFound, PermissionDenied
from crm_store.models import OPEN_SR_STATUSES, SR_STATUSES
from tests.integration.conftest import CountRows, Store

# One attempted move of a service request, run inside a transaction.
Move = Callable[[AsyncSession], Awaitable[object]]


async def _people(store: Store) -> tuple[Actor, Actor, Actor, int]:
    async with store.sessionmaker.begin() as session:
        made = {}
        for name, role in (("alex", "agent"), ("bea", "agent"), ("sam", "supervisor")):
            user = await users.create_user(
                session, username=name, role=role, password="long-password-1"
            )
            made[name] = Actor(user.id, name, role)
        customer = await customers.create_customer(
            session, name="Ana", phones=["+34600000001"], region="ES"
        )
    return made["alex"], made["bea"], made["sam"], customer.id


@pytest.mark.integration
async def test_full_workflow_archives_at_three_stars_or_more(store: Store) -> None:
    alex, _bea, sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        sr = await service_requests.create_service_request(
            session, customer_id=customer_id, title="Refund", actor=alex
        )
        await service_requests.assign(session, sr.id, alex.user_id or 0, actor=sam, note="yours")
        await service_requests.start(session, sr.id, actor=alex)
        await service_requests.request_feedback(session, sr.id, actor=alex, note="refunded")
        done = await service_requests.record_feedback(session, sr.id, 3, actor=alex)
        assert done.status == "archived"
    async with store.sessionmaker() as session:
        sr = await service_requests.get_service_request(session, sr.id)
        steps = [(t.from_status, t.to_status, t.actor_id) for t in sr.transitions]
        assert all(t.at is not None for t in sr.transitions)
    assert steps == [
        (None, "new", alex.user_id),
        ("new", "assigned", sam.user_id),
        ("assigned", "in_progress", alex.user_id),
        ("in_progress", "feedback", alex.user_id),
        ("feedback", "archived", alex.user_id),
    ]
    assert sr.csat == 3


@pytest.mark.integration
async def test_poor_feedback_goes_back_to_assigned_for_a_supervisor(store: Store) -> None:
    alex, bea, sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        sr = await service_requests.create_service_request(
            session, customer_id=customer_id, title="Broken", actor=sam
        )
        await service_requests.assign(session, sr.id, alex.user_id or 0, actor=sam)
        await service_requests.start(session, sr.id, actor=alex)
        await service_requests.request_feedback(session, sr.id, actor=alex)
        back = await service_requests.record_feedback(session, sr.id, 2, actor=alex, comment="no")
        assert (back.status, back.csat, back.feedback) == ("assigned", 2, "no")
        # The supervisor hands it to someone else.
        again = await service_requests.assign(session, sr.id, bea.user_id or 0, actor=sam)
        assert again.assigned_to_id == bea.user_id
    async with store.sessionmaker() as session:
        open_now = await service_requests.open_service_requests(session, customer_id)
        assert [r.id for r in open_now] == [sr.id]
        mine = await service_requests.list_service_requests(session, assigned_to_id=bea.user_id)
        assert [r.id for r in mine] == [sr.id]


@pytest.mark.integration
async def test_illegal_moves_and_wrong_roles_are_refused_and_change_nothing(
    store: Store, count_rows: CountRows
) -> None:
    alex, bea, sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        sr = await service_requests.create_service_request(
            session, customer_id=customer_id, title="X", actor=alex
        )
    before = await count_rows()
    attempts: list[tuple[type[Exception], Move]] = [
        (IllegalTransition, lambda s: service_requests.start(s, sr.id, actor=sam)),
        (IllegalTransition, lambda s: service_requests.record_feedback(s, sr.id, 5, actor=sam)),
        (
            PermissionDenied,
            lambda s: service_requests.assign(s, sr.id, bea.user_id or 0, actor=alex),
        ),
        (InvalidData, lambda s: service_requests.record_feedback(s, sr.id, 7, actor=sam)),
        (NotFound, lambda s: service_requests.start(s, 999, actor=sam)),
        (NotFound, lambda s: service_requests.assign(s, sr.id, 999, actor=sam)),
    ]
    for error, attempt in attempts:
        with pytest.raises(error):
            async with store.sessionmaker.begin() as session:
                await attempt(session)
    async with store.sessionmaker.begin() as session:
        await service_requests.assign(session, sr.id, alex.user_id or 0, actor=sam)
    with pytest.raises(PermissionDenied):
        async with store.sessionmaker.begin() as session:
            await service_requests.start(session, sr.id, actor=bea)  # not the assignee
    async with store.sessionmaker() as session:
        current = await service_requests.get_service_request(session, sr.id)
        assert current.status == "assigned"
        assert len(current.transitions) == 2
    after = await count_rows()
    assert after["service_request_transitions"] == before["service_request_transitions"] + 1


def test_transition_table_is_the_documented_workflow() -> None:
    assert service_requests.allowed_transitions("new") == ("assigned",)
    assert service_requests.allowed_transitions("archived") == ()
    assert service_requests.status_after_feedback(3) == "archived"
    assert service_requests.status_after_feedback(2) == "assigned"
    with pytest.raises(InvalidData):
        service_requests.allowed_transitions("lost")


@given(st.sampled_from(SR_STATUSES), st.sampled_from(SR_STATUSES))
def test_check_transition_agrees_with_the_table(current: str, target: str) -> None:
    allowed = target in service_requests.allowed_transitions(current)
    try:
        service_requests.check_transition(1, current, target)
    except IllegalTransition as exc:
        assert not allowed
        assert current in exc.message and target in exc.message
    else:
        assert allowed


async def _admin(store: Store) -> Actor:
    async with store.sessionmaker.begin() as session:
        user = await users.create_user(
            session, username="root", role="admin", password="long-password-1"
        )
    return Actor(user.id, "root", "admin")


async def _new_request(store: Store, customer_id: int, actor: Actor, title: str = "Refund") -> int:
    async with store.sessionmaker.begin() as session:
        sr = await service_requests.create_service_request(
            session, customer_id=customer_id, title=title, actor=actor
        )
        return sr.id


async def _to_feedback(store: Store, sr_id: int, assignee: Actor, supervisor: Actor) -> None:
    async with store.sessionmaker.begin() as session:
        await service_requests.assign(session, sr_id, assignee.user_id or 0, actor=supervisor)
        await service_requests.start(session, sr_id, actor=assignee)
        await service_requests.request_feedback(session, sr_id, actor=assignee)


@pytest.mark.integration
async def test_creation_is_recorded_with_who_and_when(store: Store) -> None:
    alex, _bea, _sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(
            session, channel="voice", customer_id=customer_id
        )
    before = datetime.now(UTC)
    async with store.sessionmaker.begin() as session:
        sr = await service_requests.create_service_request(
            session,
            customer_id=customer_id,
            title="  Refund order 77 ",
            description="  charged twice ",
            interaction_id=ix.id,
            actor=alex,
        )
    after = datetime.now(UTC)
    async with store.sessionmaker() as session:
        stored = await service_requests.get_service_request(session, sr.id)
        entries = await audit.list_entries(session, entity="service_request", entity_id=sr.id)
    assert (stored.status, stored.title, stored.description) == (
        "new",
        "Refund order 77",
        "charged twice",
    )
    assert (stored.customer_id, stored.interaction_id) == (customer_id, ix.id)
    assert (stored.created_by_id, stored.assigned_to_id, stored.csat) == (alex.user_id, None, None)
    [created] = stored.transitions
    assert (created.from_status, created.to_status, created.actor_id) == (None, "new", alex.user_id)
    assert before - timedelta(seconds=1) <= created.at <= after + timedelta(seconds=1)
    assert [(e.actor, e.actor_id, e.action, e.details) for e in entries] == [
        (
            "alex",
            alex.user_id,
            "service_request.created",
            {"customer_id": customer_id, "title": "Refund order 77"},
        )
    ]


@pytest.mark.integration
async def test_bad_new_requests_are_refused_and_change_nothing(
    store: Store, count_rows: CountRows
) -> None:
    alex, _bea, _sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        other = await customers.create_customer(session, name="Raj", region="GB")
        theirs = await interactions.record_interaction(
            session, channel="voice", customer_id=other.id
        )
    before = await count_rows()
    attempts: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (NotFound, "no customer with id 999", {"customer_id": 999}),
        (NotFound, "no interaction with id 999", {"interaction_id": 999}),
        (InvalidData, "title must not be empty", {"title": "   "}),
        (InvalidData, "title is longer than 200", {"title": "t" * 201}),
        (InvalidData, "description must be text", {"description": 5}),
        (InvalidData, "title must not contain NUL characters", {"title": "Re\x00fund"}),
        (
            InvalidData,
            f"interaction {theirs.id} belongs to customer {other.id}, not {customer_id}",
            {"interaction_id": theirs.id},
        ),
    ]
    for error, message, fields in attempts:
        given: dict[str, Any] = {"customer_id": customer_id, "title": "X", **fields}
        with pytest.raises(error, match=re.escape(message)):
            async with store.sessionmaker.begin() as session:
                await service_requests.create_service_request(session, actor=alex, **given)
    assert await count_rows() == before


@pytest.mark.integration
async def test_every_move_is_audited_with_who_and_what(store: Store) -> None:
    alex, bea, sam, customer_id = await _people(store)
    sr_id = await _new_request(store, customer_id, alex)
    async with store.sessionmaker.begin() as session:
        await service_requests.assign(session, sr_id, alex.user_id or 0, actor=sam, note="yours")
        await service_requests.assign(session, sr_id, bea.user_id or 0, actor=sam)
        await service_requests.start(session, sr_id, actor=bea)
        await service_requests.request_feedback(session, sr_id, actor=bea, note="fixed")
        await service_requests.record_feedback(session, sr_id, 1, actor=bea, comment="still broken")
    async with store.sessionmaker() as session:
        entries = await audit.list_entries(session, entity="service_request", entity_id=sr_id)
        sr = await service_requests.get_service_request(session, sr_id)
    assert [(e.actor, e.action, e.details) for e in reversed(entries)] == [
        ("alex", "service_request.created", {"customer_id": customer_id, "title": "Refund"}),
        (
            "sam",
            "service_request.assigned",
            {
                "from": "new",
                "to": "assigned",
                "note": "yours",
                "assignee_id": alex.user_id,
                "previous_assignee_id": None,
            },
        ),
        (
            "sam",
            "service_request.assigned",
            {
                "from": "assigned",
                "to": "assigned",
                "assignee_id": bea.user_id,
                "previous_assignee_id": alex.user_id,
            },
        ),
        ("bea", "service_request.in_progress", {"from": "assigned", "to": "in_progress"}),
        (
            "bea",
            "service_request.feedback",
            {"from": "in_progress", "to": "feedback", "note": "fixed"},
        ),
        (
            "bea",
            "service_request.assigned",
            {"from": "feedback", "to": "assigned", "note": "csat 1: still broken", "csat": 1},
        ),
    ]
    # Back to the same assignee, with the customer's words kept.
    assert (sr.status, sr.assigned_to_id, sr.csat, sr.feedback) == (
        "assigned",
        bea.user_id,
        1,
        "still broken",
    )
    notes = [(t.to_status, t.note, t.actor_id) for t in sr.transitions]
    assert notes == [
        ("new", None, alex.user_id),
        ("assigned", "yours", sam.user_id),
        ("assigned", None, sam.user_id),
        ("in_progress", None, bea.user_id),
        ("feedback", "fixed", bea.user_id),
        ("assigned", "csat 1: still broken", bea.user_id),
    ]
    times = [t.at for t in sr.transitions]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("csat", "status"),
    [(1, "assigned"), (2, "assigned"), (3, "archived"), (4, "archived"), (5, "archived")],
)
async def test_feedback_score_decides_where_the_request_goes(
    store: Store, csat: int, status: str
) -> None:
    alex, _bea, sam, customer_id = await _people(store)
    sr_id = await _new_request(store, customer_id, sam)
    await _to_feedback(store, sr_id, alex, sam)
    async with store.sessionmaker.begin() as session:
        done = await service_requests.record_feedback(session, sr_id, csat, actor=alex)
        assert done.status == status
    async with store.sessionmaker() as session:
        stored = await service_requests.get_service_request(session, sr_id)
        assert (stored.status, stored.csat, stored.assigned_to_id) == (status, csat, alex.user_id)
        assert stored.transitions[-1].note == f"csat {csat}"
        assert [
            r.id for r in await service_requests.open_service_requests(session, customer_id)
        ] == ([sr_id] if status != "archived" else [])


@pytest.mark.integration
async def test_a_request_sent_back_can_be_worked_again_until_archived(store: Store) -> None:
    alex, _bea, sam, customer_id = await _people(store)
    sr_id = await _new_request(store, customer_id, sam)
    await _to_feedback(store, sr_id, alex, sam)
    async with store.sessionmaker.begin() as session:
        await service_requests.record_feedback(session, sr_id, 2, actor=alex)
        # The assignee can pick it up again without a new assignment.
        await service_requests.start(session, sr_id, actor=alex)
        await service_requests.request_feedback(session, sr_id, actor=alex)
        final = await service_requests.record_feedback(session, sr_id, 4, actor=alex)
    assert (final.status, final.csat) == ("archived", 4)
    assert [t.to_status for t in final.transitions] == [
        "new",
        "assigned",
        "in_progress",
        "feedback",
        "assigned",
        "in_progress",
        "feedback",
        "archived",
    ]


@pytest.mark.integration
async def test_archived_is_final(store: Store, count_rows: CountRows) -> None:
    alex, _bea, sam, customer_id = await _people(store)
    admin = await _admin(store)
    sr_id = await _new_request(store, customer_id, sam)
    await _to_feedback(store, sr_id, alex, sam)
    async with store.sessionmaker.begin() as session:
        await service_requests.record_feedback(session, sr_id, 5, actor=alex)
    before = await count_rows()
    attempts: list[Move] = [
        lambda s: service_requests.assign(s, sr_id, alex.user_id or 0, actor=admin),
        lambda s: service_requests.start(s, sr_id, actor=admin),
        lambda s: service_requests.request_feedback(s, sr_id, actor=admin),
        lambda s: service_requests.record_feedback(s, sr_id, 5, actor=admin),
        lambda s: service_requests.record_feedback(s, sr_id, 1, actor=admin),
    ]
    for attempt in attempts:
        with pytest.raises(IllegalTransition, match="is 'archived'; cannot go to") as caught:
            async with store.sessionmaker.begin() as session:
                await attempt(session)
        assert caught.value.error_id == "store.illegal_transition"
        assert "allowed: none" in caught.value.message
    assert await count_rows() == before


@pytest.mark.integration
async def test_moves_out_of_order_are_illegal_and_change_nothing(
    store: Store, count_rows: CountRows
) -> None:
    alex, _bea, sam, customer_id = await _people(store)
    sr_id = await _new_request(store, customer_id, sam)
    moves: dict[str, Move] = {
        "assign": lambda s: service_requests.assign(s, sr_id, alex.user_id or 0, actor=sam),
        "start": lambda s: service_requests.start(s, sr_id, actor=sam),
        "request_feedback": lambda s: service_requests.request_feedback(s, sr_id, actor=sam),
        "record_feedback": lambda s: service_requests.record_feedback(s, sr_id, 4, actor=sam),
    }
    # For each status the request passes through, which moves are refused.
    refused_in = {
        "new": ["start", "request_feedback", "record_feedback"],
        "assigned": ["request_feedback", "record_feedback"],
        "in_progress": ["assign", "start", "record_feedback"],
        "feedback": ["assign", "start", "request_feedback"],
    }
    for status, forward in (
        ("new", "assign"),
        ("assigned", "start"),
        ("in_progress", "request_feedback"),
        ("feedback", None),
    ):
        before = await count_rows()
        for name in refused_in[status]:
            with pytest.raises(IllegalTransition, match=f"is '{status}'"):
                async with store.sessionmaker.begin() as session:
                    await moves[name](session)
        assert await count_rows() == before, status
        async with store.sessionmaker() as session:
            assert (await service_requests.get_service_request(session, sr_id)).status == status
        if forward is not None:
            async with store.sessionmaker.begin() as session:
                await moves[forward](session)


@pytest.mark.integration
async def test_who_may_move_a_request(store: Store, count_rows: CountRows) -> None:
    alex, bea, sam, customer_id = await _people(store)
    admin = await _admin(store)
    sr_id = await _new_request(store, customer_id, alex)
    before = await count_rows()
    # Agents never assign, not even to themselves.
    for agent in (alex, bea):
        with pytest.raises(PermissionDenied, match=r"\(agent\) may not assign") as caught:
            async with store.sessionmaker.begin() as session:
                await service_requests.assign(session, sr_id, agent.user_id or 0, actor=agent)
        assert caught.value.error_id == "store.permission_denied"
    assert await count_rows() == before
    # An admin may assign; the assignee, a supervisor or an admin may move it on.
    async with store.sessionmaker.begin() as session:
        await service_requests.assign(session, sr_id, alex.user_id or 0, actor=admin)
    not_assignee: list[Move] = [
        lambda s: service_requests.start(s, sr_id, actor=bea),
        lambda s: service_requests.start(s, sr_id, actor=Actor(None, "system-agent", "agent")),
    ]
    for attempt in not_assignee:
        before = await count_rows()
        with pytest.raises(PermissionDenied, match="only its assignee, a supervisor or an admin"):
            async with store.sessionmaker.begin() as session:
                await attempt(session)
        assert await count_rows() == before
    async with store.sessionmaker.begin() as session:
        await service_requests.start(session, sr_id, actor=sam)
    before = await count_rows()
    with pytest.raises(PermissionDenied, match="may not request feedback on"):
        async with store.sessionmaker.begin() as session:
            await service_requests.request_feedback(session, sr_id, actor=bea)
    assert await count_rows() == before
    async with store.sessionmaker.begin() as session:
        await service_requests.request_feedback(session, sr_id, actor=admin)
    # Another agent cannot close someone else's request by recording a good score.
    before = await count_rows()
    with pytest.raises(PermissionDenied, match="may not record feedback on"):
        async with store.sessionmaker.begin() as session:
            await service_requests.record_feedback(session, sr_id, 5, actor=bea)
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        current = await service_requests.get_service_request(session, sr_id)
        assert (current.status, current.csat) == ("feedback", None)
    async with store.sessionmaker.begin() as session:
        done = await service_requests.record_feedback(session, sr_id, 5, actor=alex)
        assert done.status == "archived"
    async with store.sessionmaker() as session:
        current = await service_requests.get_service_request(session, sr_id)
    assert [t.actor_id for t in current.transitions] == [
        alex.user_id,
        admin.user_id,
        sam.user_id,
        admin.user_id,
        alex.user_id,
    ]


@pytest.mark.integration
async def test_assign_checks_the_assignee(store: Store, count_rows: CountRows) -> None:
    alex, bea, sam, customer_id = await _people(store)
    admin = await _admin(store)
    async with store.sessionmaker.begin() as session:
        await users.set_user_active(session, "bea", False, actor=SYSTEM)
    sr_id = await _new_request(store, customer_id, alex)
    before = await count_rows()
    attempts: list[tuple[type[Exception], str, int]] = [
        (InvalidData, "user 'bea' is inactive", bea.user_id or 0),
        (
            InvalidData,
            "user 'root' is an admin; requests go to agent or supervisors",
            admin.user_id or 0,
        ),
        (NotFound, "no user with id 999", 999),
    ]
    for error, message, assignee in attempts:
        with pytest.raises(error, match=re.escape(message)):
            async with store.sessionmaker.begin() as session:
                await service_requests.assign(session, sr_id, assignee, actor=sam)
    with pytest.raises(NotFound, match="no service request with id 999"):
        async with store.sessionmaker.begin() as session:
            await service_requests.assign(session, 999, alex.user_id or 0, actor=sam)
    assert await count_rows() == before
    # A supervisor may be the assignee.
    async with store.sessionmaker.begin() as session:
        sr = await service_requests.assign(session, sr_id, sam.user_id or 0, actor=sam)
        assert sr.assigned_to_id == sam.user_id


@pytest.mark.integration
async def test_a_refused_assignment_leaves_the_loaded_request_untouched(store: Store) -> None:
    alex, bea, sam, customer_id = await _people(store)
    sr_id = await _new_request(store, customer_id, alex)
    async with store.sessionmaker.begin() as session:
        await service_requests.assign(session, sr_id, alex.user_id or 0, actor=sam)
    async with store.sessionmaker.begin() as session:
        with pytest.raises(InvalidData, match="note must be text"):
            await service_requests.assign(
                session,
                sr_id,
                bea.user_id or 0,
                actor=sam,
                note=42,  # type: ignore[arg-type]
            )
        # Even a caller that carries on in the same transaction sees no half-made move.
        sr = await service_requests.get_service_request(session, sr_id)
        assert (sr.status, sr.assigned_to_id, len(sr.transitions)) == ("assigned", alex.user_id, 2)
    async with store.sessionmaker() as session:
        stored = await service_requests.get_service_request(session, sr_id)
    assert (stored.assigned_to_id, len(stored.transitions)) == (alex.user_id, 2)


@pytest.mark.integration
async def test_bad_feedback_is_refused_and_changes_nothing(
    store: Store, count_rows: CountRows
) -> None:
    alex, _bea, sam, customer_id = await _people(store)
    sr_id = await _new_request(store, customer_id, sam)
    await _to_feedback(store, sr_id, alex, sam)
    before = await count_rows()
    bad_scores: tuple[tuple[Any, str], ...] = (
        (0, "csat must be 1..5, not 0"),
        (6, "not 6"),
        (True, "integer"),
        (3.5, "integer"),
    )
    for csat, message in bad_scores:
        with pytest.raises(InvalidData, match=re.escape(message)):
            async with store.sessionmaker.begin() as session:
                await service_requests.record_feedback(session, sr_id, csat, actor=alex)
    with pytest.raises(InvalidData, match="comment is longer than 20000"):
        async with store.sessionmaker.begin() as session:
            await service_requests.record_feedback(
                session, sr_id, 4, actor=alex, comment="c" * 20_001
            )
    with pytest.raises(NotFound, match="no service request with id 999"):
        async with store.sessionmaker.begin() as session:
            await service_requests.record_feedback(session, 999, 4, actor=alex)
    assert await count_rows() == before
    async with store.sessionmaker() as session:
        stored = await service_requests.get_service_request(session, sr_id)
    assert (stored.status, stored.csat, stored.feedback) == ("feedback", None, None)


@pytest.mark.integration
async def test_listing_filters_and_orders_newest_first(store: Store) -> None:
    alex, bea, sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        other = (await customers.create_customer(session, name="Raj", region="GB")).id
    first = await _new_request(store, customer_id, sam, "first")
    second = await _new_request(store, customer_id, sam, "second")
    third = await _new_request(store, other, sam, "third")
    fourth = await _new_request(store, customer_id, sam, "fourth")
    async with store.sessionmaker.begin() as session:
        await service_requests.assign(session, second, alex.user_id or 0, actor=sam)
        await service_requests.assign(session, third, alex.user_id or 0, actor=sam)
        await service_requests.assign(session, fourth, bea.user_id or 0, actor=sam)
    await _to_feedback(store, first, bea, sam)
    async with store.sessionmaker.begin() as session:
        await service_requests.record_feedback(session, first, 5, actor=bea)
    async with store.sessionmaker() as session:

        async def ids(**filters: Any) -> list[int]:
            found = await service_requests.list_service_requests(session, **filters)
            return [sr.id for sr in found]

        assert await ids() == [fourth, third, second, first]
        assert await ids(customer_id=customer_id) == [fourth, second, first]
        assert await ids(assigned_to_id=alex.user_id) == [third, second]
        assert await ids(customer_id=customer_id, assigned_to_id=alex.user_id) == [second]
        assert await ids(statuses=["assigned"]) == [fourth, third, second]
        assert await ids(statuses="archived") == [first]
        assert await ids(statuses=[]) == []
        assert await ids(limit=2) == [fourth, third]
        open_ones = await service_requests.open_service_requests(session, customer_id)
        assert [sr.id for sr in open_ones] == [fourth, second]
        # The transitions come loaded with each request.
        listed = await service_requests.list_service_requests(session, statuses=["archived"])
        assert [t.to_status for t in listed[0].transitions][-1] == "archived"
        with pytest.raises(InvalidData, match=re.escape("unknown status(es) 'closed'")):
            await ids(statuses=["assigned", "closed"])
        for limit in (0, -1):
            with pytest.raises(InvalidData, match="limit"):
                await ids(limit=limit)
        assert await service_requests.open_service_requests(session, 999) == []
        with pytest.raises(NotFound, match="no service request with id 999"):
            await service_requests.get_service_request(session, 999)


def test_every_status_is_in_the_table_and_archived_is_reachable_from_each() -> None:
    assert set(service_requests.TRANSITIONS) == set(SR_STATUSES)
    for status, targets in service_requests.TRANSITIONS.items():
        assert set(targets) <= set(SR_STATUSES), status
    # Breadth-first from each open status: nothing gets stuck short of archived.
    for status in OPEN_SR_STATUSES:
        seen = {status}
        frontier = [status]
        while frontier:
            frontier = [
                nxt
                for current in frontier
                for nxt in service_requests.allowed_transitions(current)
                if nxt not in seen
            ]
            seen.update(frontier)
        assert "archived" in seen, status
    assert service_requests.allowed_transitions("assigned") == ("assigned", "in_progress")
    assert service_requests.allowed_transitions("in_progress") == ("feedback",)
    assert service_requests.allowed_transitions("feedback") == ("archived", "assigned")


@pytest.mark.parametrize("status", ["", "New", "closed", "ARCHIVED"])
def test_unknown_statuses_are_invalid_data_not_illegal_transitions(status: str) -> None:
    with pytest.raises(InvalidData, match="unknown service request status"):
        service_requests.allowed_transitions(status)
    with pytest.raises(InvalidData):
        service_requests.check_transition(1, status, "assigned")


def test_the_illegal_transition_message_names_request_and_allowed_moves() -> None:
    with pytest.raises(IllegalTransition) as caught:
        service_requests.check_transition(17, "in_progress", "archived")
    assert caught.value.message == (
        "service request 17 is 'in_progress'; cannot go to 'archived' (allowed: feedback)"
    )


@given(st.integers(min_value=1, max_value=5))
def test_status_after_feedback_follows_the_threshold(csat: int) -> None:
    target = service_requests.status_after_feedback(csat)
    assert target == ("archived" if csat >= 3 else "assigned")
    # Wherever feedback sends a request is a legal move out of feedback.
    service_requests.check_transition(None, "feedback", target)


@given(st.lists(st.sampled_from(SR_STATUSES), max_size=12))
def test_walking_the_table_only_reaches_what_it_allows(targets: list[str]) -> None:
    current = "new"
    for target in targets:
        if target in service_requests.allowed_transitions(current):
            service_requests.check_transition(None, current, target)
            current = target
        else:
            with pytest.raises(IllegalTransition):
                service_requests.check_transition(None, current, target)
    if current == "archived":
        assert service_requests.allowed_transitions(current) == ()
