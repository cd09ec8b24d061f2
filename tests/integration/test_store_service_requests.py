"""Service requests: the workflow, who may move them, refusals that change nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_store import customers, service_requests, users
from crm_store.actors import Actor
from crm_store.errors import IllegalTransition, InvalidData, NotFound, PermissionDenied
from crm_store.models import SR_STATUSES
from tests.integration.conftest import CountRows, Store


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
    attempts = [
        (IllegalTransition, lambda s: service_requests.start(s, sr.id, actor=sam)),
        (IllegalTransition, lambda s: service_requests.record_feedback(s, sr.id, 5, actor=sam)),
        (PermissionDenied, lambda s: service_requests.assign(s, sr.id, bea.user_id, actor=alex)),
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
