"""A contact's CSAT (the chat's stars, a survey) stored and fed to the service-request loop."""

from __future__ import annotations

import pytest

from crm_store import csat, interactions, service_requests
from crm_store.errors import InvalidData, NotFound
from crm_store.models import Interaction
from tests.integration.conftest import Store
from tests.integration.test_store_service_requests import _people

pytestmark = pytest.mark.integration


async def _waiting_for_feedback(store: Store) -> tuple[int, int, int]:
    alex, _bea, sam, customer_id = await _people(store)
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(
            session, channel="chat", customer_id=customer_id, address="visitor:c1"
        )
        ids = []
        for title in ("Refund", "Address change"):
            sr = await service_requests.create_service_request(
                session, customer_id=customer_id, title=title, actor=alex
            )
            await service_requests.assign(session, sr.id, alex.user_id or 0, actor=sam)
            await service_requests.start(session, sr.id, actor=alex)
            ids.append(sr.id)
        await service_requests.request_feedback(session, ids[0], actor=alex)
    return ix.id, ids[0], ids[1]


@pytest.mark.parametrize(("score", "after"), [(3, "archived"), (5, "archived"), (2, "assigned")])
async def test_a_score_moves_the_requests_waiting_for_feedback(
    store: Store, score: int, after: str
) -> None:
    interaction_id, waiting, working = await _waiting_for_feedback(store)
    async with store.sessionmaker.begin() as session:
        moved = await csat.record_contact_csat(session, interaction_id, score)
    assert moved == [waiting]
    async with store.sessionmaker() as session:
        ix = await session.get(Interaction, interaction_id)
        assert ix is not None and ix.csat == score
        assert (await service_requests.get_service_request(session, waiting)).status == after
        # Not waiting for feedback: untouched.
        assert (await service_requests.get_service_request(session, working)).status == (
            "in_progress"
        )


async def test_bad_scores_and_unknown_contacts_change_nothing(store: Store) -> None:
    interaction_id, waiting, _ = await _waiting_for_feedback(store)
    for bad in (0, 6, -1):
        with pytest.raises(InvalidData):
            async with store.sessionmaker.begin() as session:
                await csat.record_contact_csat(session, interaction_id, bad)
    with pytest.raises(NotFound):
        async with store.sessionmaker.begin() as session:
            await csat.record_contact_csat(session, 999_999, 4)
    async with store.sessionmaker() as session:
        ix = await session.get(Interaction, interaction_id)
        assert ix is not None and ix.csat is None
        assert (await service_requests.get_service_request(session, waiting)).status == "feedback"


async def test_an_anonymous_contact_keeps_its_score_only(store: Store) -> None:
    async with store.sessionmaker.begin() as session:
        ix = await interactions.record_interaction(session, channel="chat", address="visitor:x")
        assert await csat.record_contact_csat(session, ix.id, 1) == []
    async with store.sessionmaker() as session:
        stored = await session.get(Interaction, ix.id)
        assert stored is not None and stored.csat == 1
